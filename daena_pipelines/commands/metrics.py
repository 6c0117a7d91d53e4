"""``commands.outcome_metrics``: outcomes per day x machine x command type x origin, in DuckDB SQL.

Formulas (also in docs/commands.md):
- origin = the proposals' origin (real | simulator | generated): never pooled, so a generated or
  simulated command's outcome never moves a real machine's rates
- day = UTC date of created_at (for proposals known only from the sidecar: execution_started_at, or
  expired_at for an approval it closed EXPIRED)
- finished = COMPLETED + FAILED + ABORTED + TIMEOUT (executions that ended)
- success_rate = succeeded / finished, succeeded = COMPLETED with outcome SUCCESS (or no outcome reported);
  COMPLETED with outcome PARTIAL (the level was not reached) is counted apart, never as success.
  NULL when nothing finished.
- failure_rate = (FAILED + TIMEOUT) / finished: the one failure rule for every metric and alert.
  ABORTED is the operator stopping the roast: finished, but neither a success nor a failure.
- rejection_rate = REJECTED / decided, decided = REJECTED + APPROVED-or-later (EXPIRED included: it was
  approved). NULL when nothing was decided.
- n_expired = approvals the sidecar closed EXPIRED unexecuted: decided, never finished executions, so in
  neither success_rate nor failure_rate.
- decision latency = (approved_at or rejected_at) - created_at over decided proposals (rejections count);
  proposals still waiting at ``as_of`` are counted and their wait so far (a lower bound) reported apart.
- execution duration = execution_completed_at - execution_started_at over executions that ended on
  their own (COMPLETED, FAILED, ABORTED); TIMEOUT rows end at the sidecar's timeout by construction and
  are reported apart (count and their duration), so they cannot stand in for latency.
"""
from __future__ import annotations

from datetime import datetime, timezone

import duckdb

from daena_pipelines.commands.model import EXECUTED_TERMINAL, STATUSES
from daena_pipelines.db import serialize_writes

DECIDED = ("REJECTED", "APPROVED", "EXPIRED", "EXECUTING", *EXECUTED_TERMINAL)
PENDING_DECISION = ("PROPOSED", "PENDING_APPROVAL")
FAILED = ("FAILED", "TIMEOUT")
ENDED_ON_THEIR_OWN = ("COMPLETED", "FAILED", "ABORTED")
# When a proposal entered the log (its day here, its time in the alerts): created_at, or for one
# known only from the sidecar, when the sidecar executed or expired it.
ENTERED_AT = "coalesce(created_at, execution_started_at, expired_at)"
QUANTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))
SUCCEEDED = "status = 'COMPLETED' AND coalesce(outcome, 'SUCCESS') = 'SUCCESS'"


def sql_list(values: tuple[str, ...]) -> str:
    """('A', 'B', ...) for an IN clause; the values are this package's own constants."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _distribution(expression: str, name: str) -> list[str]:
    columns = [f"count({expression}) AS {name}_n"]
    columns += [f"quantile_cont({expression}, {q}) AS {name}_{label}_s" for q, label in QUANTILES]
    return columns + [f"max({expression}) AS {name}_max_s"]


AS_OF_TABLE = "commands.ingest_as_of"


def recorded_as_of(con: duckdb.DuckDBPyConnection) -> datetime:
    """The time the latest ingest's sources describe (tables.choose_as_of); now when no ingest recorded one
    (a warehouse migrated since its last ingest): an open wait is then aged, never hidden."""
    row = con.execute(f"SELECT max(as_of) FROM {AS_OF_TABLE}").fetchone()
    return row[0] or datetime.now(timezone.utc)


def outcome_metrics_sql() -> str:
    status_counts = [f"count(*) FILTER (WHERE status = '{s}') AS n_{s.lower()}" for s in STATUSES]
    return f"""
        INSERT INTO commands.outcome_metrics BY NAME
        WITH p AS (
            SELECT *,
                CAST(timezone('UTC', {ENTERED_AT}) AS DATE) AS day,
                CASE WHEN status IN {sql_list(DECIDED)}
                     THEN epoch(coalesce(approved_at, rejected_at)) - epoch(created_at) END AS decision_latency_s,
                CASE WHEN status IN {sql_list(PENDING_DECISION)}
                     THEN epoch(CAST($as_of AS TIMESTAMPTZ)) - epoch(created_at) END AS pending_wait_s,
                epoch(execution_completed_at) - epoch(execution_started_at) AS run_s
            FROM commands.proposals
        ), counted AS (
            SELECT day, machine_id, command_type, origin,
                count(*) AS n_proposals,
                {', '.join(status_counts)},
                count(*) FILTER (WHERE status IN {sql_list(EXECUTED_TERMINAL)}) AS n_terminal_executed,
                count(*) FILTER (WHERE {SUCCEEDED}) AS n_succeeded,
                count(*) FILTER (WHERE status = 'COMPLETED' AND outcome = 'PARTIAL') AS n_partial,
                count(*) FILTER (WHERE status IN {sql_list(FAILED)}) AS n_failures,
                count(*) FILTER (WHERE status IN {sql_list(DECIDED)}) AS n_decided,
                {', '.join(_distribution('decision_latency_s', 'approval_latency'))},
                count(pending_wait_s) AS pending_decision_n,
                max(pending_wait_s) AS pending_decision_max_wait_s,
                {', '.join(_distribution(f"CASE WHEN status IN {sql_list(ENDED_ON_THEIR_OWN)} THEN run_s END", 'execution_duration'))},
                max(CASE WHEN status = 'TIMEOUT' THEN run_s END) AS execution_timeout_max_s
            FROM p
            GROUP BY day, machine_id, command_type, origin
        )
        SELECT day, machine_id, command_type, origin, n_proposals,
            {', '.join(f'n_{s.lower()}' for s in STATUSES)},
            n_terminal_executed, n_succeeded, n_partial, n_failures, n_decided,
            n_succeeded / nullif(n_terminal_executed, 0) AS success_rate,
            n_failures / nullif(n_terminal_executed, 0) AS failure_rate,
            n_rejected / nullif(n_decided, 0) AS rejection_rate,
            n_timeout AS n_execution_timeouts, execution_timeout_max_s,
            COLUMNS('^(approval_latency|pending_decision|execution_duration)_')
        FROM counted
        ORDER BY day, machine_id, command_type, origin
    """


# The table's columns as commands migration 4 created them (tables.MIGRATIONS; a later change is a new migration).
COLUMNS = """
    day DATE, machine_id VARCHAR, command_type VARCHAR, origin VARCHAR, n_proposals BIGINT,
    n_proposed BIGINT, n_pending_approval BIGINT, n_approved BIGINT, n_rejected BIGINT, n_executing BIGINT,
    n_completed BIGINT, n_failed BIGINT, n_aborted BIGINT, n_timeout BIGINT, n_expired BIGINT,
    n_terminal_executed BIGINT, n_succeeded BIGINT, n_partial BIGINT, n_failures BIGINT, n_decided BIGINT,
    success_rate DOUBLE, failure_rate DOUBLE, rejection_rate DOUBLE, n_execution_timeouts BIGINT, execution_timeout_max_s DOUBLE,
    approval_latency_n BIGINT, approval_latency_p50_s DOUBLE, approval_latency_p95_s DOUBLE, approval_latency_p99_s DOUBLE,
    approval_latency_max_s DOUBLE, pending_decision_n BIGINT, pending_decision_max_wait_s DOUBLE,
    execution_duration_n BIGINT, execution_duration_p50_s DOUBLE, execution_duration_p95_s DOUBLE,
    execution_duration_p99_s DOUBLE, execution_duration_max_s DOUBLE"""

# Column descriptions, set by commands migration 4 (a changed description is a new migration).
COMMENTS = {
    "origin": "real | simulator | generated: the group's proposals' origin (never pooled); NULL: built before groups were split by origin",
    "n_succeeded": "COMPLETED with outcome SUCCESS (or no outcome reported): the level/state was reached",
    "n_partial": "COMPLETED with outcome PARTIAL: executed but the target was not reached; not a success",
    "n_failures": "FAILED + TIMEOUT (ABORTED is an operator's decision: neither success nor failure)",
    "success_rate": "n_succeeded / (COMPLETED+FAILED+ABORTED+TIMEOUT); pending or unexecuted proposals never count; NULL if none finished",
    "failure_rate": "(FAILED+TIMEOUT) / (COMPLETED+FAILED+ABORTED+TIMEOUT); NULL if none finished",
    "rejection_rate": "REJECTED / (REJECTED + APPROVED-or-later); NULL if none decided",
    "n_expired": "approved, then closed EXPIRED unexecuted by the device sidecar (stale approval); decided, never executed",
    "n_execution_timeouts": "proposals whose execution ended TIMEOUT (not in the execution duration quantiles)",
    "execution_timeout_max_s": "longest TIMEOUT execution, seconds (the sidecar's command timeout)",
    "approval_latency_n": "decided proposals (approved or rejected) with a measured decision latency",
    "approval_latency_p50_s": "(approved_at or rejected_at) - created_at, seconds, over decided proposals",
    "pending_decision_n": "proposals still waiting for a decision at as_of (docs/commands.md says which time that is)",
    "pending_decision_max_wait_s": "longest wait so far of a still-pending proposal at as_of, seconds (a lower bound)",
    "execution_duration_n": "executions that ended on their own: COMPLETED, FAILED, ABORTED (not TIMEOUT)",
    "execution_duration_p50_s": "execution_completed_at - execution_started_at, seconds, over COMPLETED/FAILED/ABORTED",
}


def build_outcome_metrics(con: duckdb.DuckDBPyConnection, as_of: datetime | None = None) -> None:
    """Replace the rows of ``commands.outcome_metrics`` (call inside one transaction); ``as_of`` (for
    still-pending waits) defaults to the ingest's (``recorded_as_of``)."""
    serialize_writes(con)  # two concurrent replacements on DuckLake would both commit (db.serialize_writes)
    con.execute("DELETE FROM commands.outcome_metrics")
    con.execute(outcome_metrics_sql(), {"as_of": as_of or recorded_as_of(con)})


def success_rate_by_origin(con: duckdb.DuckDBPyConnection) -> dict[str, float | None]:
    """{origin: success rate over all days and machines}; None where nothing finished."""
    return dict(con.execute(
        f"SELECT origin, count(*) FILTER (WHERE {SUCCEEDED}) / nullif(count(*) FILTER (WHERE status IN {sql_list(EXECUTED_TERMINAL)}), 0) "
        "FROM commands.proposals GROUP BY origin ORDER BY origin"
    ).fetchall())
