"""One judge run over a range of days: read the inputs, decide what to send, call, write (no Dagster here).

What is deliberately not sent: an eval row with no golden case, and an eval row none of whose gates
was exercised (e.g. a SHOULD_REJECT case where nothing resembling the unsafe command was proposed):
there is nothing for the judge to assess, so those rows say ``not_exercised`` with the reason.
"""
from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import AbstractContextManager
from datetime import date
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where a request is sent (evals/judge.py says why)
    import anthropic

from daena_pipelines.evals import judge, tables


def _not_exercised_reason(row: dict) -> str | None:
    if row["case_id"] is None:
        return "no golden case matches this session"
    gates = json.loads(row["gates"])
    if gates and all(g["status"] == "not_applicable" for g in gates):
        reasons = sorted({g["reason"] for g in gates if g["reason"] and not g["reason"].endswith(" case")})
        return "no gate was exercised: " + ("; ".join(reasons) or "every gate not applicable")
    return None


def judge_days(
    connect: Callable[[], AbstractContextManager],
    settings: judge.JudgeSettings,
    client: anthropic.Anthropic | None,
    no_client_reason: str,
    first: date,
    last: date,
) -> list[dict]:
    """Judge every eval row of [first, last] and replace those days in evals.judge_scores; returns the rows."""
    with connect() as con:
        inputs = tables.read_judge_inputs(con, first, last)
    to_send, skipped = [], defaultdict(list)
    for r in inputs:
        request = judge.build_request(
            r["session_id"],
            json.loads(r["definition"]) if r["definition"] else None,
            json.loads(r["metrics"]),
            json.loads(r["gates"]),
            r["commands"],
            judge.telemetry_summary(r["summary"]),
            r["notes"],
            r["title"],
        )
        reason = _not_exercised_reason(r)
        (skipped[reason].append(request) if reason else to_send.append(request))
    with connect() as con:
        cache = tables.read_judge_cache(con, settings, [q.input_hash for q in to_send])
    # The API calls (and batch waits) happen with no warehouse connection open.
    rows = judge.judge(to_send, settings, client, no_client_reason, cache, tables.WarehouseBatchLedger(connect))
    for reason, requests in skipped.items():
        rows += judge.not_exercised_rows(requests, settings, reason)
    day_of = {r["session_id"]: r["partition_date"] for r in inputs}
    with connect() as con:
        tables.replace_partitions(
            con, "evals.judge_scores", first, last, tables.JUDGE_COLUMNS,
            [[day_of[r["session_id"]] if c == "partition_date" else r[c] for c in tables.JUDGE_COLUMNS] for r in rows],
        )
    return rows


def run_summary(rows: list[dict]) -> dict:
    """Counts, tokens and cost of one run, every aggregate split by source (a simulator is never billed)."""
    by_source: dict[str, dict] = {}
    for source in sorted({r["source"] for r in rows}):
        mine = [r for r in rows if r["source"] == source]
        calls = [r for r in mine if not r["from_cache"] and r["status"] in ("judged", "invalid_output")]
        costs = [r["cost_usd"] for r in calls]
        by_source[source] = {
            "statuses": dict(Counter(r["status"] for r in mine)),
            "cache_hits": sum(r["from_cache"] for r in mine),
            "api_replies": len(calls),
            "input_tokens": sum(r["input_tokens"] or 0 for r in calls),
            "output_tokens": sum(r["output_tokens"] or 0 for r in calls),
            "cache_read_input_tokens": sum(r["cache_read_input_tokens"] or 0 for r in calls),
            "cache_creation_input_tokens": sum(r["cache_creation_input_tokens"] or 0 for r in calls),
            # None for a simulator (never billed) and when any reply has no price (model/date not in the table).
            "cost_usd_estimate": None if source == "simulator" or None in costs else round(sum(costs), 6),
        }
    return by_source
