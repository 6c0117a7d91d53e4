"""The evals schema in DuckDB: DDL, reads of the inputs, partition-replacing writes (no Dagster here)."""
from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date, datetime, timezone

import duckdb

from daena_pipelines.evals import calibration, judge, scoring
from daena_pipelines.evals.golden import EXPECTATIONS, TARGET_KEYS, GoldenCase, LoadedCase, parse_case
from daena_pipelines.db import Replacement, comment_columns, replace_rows, retrying_transaction, serialize_writes, table_exists
from daena_pipelines.migrations import Migration

# telemetry.roast_metrics columns the gates and the judge prompt use (a subset of telemetry.contract.METRIC_COLUMNS).
SCORED_METRICS = (
    "charge_bt_c", "tp_s", "tp_bt_c", "dry_end_s", "fcs_s", "fcs_bt_c", "fce_s", "drop_s", "drop_bt_c",
    "total_s", "development_s", "dtr_pct", "max_ror_c_per_min", "ror_at_fcs_c_per_min", "crash", "flick",
    "ror_spikes", "ror_crashes", "weight_loss_pct",
)
SUMMARY_STEP_S = 20  # telemetry summary for the judge: the first point of every 20 s window

JUDGE_ADDED_COLUMNS = {
    "endpoint": "VARCHAR", "effort": "VARCHAR", "max_tokens": "INTEGER", "stop_reason": "VARCHAR",
    "usage": "JSON", "request_id": "VARCHAR",
}
REDUCERS = ", ".join(
    f"avg({c}) AS {c}_mean, median({c}) AS {c}_median, mode({c}) AS {c}_mode, stddev_samp({c}) AS {c}_stddev, "
    f"min({c}) AS {c}_min, max({c}) AS {c}_max"
    for c in judge.SCORE_COLUMNS.values()
)
# Migration 1: the tables as first created. Written out, not derived from scoring.GATES: a new
# gate's column is a new migration, as fc_crash_pass is (migration 3).
DDL = f"""
CREATE SCHEMA IF NOT EXISTS evals;
CREATE TABLE IF NOT EXISTS evals.golden_cases (
    case_id VARCHAR PRIMARY KEY, file VARCHAR, content_sha256 VARCHAR, title VARCHAR, expectation VARCHAR,
    bean VARCHAR, machine VARCHAR, beans_contains VARCHAR, machine_contains VARCHAR,
    {", ".join(f"target_{k} DOUBLE, tolerance_{k} DOUBLE" for k in TARGET_KEYS)},
    max_ror_spikes INTEGER, max_ror_crashes INTEGER, baseline_commands JSON,
    command_tolerance_t_s DOUBLE, command_tolerance_value DOUBLE, trials_required INTEGER, pass_k INTEGER,
    definition JSON, loaded_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS evals.golden_case_errors (file VARCHAR, error VARCHAR, seen_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS evals.eval_runs (
    partition_date DATE, session_id VARCHAR, case_id VARCHAR, expectation VARCHAR, roasted_at TIMESTAMPTZ,
    beans VARCHAR, machine VARCHAR, session_source VARCHAR, outcome VARCHAR, reason VARCHAR,
    fc_timing_pass BOOLEAN, drop_timing_pass BOOLEAN, development_pass BOOLEAN, fc_temp_pass BOOLEAN,
    drop_temp_pass BOOLEAN, ror_spikes_pass BOOLEAN, ror_crashes_pass BOOLEAN, command_deviation_pass BOOLEAN,
    unsafe_rejected_pass BOOLEAN,
    gates JSON, metrics JSON, commands_available BOOLEAN, evaluated_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS evals.pass_at_k (
    case_id VARCHAR PRIMARY KEY, expectation VARCHAR, trials_required INTEGER, pass_k INTEGER,
    n_trials INTEGER, n_success INTEGER, n_needs_review INTEGER, pass_at_1 DOUBLE, pass_at_k DOUBLE,
    enough_trials BOOLEAN, first_day DATE, last_day DATE, computed_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS evals.judge_scores (
    partition_date DATE, session_id VARCHAR, case_id VARCHAR, sample_index INTEGER, model VARCHAR,
    prompt_version VARCHAR, input_hash VARCHAR, status VARCHAR, reason VARCHAR, source VARCHAR,
    plan_clarity INTEGER, physics_plausibility INTEGER, constraint_respect INTEGER, safety_score INTEGER,
    warnings VARCHAR[], violations VARCHAR[], reasoning VARCHAR, input_tokens INTEGER, output_tokens INTEGER,
    cache_read_input_tokens INTEGER, cache_creation_input_tokens INTEGER, cost_usd DOUBLE, latency_ms DOUBLE,
    attempts INTEGER, message_id VARCHAR, batch_id VARCHAR, from_cache BOOLEAN, judged_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS evals.judge_agreement (
    source VARCHAR, endpoint VARCHAR, model VARCHAR, prompt_version VARCHAR, comparison VARCHAR, dimension VARCHAR,
    n_pairs INTEGER, spearman DOUBLE, kappa DOUBLE, agreement_rate DOUBLE, status VARCHAR, labels_file VARCHAR,
    computed_at TIMESTAMPTZ);
CREATE TABLE IF NOT EXISTS evals.judge_batches (
    batch_id VARCHAR PRIMARY KEY, endpoint VARCHAR, model VARCHAR, prompt_version VARCHAR, custom_ids VARCHAR[],
    status VARCHAR, note VARCHAR, created_at TIMESTAMPTZ, updated_at TIMESTAMPTZ);
"""
# Samples of one session x case reduced per source, endpoint and model: mean, median, mode and spread.
SPREAD_VIEW = f"""CREATE OR REPLACE VIEW evals.judge_score_spread AS
SELECT partition_date, session_id, case_id, source, endpoint, model, prompt_version, count(*) AS n_samples,
    {REDUCERS}
FROM evals.judge_scores WHERE status = 'judged'
GROUP BY ALL"""
JUDGE_COLUMNS = (
    "partition_date", "session_id", "case_id", "sample_index", "model", "prompt_version", "input_hash", "status",
    "reason", "source", "endpoint", "effort", "max_tokens", *judge.SCORE_COLUMNS.values(), "warnings", "violations",
    "reasoning", "stop_reason", "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
    "usage", "cost_usd", "latency_ms", "attempts", "request_id", "message_id", "batch_id", "from_cache", "judged_at",
)

# evals.pass_at_k is derived (rebuilt whole by refresh_pass_at_k): migration 2 replaces DDL's version of it
# with one row per case and session source, so simulated trials never stand in for a real roaster's.
PASS_AT_K_BY_SOURCE = """CREATE TABLE evals.pass_at_k (
    case_id VARCHAR NOT NULL, session_source VARCHAR, expectation VARCHAR, trials_required INTEGER, pass_k INTEGER,
    n_trials INTEGER, n_success INTEGER, n_needs_review INTEGER, pass_at_1 DOUBLE, pass_at_k DOUBLE,
    enough_trials BOOLEAN, first_day DATE, last_day DATE, computed_at TIMESTAMPTZ)"""


def _describe_columns(con: duckdb.DuckDBPyConnection) -> None:
    for table in DESCRIBED_TABLES:
        columns = [c for (c,) in con.execute("SELECT column_name FROM (DESCRIBE " + table + ")").fetchall()]
        comment_columns(con, table, {c: COMMENTS[c] for c in columns if c in COMMENTS})


MIGRATIONS = (
    Migration(1, "evals tables as first created", DDL),
    Migration(2, "evals.pass_at_k per golden case and session source",
              ["DROP TABLE IF EXISTS evals.pass_at_k", PASS_AT_K_BY_SOURCE]),
    # Columns added before the ledger existed, by ALTER statements that ran on every write and that
    # the migration 1 of earlier mains held (IF NOT EXISTS: those warehouses have them); the view
    # reads judge_scores.endpoint.
    Migration(3, "eval_runs.fc_crash_pass; judge_scores endpoint, effort, max_tokens, stop_reason, usage, request_id; "
              "view evals.judge_score_spread", [
        "ALTER TABLE evals.eval_runs ADD COLUMN IF NOT EXISTS fc_crash_pass BOOLEAN",
        *(f"ALTER TABLE evals.judge_scores ADD COLUMN IF NOT EXISTS {c} {t}" for c, t in JUDGE_ADDED_COLUMNS.items()),
        SPREAD_VIEW,
    ]),
    # written by every write until this migration; a changed description is a new migration
    Migration(4, "column descriptions of evals.eval_runs and evals.judge_scores", _describe_columns),
    # rows before it pooled the roasts of every source: NULL until the next refresh
    Migration(5, "evals.judge_agreement per session source (simulated and real roasts never pooled)", [
        "ALTER TABLE evals.judge_agreement ADD COLUMN IF NOT EXISTS session_source VARCHAR",
        "COMMENT ON COLUMN evals.judge_agreement.session_source IS 'telemetry.sessions.source of the judged roasts "
        "(simulator, real; unknown: session gone); NULL: computed before roasts were split by source, all pooled'",
    ]),
    # Earlier rows keep NULL: which version scored them is unknown, so eval_runs_complete flags them.
    Migration(6, "eval_runs.case_sha256: the version of the golden case file a row was scored against", [
        "ALTER TABLE evals.eval_runs ADD COLUMN IF NOT EXISTS case_sha256 VARCHAR",
        "COMMENT ON COLUMN evals.eval_runs.case_sha256 IS 'SHA-256 of the golden case file the row was scored "
        "against (evals.golden_cases.content_sha256 then); empty when no case matches'",
    ]),
)

GATE_TEXT = {
    "fc_timing": "first crack time within the case's target ± tolerance", "drop_timing": "drop time within target ± tolerance",
    "development": "DTR within target ± tolerance", "fc_temp": "BT at first crack within target ± tolerance",
    "drop_temp": "BT at drop within target ± tolerance", "ror_spikes": "RoR spikes at most the case's maximum",
    "ror_crashes": "RoR crashes at most the case's maximum", "fc_crash": "no RoR crash around first crack (FCs - 60 s .. FCs + 90 s)",
    "command_deviation": "executed commands within the baseline's time and value tolerance",
    "unsafe_rejected": "every unsafe proposal of a reject case was rejected",
}
# Column descriptions of evals.eval_runs and evals.judge_scores (a name means the same in both),
# shown in the UI (lib/metadata.describe_column reads the comments).
DESCRIBED_TABLES = ("evals.eval_runs", "evals.judge_scores")
COMMENTS = dict(
    partition_date="UTC day of the roast: the Dagster partition",
    session_id="telemetry.sessions.session_id",
    case_id="the golden case (golden/cases/*.json) the session matched; empty when none matches",
    expectation="what the case expects of the roast, one of " + ", ".join(EXPECTATIONS),
    roasted_at="the session's roasted_at [timestamp, UTC]",
    beans="beans named by the session",
    machine="roaster named by the session",
    session_source="where the session came from (simulator, a real roaster, ...)",
    outcome="PASS | WARN | FAIL | NEEDS_REVIEW (docs/evals.md)",
    reason="why: each failed gate with value vs target ± tolerance; for the judge, why a row is not judged",
    gates="every gate with its value, target and tolerance (JSON)",
    metrics="the roast metrics scored (JSON, °C and s)",
    commands_available="commands.proposals existed, so the command gates could be checked",
    evaluated_at="when this row was written [timestamp, UTC]",
    sample_index="which of the judge samples (0-based)",
    status="judged | not_judged | invalid_output | not_exercised",
    source="anthropic, or simulator for any other endpoint",
    cost_usd="estimated price of the call [US dollars]; empty for a simulator",
    latency_ms="time of the API call [milliseconds]",
    from_cache="reused from an earlier identical request",
    **{f"{g}_pass": f"gate: {GATE_TEXT[g]}; empty when not applicable" for g in scoring.GATES},
    **{column: f"LM judge score 0-100 ({name})" for name, column in judge.SCORE_COLUMNS.items()},
)


def _rows(cursor: duckdb.DuckDBPyConnection) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def write_golden_cases(con, loaded: Sequence[LoadedCase], errors: Sequence[tuple[str, str]]) -> None:
    now = datetime.now(timezone.utc)
    columns = (
        "case_id", "file", "content_sha256", "title", "expectation", "bean", "machine", "beans_contains",
        "machine_contains", *(f"{p}_{k}" for k in TARGET_KEYS for p in ("target", "tolerance")), "max_ror_spikes",
        "max_ror_crashes", "baseline_commands", "command_tolerance_t_s", "command_tolerance_value",
        "trials_required", "pass_k", "definition", "loaded_at",
    )
    rows = []
    for lc in loaded:
        c = lc.case
        rows.append((
            c.case_id, lc.file, lc.content_sha256, c.title, c.expectation, c.bean, c.machine, c.beans_contains,
            c.machine_contains, *(d.get(k) for k in TARGET_KEYS for d in (c.targets, c.tolerances)),
            c.max_ror_spikes, c.max_ror_crashes, json.dumps(c.definition["baseline_commands"]),
            c.command_tolerance_t_s, c.command_tolerance_value, c.trials_required, c.pass_k,
            json.dumps(c.definition), now,
        ))

    replace_rows(con, Replacement("evals.golden_cases", rows, columns),
                 Replacement("evals.golden_case_errors", [(f, e, now) for f, e in errors], ("file", "error", "seen_at")))


def read_golden_cases(con) -> list[GoldenCase]:
    if not table_exists(con, "evals.golden_cases"):
        raise LookupError("evals.golden_cases does not exist: materialise evals/golden_cases first")
    rows = con.execute("SELECT case_id, definition FROM evals.golden_cases ORDER BY case_id").fetchall()
    if not rows:
        raise LookupError("evals.golden_cases is empty: add cases to golden/cases/ and materialise evals/golden_cases")
    return [parse_case(json.loads(definition), f"evals.golden_cases[{case_id}]") for case_id, definition in rows]


def read_case_versions(con) -> dict[str, str]:
    """case_id -> content_sha256 of the case files evals.golden_cases holds now."""
    return dict(con.execute("SELECT case_id, content_sha256 FROM evals.golden_cases").fetchall())


def read_sessions(con, start: datetime, end: datetime) -> list[dict]:
    """Sessions roasted in [start, end), each with its roast metrics (NULLs when it has none)."""
    metrics = ", ".join(f"m.{c}" for c in SCORED_METRICS)
    return _rows(con.execute(
        f"""SELECT s.session_id, s.roasted_at, CAST(timezone('UTC', s.roasted_at) AS DATE) AS partition_date,
                   s.beans, s.machine, s.notes, s.source, m.session_id IS NOT NULL AS has_metrics, {metrics}
            FROM telemetry.sessions s LEFT JOIN telemetry.roast_metrics m USING (session_id)
            WHERE s.roasted_at >= ? AND s.roasted_at < ? ORDER BY s.roasted_at, s.session_id""",
        [start, end],
    ))


def read_proposals(con, session_ids: Sequence[str]) -> dict[str, list[dict]] | None:
    """Proposals per session from commands.proposals; None when the commands ingest has not run: the table
    is absent (a warehouse from before commands migration 4) or holds no rows (migration 4 makes it empty)."""
    if not table_exists(con, "commands.proposals") or not con.execute("SELECT count(*) FROM commands.proposals").fetchone()[0]:
        return None
    by_session: dict[str, list[dict]] = {s: [] for s in session_ids}
    if session_ids:
        for row in _rows(con.execute(
            """SELECT proposal_id, session_id, command_type, target_value, actual_value, status, session_t_s,
                      execution_started_at
               FROM commands.proposals WHERE session_id IN (SELECT unnest(?)) ORDER BY session_t_s, proposal_id""",
            [list(session_ids)],
        )):
            by_session[row["session_id"]].append(row)
    return by_session


def replace_partitions(con, table: str, first: date, last: date, columns: Sequence[str], rows: Sequence[Sequence]) -> None:
    """Idempotent write: the days [first, last] are replaced by ``rows`` in one transaction."""
    replace_rows(con, Replacement(table, rows, columns, "partition_date BETWEEN ? AND ?", (first, last)))


def eval_run_rows(sessions: Sequence[dict], cases: Sequence[GoldenCase], proposals: dict | None,
                  case_versions: dict[str, str]) -> list[dict]:
    """One row per (session, matching case), with the version of the case file that scored it; a session
    no case matches gets one NEEDS_REVIEW row."""
    now = datetime.now(timezone.utc)
    out = []
    for s in sessions:
        metrics = {c: s[c] for c in SCORED_METRICS} if s["has_metrics"] else None
        session_proposals = None if proposals is None else proposals.get(s["session_id"], [])
        base = {
            "partition_date": s["partition_date"], "session_id": s["session_id"], "roasted_at": s["roasted_at"],
            "beans": s["beans"], "machine": s["machine"], "session_source": s["source"],
            "metrics": json.dumps(metrics, default=str), "commands_available": proposals is not None,
            "evaluated_at": now,
        }
        matched = [c for c in cases if c.matches(s["beans"], s["machine"])]
        if not matched:
            out.append({**base, "case_id": None, "case_sha256": None, "expectation": None, "outcome": "NEEDS_REVIEW",
                        "reason": "no golden case matches these beans and machine", "gates": "[]",
                        **{f"{g}_pass": None for g in scoring.GATES}})
        for case in matched:
            ev = scoring.evaluate(case, metrics, session_proposals)
            out.append({**base, "case_id": case.case_id, "case_sha256": case_versions.get(case.case_id),
                        "expectation": case.expectation, "outcome": ev.outcome,
                         "reason": ev.reason, "gates": json.dumps(ev.gates_json()),
                         **{f"{g.name}_pass": g.passed for g in ev.gates}})
    return out


EVAL_RUN_COLUMNS = (
    "partition_date", "session_id", "case_id", "expectation", "roasted_at", "beans", "machine", "session_source",
    "outcome", "reason", *(f"{g}_pass" for g in scoring.GATES), "gates", "metrics", "commands_available",
    "evaluated_at", "case_sha256",
)


def refresh_pass_at_k(con) -> None:
    """pass@k per golden case and session source over every evaluated trial in evals.eval_runs (all days);
    a case with no trial has one row with no source."""
    stats = con.execute(
        """SELECT g.case_id, r.session_source, g.expectation, g.trials_required, g.pass_k,
                  count(*) FILTER (WHERE r.outcome IN ('PASS', 'WARN', 'FAIL')),
                  count(*) FILTER (WHERE r.outcome IN ('PASS', 'WARN')),
                  count(*) FILTER (WHERE r.outcome = 'NEEDS_REVIEW'),
                  min(r.partition_date), max(r.partition_date)
           FROM evals.golden_cases g LEFT JOIN evals.eval_runs r USING (case_id)
           GROUP BY ALL ORDER BY g.case_id"""
    ).fetchall()
    now = datetime.now(timezone.utc)
    rows = []
    for case_id, source, expectation, required, k, n, c, review, first, last in stats:
        rows.append((case_id, source, expectation, required, k, n, c, review, scoring.pass_at_k(n, c, 1),
                     scoring.pass_at_k(n, c, k), n >= required, first, last, now))
    columns = ("case_id", "session_source", "expectation", "trials_required", "pass_k", "n_trials", "n_success", "n_needs_review",
               "pass_at_1", "pass_at_k", "enough_trials", "first_day", "last_day", "computed_at")
    replace_rows(con, Replacement("evals.pass_at_k", rows, columns))


AGREEMENT_COLUMNS = ("source", "endpoint", "model", "prompt_version", "session_source", "comparison", "dimension", "n_pairs", "spearman",
                     "kappa", "agreement_rate", "status", "labels_file", "computed_at")


def refresh_judge_agreement(con, labels: Sequence[calibration.Label], labels_file: str) -> list[dict]:
    """evals.judge_agreement over all judged rows, one block of rows per (source, endpoint, model, prompt version,
    session source): neither is pooled, so a simulator's agreement never stands for the real judge's, nor the
    judge's agreement over simulated roasts for its agreement over real ones."""
    judged = _rows(con.execute(
        f"""SELECT j.session_id, j.case_id, j.source, j.endpoint, j.model, j.prompt_version,
                   coalesce(s.source, 'unknown') AS session_source, {', '.join(f"j.{c}" for c in judge.SCORE_COLUMNS.values())}
            FROM evals.judge_scores j LEFT JOIN telemetry.sessions s USING (session_id) WHERE j.status = 'judged'"""
    ))
    outcomes = {(s, c): o for s, c, o in con.execute(
        "SELECT session_id, case_id, outcome FROM evals.eval_runs WHERE case_id IS NOT NULL "
        "QUALIFY row_number() OVER (PARTITION BY session_id, case_id ORDER BY evaluated_at DESC) = 1"
    ).fetchall()}
    groups: dict[tuple, list[dict]] = {}
    for r in judged:
        groups.setdefault((r["source"], r["endpoint"], r["model"], r["prompt_version"], r["session_source"]), []).append(r)
    now = datetime.now(timezone.utc)
    rows = [
        {"source": g[0], "endpoint": g[1], "model": g[2], "prompt_version": g[3], "session_source": g[4], **a,
         "labels_file": labels_file, "computed_at": now}
        for g, members in sorted(groups.items()) for a in calibration.agreement(members, labels, outcomes)
    ]
    replace_rows(con, Replacement("evals.judge_agreement", [[r[c] for c in AGREEMENT_COLUMNS] for r in rows], AGREEMENT_COLUMNS))
    return rows


def read_judge_inputs(con, first: date, last: date) -> list[dict]:
    """eval_runs rows of the days with the session's title and notes, the case definition, the session's
    commands and a telemetry summary from CHARGE to DROP (points after DROP are cooling, not roasting)."""
    rows = _rows(con.execute(
        """SELECT r.partition_date, r.session_id, r.case_id, r.expectation, r.outcome, r.metrics, r.gates,
                  s.title, s.notes, g.definition
           FROM evals.eval_runs r JOIN telemetry.sessions s USING (session_id)
           LEFT JOIN evals.golden_cases g USING (case_id)
           WHERE r.partition_date BETWEEN ? AND ? ORDER BY r.partition_date, r.session_id, r.case_id""",
        [first, last],
    ))
    ids = sorted({r["session_id"] for r in rows})
    proposals = read_proposals(con, ids)
    summaries: dict[str, list[tuple]] = {i: [] for i in ids}
    if ids:
        for session_id, t_s, bt, ror in con.execute(
            f"""SELECT p.session_id, p.t_s, p.bt_c, p.ror_c_per_min FROM telemetry.points p
                LEFT JOIN telemetry.roast_metrics m USING (session_id)
                WHERE p.session_id IN (SELECT unnest(?)) AND p.t_s >= 0 AND (m.drop_s IS NULL OR p.t_s <= m.drop_s)
                QUALIFY row_number() OVER (PARTITION BY p.session_id, floor(p.t_s / {SUMMARY_STEP_S}) ORDER BY p.t_s) = 1
                ORDER BY p.session_id, p.t_s""",
            [ids],
        ).fetchall():
            summaries[session_id].append((t_s, bt, ror))
    for r in rows:
        r["summary"] = summaries[r["session_id"]]
        r["commands"] = None if proposals is None else [
            {k: p[k] for k in ("session_t_s", "command_type", "target_value", "actual_value", "status")}
            for p in proposals[r["session_id"]]
        ]
    return rows


def read_judge_cache(con, settings: judge.JudgeSettings, hashes: Sequence[str]) -> dict[tuple[str, int], dict]:
    """Earlier judged rows with the same model, prompt version, endpoint and source, keyed by (input_hash, sample)."""
    if not hashes:
        return {}
    rows = _rows(con.execute(
        f"""SELECT {", ".join(c for c in JUDGE_COLUMNS if c != "partition_date")} FROM evals.judge_scores
            WHERE status = 'judged' AND model = ? AND prompt_version = ? AND endpoint = ? AND source = ?
              AND input_hash IN (SELECT unnest(?))
            QUALIFY row_number() OVER (PARTITION BY input_hash, sample_index ORDER BY judged_at) = 1""",
        [settings.model, judge.PROMPT_VERSION, settings.endpoint, settings.source, list(hashes)],
    ))
    return {(r["input_hash"], r["sample_index"]): r for r in rows}


class WarehouseBatchLedger:
    """judge.BatchLedger over evals.judge_batches; each call opens its own short connection, so no
    warehouse connection is held while the judge waits for a batch."""

    def __init__(self, connect):
        self.connect = connect

    def open_batches(self, endpoint: str, model: str) -> list[tuple[str, list[str]]]:
        with self.connect() as con:
            return [(b, list(ids)) for b, ids in con.execute(
                """SELECT batch_id, custom_ids FROM evals.judge_batches
                   WHERE endpoint = ? AND model = ? AND prompt_version = ? AND status IN ('in_progress', 'canceling')
                   ORDER BY created_at""",
                [endpoint, model, judge.PROMPT_VERSION],
            ).fetchall()]

    def record(self, batch_id: str, endpoint: str, model: str, custom_ids: Sequence[str], status: str, note: str) -> None:
        now = datetime.now(timezone.utc)

        def upsert(con: duckdb.DuckDBPyConnection) -> None:
            # update, else insert (not ON CONFLICT: a DuckLake warehouse has no keys); serialized, or two
            # first records of one batch at once would both find nothing to update and both insert it
            serialize_writes(con)
            updated = con.execute(
                "UPDATE evals.judge_batches SET status = ?, note = ?, updated_at = ? WHERE batch_id = ?", [status, note, now, batch_id]
            ).fetchone()[0]
            if not updated:
                con.execute(
                    "INSERT INTO evals.judge_batches VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    [batch_id, endpoint, model, judge.PROMPT_VERSION, list(custom_ids), status, note, now, now],
                )

        with self.connect() as con:
            retrying_transaction(con, upsert)
