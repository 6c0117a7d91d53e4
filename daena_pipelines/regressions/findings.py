"""``regressions.findings``: one row per failing golden value, open until a later check passes it.

A finding's key is ``asset/check:metric``. Each evaluation of a golden check updates the
table: failures open a finding (or refresh last_seen / reopen a resolved one); findings of that
check that are no longer failing get ``resolved_at``.

How far the findings have read the Dagster event log is kept beside them, in
``regressions.findings_watermarks`` (one row per stream: a check's execution history, an asset's
planned materialisations), updated in the same transaction as the findings it led to.
"""
from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field

import duckdb

from daena_pipelines.db import retrying_transaction
from daena_pipelines.migrations import Migration, migrate

DDL = (
    "CREATE SCHEMA IF NOT EXISTS regressions",
    """CREATE TABLE IF NOT EXISTS regressions.findings (
        finding_key VARCHAR PRIMARY KEY, asset_key VARCHAR, check_name VARCHAR, metric VARCHAR,
        first_seen TIMESTAMPTZ, last_seen TIMESTAMPTZ, resolved_at TIMESTAMPTZ,
        occurrences INTEGER, last_run_id VARCHAR, details JSON)""",
)
WATERMARKS = "regressions.findings_watermarks"
COMMITS = "regressions.findings_commits"
MIGRATIONS = (
    Migration(1, "regressions.findings", DDL),
    Migration(2, "how far the findings have read the event log, per stream", f"""CREATE TABLE IF NOT EXISTS {WATERMARKS} (
        stream VARCHAR PRIMARY KEY, position BIGINT NOT NULL, updated_at TIMESTAMPTZ NOT NULL)"""),
    Migration(3, "column descriptions of the findings tables", [
        f"COMMENT ON COLUMN {table}.{column} IS '{text}'" for table, column, text in (
            ("regressions.findings", "finding_key", "asset/check:metric, e.g. nbmf/results/nbmf_golden:ratio_total; one finding per failing value"),
            ("regressions.findings", "asset_key", "the checked asset, e.g. nbmf/results"),
            ("regressions.findings", "check_name", "the golden check, or materialization for a planned but not materialised asset"),
            ("regressions.findings", "metric", "the golden value that failed (its key in the golden file)"),
            ("regressions.findings", "first_seen", "first failing evaluation [timestamp, UTC]"),
            ("regressions.findings", "last_seen", "latest failing evaluation [timestamp, UTC]"),
            ("regressions.findings", "resolved_at", "the later evaluation that passed it; NULL while open [timestamp, UTC]"),
            ("regressions.findings", "occurrences", "failing evaluations seen (a reopened finding counts on)"),
            ("regressions.findings", "last_run_id", "Dagster run of the latest evaluation [identifier]"),
            ("regressions.findings", "details", "golden, actual, change, rule and note of the latest failure (JSON)"),
            (WATERMARKS, "stream", "check:asset:check or runs, then @ and the run storage id of the Dagster instance"),
            (WATERMARKS, "position", "event log storage id read up to, in that instance"),
            (WATERMARKS, "updated_at", "when the position last moved [timestamp, UTC]"),
        )
    ]),
    # DuckLake has no keys and inserts never conflict there: every write of the findings updates this
    # row, so of two at once the later commit conflicts and is retried (it then sees the first's rows)
    Migration(4, "one row every findings write updates, so that concurrent writers conflict", [
        f"CREATE TABLE IF NOT EXISTS {COMMITS} (writes BIGINT NOT NULL)",
        f"INSERT INTO {COMMITS} SELECT 0 WHERE NOT EXISTS (FROM {COMMITS})",
    ]),
    # the timing gate's tables (history.py); before this migration history.py created them when it
    # first wrote, so a warehouse may have them already: IF NOT EXISTS keeps them and their rows. Their
    # column order is the carried artifact's (history.import_artifact inserts its columns in order).
    Migration(5, "the timing gate's samples and verdicts: regressions.bench_history, regressions.bench_verdicts", [
        """CREATE TABLE IF NOT EXISTS regressions.bench_history (
        run_id VARCHAR, recorded_at TIMESTAMPTZ, suite VARCHAR, key VARCHAR, clock VARCHAR,
        sample INTEGER, ratio DOUBLE)""",
        """CREATE TABLE IF NOT EXISTS regressions.bench_verdicts (
        run_id VARCHAR, suite VARCHAR, key VARCHAR, clock VARCHAR, verdict VARCHAR, test VARCHAR,
        median DOUBLE, baseline_median DOUBLE, growth DOUBLE, p_value DOUBLE, step DOUBLE,
        baseline_runs INTEGER, note VARCHAR, decided_at TIMESTAMPTZ)""",
    ]),
    # NULL on older rows: not known where they were measured, or whether an artifact carried them in
    Migration(6, "regressions.bench_history: the machine that measured each sample and the artifact it was imported from", [
        "ALTER TABLE regressions.bench_history ADD COLUMN IF NOT EXISTS machine VARCHAR",
        "ALTER TABLE regressions.bench_history ADD COLUMN IF NOT EXISTS imported_from VARCHAR",
        "COMMENT ON COLUMN regressions.bench_history.machine IS 'the machine that measured the sample (JSON: host, platform, cpu_count, python); NULL: not recorded'",
        "COMMENT ON COLUMN regressions.bench_history.imported_from IS 'the history artifact folder the run was imported from (measured elsewhere or earlier); NULL: measured by this warehouse''s runs'",
    ]),
)


class WatermarksMoved(Exception):
    """Another writer recorded evaluations since the caller read the watermarks: read again from them."""


@dataclass
class CheckEvaluation:
    asset_key: str  # "nbmf/results"
    check_name: str
    passed: bool
    at: dt.datetime
    run_id: str | None = None
    failures: list[dict] = field(default_factory=list)  # golden.Outcome.as_dict() of failed values


def read_watermarks(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Stream -> position up to which the event log has been read into the findings."""
    migrate(con, ["regressions"])
    return dict(con.execute(f"SELECT stream, position FROM {WATERMARKS}").fetchall())


def _advance(con: duckdb.DuckDBPyConnection, watermarks: dict[str, int]) -> None:
    """Positions only move forward: a slower writer never makes the next reader read twice.
    (Update, else insert; not ON CONFLICT: a DuckLake warehouse has no keys.)"""
    con.execute(f"UPDATE {COMMITS} SET writes = writes + 1")
    now = dt.datetime.now(dt.timezone.utc)
    for stream, position in watermarks.items():
        current = con.execute(f"SELECT position FROM {WATERMARKS} WHERE stream = ?", [stream]).fetchone()
        if current is None:
            con.execute(f"INSERT INTO {WATERMARKS} VALUES (?, ?, ?)", [stream, position, now])
        elif position > current[0]:
            con.execute(f"UPDATE {WATERMARKS} SET position = ?, updated_at = ? WHERE stream = ?", [position, now, stream])


def skip_to(con: duckdb.DuckDBPyConnection, watermarks: dict[str, int]) -> None:
    """Move the positions past records that yield no evaluation (other checks, other runs)."""
    migrate(con, ["regressions"])
    retrying_transaction(con, lambda con: _advance(con, watermarks))


def record_evaluations(
    con: duckdb.DuckDBPyConnection, evaluations: list[CheckEvaluation], watermarks: dict[str, int] | None = None,
    read_from: dict[str, int] | None = None,
) -> dict[str, int]:
    """Apply evaluations in time order and move the ``watermarks`` they were read up to, in one
    transaction; returns how many findings were opened/updated/resolved. ``read_from``: the
    watermarks the evaluations were read after; when another writer has moved one of those
    streams since, nothing is written and ``WatermarksMoved`` is raised (its evaluations overlap)."""
    migrate(con, ["regressions"])
    return retrying_transaction(con, lambda con: _record(con, evaluations, watermarks or {}, read_from))


def _record(con: duckdb.DuckDBPyConnection, evaluations: list[CheckEvaluation], watermarks: dict[str, int],
            read_from: dict[str, int] | None) -> dict[str, int]:
    if read_from is not None:
        current = dict(con.execute(f"SELECT stream, position FROM {WATERMARKS}").fetchall())
        if any(current.get(stream) != read_from.get(stream) for stream in watermarks):
            raise WatermarksMoved(f"another writer read these streams past {read_from} meanwhile (now {current})")
    counts = {"opened": 0, "updated": 0, "resolved": 0}
    _advance(con, watermarks)
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
