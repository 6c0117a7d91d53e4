"""Asset checks of the commands domain: keys, lifecycles, timestamps, counts, alerts."""

import dagster as dg

from daena_pipelines.commands import alerts, contract, metrics, store
from daena_pipelines.commands.model import EXECUTED_TERMINAL, TRANSITIONS
from daena_pipelines.lib.checks import rows_result
from daena_pipelines.lib.specs import key
from daena_pipelines.lib.warehouse import DUCKDB_POOL, WarehouseResource

PROPOSALS, AUDIT_LOG = key(contract.PROPOSALS), key(contract.AUDIT_LOG)
INVALID_TRANSITIONS, INGEST_ERRORS = key(contract.INVALID_TRANSITIONS), key(contract.INGEST_ERRORS)
OUTCOME_METRICS, ALERTS = key(contract.OUTCOME_METRICS), key(contract.ALERTS)
DOCS = "docs/commands.md#dagster"


def _check_result(what: str, why: str, labels: tuple[str, ...], rows: list[tuple],
                  severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    """``rows`` are the offending rows, their fields named by ``labels``; ``why`` says what depends on it."""
    return rows_result([dict(zip(labels, row)) for row in rows], f"none: {why}", f"{what} ({why})", severity, DOCS)


@dg.asset_check(asset=PROPOSALS, blocking=True, pool=DUCKDB_POOL,
                description="proposal_id is present and unique; audit (proposal_id, seq) is unique")
def proposal_keys_unique(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        rows = con.execute("""
            SELECT 'proposals', proposal_id, count(*) FROM commands.proposals GROUP BY proposal_id
            HAVING proposal_id IS NULL OR count(*) > 1
            UNION ALL
            SELECT 'audit_log', proposal_id || '#' || seq, count(*) FROM commands.audit_log GROUP BY proposal_id, seq
            HAVING proposal_id IS NULL OR seq IS NULL OR count(*) > 1
        """).fetchall()
    return _check_result("duplicate or missing key", "metrics and alerts join on these keys; a duplicate would count a proposal twice",
                         ("table", "key", "copies"), rows)


def transitions_values() -> str:
    """The legal transitions as a SQL VALUES list (from_status NULL = creation)."""
    pairs = [(f"'{a}'" if a else "NULL", f"'{b}'") for a, targets in TRANSITIONS.items() for b in targets]
    return ", ".join(f"({a}, {b})" for a, b in pairs)


@dg.asset_check(asset=PROPOSALS, blocking=True, pool=DUCKDB_POOL, additional_deps=[AUDIT_LOG],
                description="every accepted proposal's audit history is a chain of legal transitions ending at its status")
def no_invalid_transition_accepted(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    """Re-checks in SQL, independently of the Python ingest, what commands.proposals promises."""
    with duckdb.get_connection() as con:
        rows = con.execute(f"""
            WITH legal(from_status, to_status) AS (VALUES {transitions_values()}),
            chain AS (
                SELECT *, lag(to_status) OVER (PARTITION BY proposal_id ORDER BY seq) AS previous,
                       row_number() OVER (PARTITION BY proposal_id ORDER BY seq DESC) AS from_end
                FROM commands.audit_log)
            SELECT proposal_id, 'illegal transition ' || coalesce(from_status, 'creation') || ' -> ' || to_status
            FROM chain c WHERE NOT EXISTS (
                SELECT 1 FROM legal l WHERE l.from_status IS NOT DISTINCT FROM c.from_status AND l.to_status = c.to_status)
            UNION ALL
            SELECT proposal_id, 'broken chain at seq ' || seq FROM chain WHERE seq > 0 AND from_status IS DISTINCT FROM previous
            UNION ALL
            SELECT p.proposal_id, 'status ' || p.status || ' but audit log ends at ' || coalesce(c.to_status, 'nothing')
            FROM commands.proposals p LEFT JOIN chain c ON c.proposal_id = p.proposal_id AND c.from_end = 1
            WHERE c.to_status IS DISTINCT FROM p.status
        """).fetchall()
    return _check_result("lifecycle break", "metrics assume every proposal followed the documented lifecycle",
                         ("proposal_id", "problem"), rows)


@dg.asset_check(asset=PROPOSALS, blocking=True, pool=DUCKDB_POOL,
                description="finished proposals carry the timestamps their status implies, in order")
def terminal_rows_have_timestamps(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        rows = con.execute(f"""
            SELECT proposal_id, status FROM commands.proposals
            WHERE (status = 'REJECTED' AND rejected_at IS NULL)
               OR (status = 'EXPIRED' AND (expired_at IS NULL OR expired_at < approved_at))
               OR (status IN {metrics.sql_list(EXECUTED_TERMINAL)}
                   AND (execution_started_at IS NULL OR execution_completed_at IS NULL
                        OR execution_completed_at < execution_started_at))
               OR (created_at IS NULL AND source <> '{store.SIDECAR_SOURCE}')
        """).fetchall()
    return _check_result("missing or disordered timestamp", "latency and duration metrics are computed from these timestamps",
                         ("proposal_id", "status"), rows)


@dg.asset_check(asset=INVALID_TRANSITIONS, pool=DUCKDB_POOL,
                description="the input had no illegal lifecycles (warning: those proposals were left out)")
def input_lifecycles_valid(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        rows = con.execute("SELECT proposal_id, location, problem FROM commands.invalid_transitions").fetchall()
    return _check_result("proposal left out for an illegal lifecycle", "flagged, not loaded",
                         ("proposal_id", "location", "problem"), rows, dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset=INGEST_ERRORS, pool=DUCKDB_POOL, description="every input row could be read (warning)")
def input_rows_readable(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        rows = con.execute("SELECT location, error_kind, message FROM commands.ingest_errors").fetchall()
    return _check_result("unreadable input row", "reported here instead of being dropped",
                         ("location", "error_kind", "message"), rows, dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset=OUTCOME_METRICS, blocking=True, pool=DUCKDB_POOL,
                description="status counts add up to n_proposals and to the proposals table; rates within [0, 1]")
def outcome_counts_add_up(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    status_sum = " + ".join(f"n_{s.lower()}" for s in TRANSITIONS if s)
    with duckdb.get_connection() as con:
        rows = con.execute(f"""
            SELECT day, machine_id, command_type FROM commands.outcome_metrics
            WHERE {status_sum} <> n_proposals OR success_rate NOT BETWEEN 0 AND 1 OR rejection_rate NOT BETWEEN 0 AND 1
            UNION ALL
            SELECT NULL, 'total', (SELECT count(*) FROM commands.proposals)
            WHERE (SELECT coalesce(sum(n_proposals), 0) FROM commands.outcome_metrics) <> (SELECT count(*) FROM commands.proposals)
        """).fetchall()
    return _check_result("count that does not add up", "every proposal is counted exactly once, in one status",
                         ("day", "machine_id", "command_type"), rows)


@dg.asset_check(asset=ALERTS, pool=DUCKDB_POOL, description="alert ids unique and alert types known")
def alerts_well_formed(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    known = metrics.sql_list(alerts.ALERT_TYPES)
    with duckdb.get_connection() as con:
        rows = con.execute(f"""
            SELECT alert_id, alert_type FROM commands.alerts WHERE alert_type NOT IN {known}
            UNION ALL
            SELECT alert_id, 'duplicate id' FROM commands.alerts GROUP BY alert_id HAVING count(*) > 1
        """).fetchall()
    return _check_result("malformed alert", "downstream notification deduplicates on alert_id", ("alert_id", "problem"), rows)
