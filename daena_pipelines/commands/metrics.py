"""``commands.outcome_metrics``: outcomes per day x machine x command type, in DuckDB SQL.

Formulas (also in docs/commands.md):
- day = UTC date of created_at (execution_started_at for proposals known only from the sidecar)
- success_rate = COMPLETED / (COMPLETED + FAILED + ABORTED + TIMEOUT); proposals not yet finished
  executing (or never executed) are not in the denominator. NULL when nothing finished.
- rejection_rate = REJECTED / decided, decided = REJECTED + APPROVED-or-later
  (APPROVED, EXECUTING, COMPLETED, FAILED, ABORTED, TIMEOUT). NULL when nothing was decided.
- approval latency = approved_at - created_at (approved proposals), seconds
- execution duration = execution_completed_at - execution_started_at (finished executions), seconds
"""
from __future__ import annotations

import duckdb

from daena_pipelines.commands.model import EXECUTED_TERMINAL, STATUSES
from daena_pipelines.commands.tables import comment_columns

DECIDED = ("REJECTED", "APPROVED", "EXECUTING", *EXECUTED_TERMINAL)
QUANTILES = ((0.5, "p50"), (0.95, "p95"), (0.99, "p99"))


def sql_list(values: tuple[str, ...]) -> str:
    """('A', 'B', ...) for an IN clause; the values are this package's own constants."""
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def _distribution(expression: str, name: str) -> list[str]:
    columns = [f"count({expression}) AS {name}_n"]
    columns += [f"quantile_cont({expression}, {q}) AS {name}_{label}_s" for q, label in QUANTILES]
    return columns + [f"max({expression}) AS {name}_max_s"]


def outcome_metrics_sql() -> str:
    status_counts = [f"count(*) FILTER (WHERE status = '{s}') AS n_{s.lower()}" for s in STATUSES]
    return f"""
        CREATE OR REPLACE TABLE commands.outcome_metrics AS
        WITH p AS (
            SELECT *,
                CAST(timezone('UTC', coalesce(created_at, execution_started_at)) AS DATE) AS day,
                epoch(approved_at) - epoch(created_at) AS approval_latency_s,
                CASE WHEN status IN {sql_list(EXECUTED_TERMINAL)}
                     THEN epoch(execution_completed_at) - epoch(execution_started_at) END AS execution_duration_s
            FROM commands.proposals
        ), counted AS (
            SELECT day, machine_id, command_type,
                count(*) AS n_proposals,
                {', '.join(status_counts)},
                count(*) FILTER (WHERE status IN {sql_list(EXECUTED_TERMINAL)}) AS n_terminal_executed,
                count(*) FILTER (WHERE status IN {sql_list(DECIDED)}) AS n_decided,
                {', '.join(_distribution('approval_latency_s', 'approval_latency'))},
                {', '.join(_distribution('execution_duration_s', 'execution_duration'))}
            FROM p
            GROUP BY day, machine_id, command_type
        )
        SELECT day, machine_id, command_type, n_proposals,
            {', '.join(f'n_{s.lower()}' for s in STATUSES)},
            n_terminal_executed, n_decided,
            n_completed / nullif(n_terminal_executed, 0) AS success_rate,
            n_rejected / nullif(n_decided, 0) AS rejection_rate,
            n_timeout AS n_execution_timeouts,
            COLUMNS('^(approval_latency|execution_duration)_')
        FROM counted
        ORDER BY day, machine_id, command_type
    """


COMMENTS = {
    "success_rate": "COMPLETED / (COMPLETED+FAILED+ABORTED+TIMEOUT); pending or unexecuted proposals never count; NULL if none finished",
    "rejection_rate": "REJECTED / (REJECTED + APPROVED-or-later); NULL if none decided",
    "n_execution_timeouts": "proposals whose execution ended TIMEOUT",
    "approval_latency_n": "approved proposals with a measured approval latency (the sample behind its quantiles)",
    "approval_latency_p50_s": "approved_at - created_at, seconds, over approved proposals",
    "execution_duration_n": "finished executions (the sample behind the duration quantiles)",
    "execution_duration_p50_s": "execution_completed_at - execution_started_at, seconds, over finished executions",
}


def build_outcome_metrics(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(outcome_metrics_sql())
    comment_columns(con, "commands.outcome_metrics", COMMENTS)
