"""``regressions.findings``: one row per failing golden value, open until a later check passes it.

A finding's key is ``asset/check:metric``. Each evaluation of a golden check updates the
table: failures open a finding (or refresh last_seen / reopen a resolved one); findings of that
check that are no longer failing get ``resolved_at``.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import duckdb

from daena_pipelines.db import transaction

DDL = (
    "CREATE SCHEMA IF NOT EXISTS regressions",
    """CREATE TABLE IF NOT EXISTS regressions.findings (
        finding_key VARCHAR PRIMARY KEY, asset_key VARCHAR, check_name VARCHAR, metric VARCHAR,
        first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ, resolved_at TIMESTAMPTZ,
        occurrences INTEGER, last_run_id VARCHAR, details JSON)""",
)


@dataclass
class CheckEvaluation:
    asset_key: str  # "nbmf/results"
    check_name: str
    passed: bool
    at: dt.datetime
    run_id: str | None = None
    failures: list[dict] = field(default_factory=list)  # golden.Outcome.as_dict() of failed values


def record_evaluations(con: duckdb.DuckDBPyConnection, evaluations: list[CheckEvaluation]) -> dict[str, int]:
    """Apply evaluations in time order; returns how many findings were opened/updated/resolved."""
    for statement in DDL:
        con.execute(statement)
    counts = {"opened": 0, "updated": 0, "resolved": 0}
    with transaction(con):
        for ev in sorted(evaluations, key=lambda e: e.at):
            prefix = f"{ev.asset_key}/{ev.check_name}:"
            failing = {} if ev.passed else {prefix + f["metric"]: f for f in ev.failures or [{"metric": "check"}]}
            for key, failure in failing.items():
                details = json.dumps(failure, default=str)
                existing = con.execute(
                    "SELECT resolved_at FROM regressions.findings WHERE finding_key = ?", [key]
                ).fetchone()
                if existing is None:
                    con.execute(
                        "INSERT INTO regressions.findings VALUES (?, ?, ?, ?, ?, ?, NULL, 1, ?, ?)",
                        [key, ev.asset_key, ev.check_name, failure["metric"], ev.at, ev.at, ev.run_id, details],
                    )
                    counts["opened"] += 1
                else:
                    con.execute(
                        "UPDATE regressions.findings SET last_seen = ?, resolved_at = NULL, occurrences = occurrences + 1, "
                        "last_run_id = ?, details = ? WHERE finding_key = ?",
                        [ev.at, ev.run_id, details, key],
                    )
                    counts["updated" if existing[0] is None else "opened"] += 1
            still_open = con.execute(
                "SELECT finding_key FROM regressions.findings WHERE asset_key = ? AND check_name = ? AND resolved_at IS NULL",
                [ev.asset_key, ev.check_name],
            ).fetchall()
            for (key,) in still_open:
                if key not in failing:
                    con.execute(
                        "UPDATE regressions.findings SET resolved_at = ?, last_run_id = ? WHERE finding_key = ?",
                        [ev.at, ev.run_id, key],
                    )
                    counts["resolved"] += 1
    return counts
