"""Dagster definitions of the commands domain: proposals ingest, outcome metrics, alerts, checks.

Thin layer: reading and validation live in ``store``/``model``, SQL in ``tables``/``metrics``/``alerts``.
"""

import typing
from dataclasses import fields
from datetime import datetime, timezone

import dagster as dg
import pydantic

from daena_pipelines.commands import alerts, metrics, store, tables
from daena_pipelines.commands.model import EXECUTED_TERMINAL, TRANSITIONS, parse_timestamp
from daena_pipelines.config import ASSETS_DIR
from daena_pipelines.table_metadata import table_metadata
from daena_pipelines.warehouse import DUCKDB_POOL, WarehouseResource, transaction

GROUP = "commands"
OWNERS = ["team:roasting-data"]
KINDS = {"duckdb", "python"}
DEFAULT_DIR = ASSETS_DIR / "commands"

PROPOSALS = dg.AssetKey(["commands", "proposals"])
AUDIT_LOG = dg.AssetKey(["commands", "audit_log"])
INVALID_TRANSITIONS = dg.AssetKey(["commands", "invalid_transitions"])
INGEST_ERRORS = dg.AssetKey(["commands", "ingest_errors"])
OUTCOME_METRICS = dg.AssetKey(["commands", "outcome_metrics"])
ALERTS = dg.AssetKey(["commands", "alerts"])
SIDECAR_EXECUTIONS = dg.AssetKey(["device", "command_executions"])


class CommandSourcesConfig(dg.Config):
    """Where the command service's store is; defaults to the bundled generated log."""

    sqlite_paths: list[str] = pydantic.Field(
        default_factory=lambda: [str(DEFAULT_DIR / "command_store.sqlite")],
        description="SQLite stores of the command service (schema in docs/commands.md)",
    )
    jsonl_paths: list[str] = pydantic.Field(
        default_factory=lambda: [str(DEFAULT_DIR / "proposals_2026-11-17.jsonl")],
        description="JSONL exports, one proposal with its audit_log per line",
    )
    read_sidecar_executions: bool = pydantic.Field(
        default=True, description="also fold in device.command_executions when that table exists"
    )


# Alert thresholds as run config: one field per AlertThresholds field with the same default,
# so the defaults are written once (alerts.py) and documented in docs/commands.md.
AlertsConfig = pydantic.create_model(
    "AlertsConfig",
    __base__=dg.Config,
    as_of=(
        typing.Optional[str],
        pydantic.Field(default=None, description="ISO time pending proposals are aged against; default: the log's latest timestamp"),
    ),
    **{f.name: (typing.get_type_hints(alerts.AlertThresholds)[f.name], f.default) for f in fields(alerts.AlertThresholds)},
)


def _spec(key: dg.AssetKey, description: str, deps: list[dg.AssetKey] | None = None) -> dg.AssetSpec:
    return dg.AssetSpec(key=key, description=description, group_name=GROUP, owners=OWNERS, kinds=KINDS, deps=deps or [])


@dg.multi_asset(
    specs=[
        _spec(PROPOSALS, "Command proposals with a valid lifecycle, from the command service's store "
              "(SQLite, JSONL exports) and the device sidecar's executions.", deps=[SIDECAR_EXECUTIONS]),
        _spec(AUDIT_LOG, "Status changes of every accepted proposal, in order (seq from 0).", deps=[SIDECAR_EXECUTIONS]),
        _spec(INVALID_TRANSITIONS, "Lifecycle problems found in the input; those proposals are not in commands.proposals.",
              deps=[SIDECAR_EXECUTIONS]),
        _spec(INGEST_ERRORS, "Input rows that could not be read: file and line/row, kind and problem.",
              deps=[SIDECAR_EXECUTIONS]),
    ],
    pool=DUCKDB_POOL,
)
def command_proposals(context: dg.AssetExecutionContext, config: CommandSourcesConfig, duckdb: WarehouseResource):
    """Read every source, validate rows and lifecycles, replace the four ingest tables in one transaction."""
    batches = [store.read_sqlite(p) for p in config.sqlite_paths] + [store.read_jsonl(p) for p in config.jsonl_paths]
    combined = store.combine(batches)
    with duckdb.get_connection() as con:
        executions, sidecar_errors = tables.read_executions(con) if config.read_sidecar_executions else ([], [])
        combined.errors.extend(sidecar_errors)
        store.apply_executions(combined, executions)
        accepted = store.accept(combined)
        with transaction(con):
            tables.write_ingest(con, accepted, datetime.now(timezone.utc))
        context.log.info(
            f"{len(accepted.proposals)} proposals accepted, {len(accepted.invalid_transitions)} lifecycle problems, "
            f"{len(accepted.errors)} unreadable rows, {len(executions)} sidecar executions"
        )
        inputs = {
            "sqlite_paths": dg.MetadataValue.json(config.sqlite_paths),
            "jsonl_paths": dg.MetadataValue.json(config.jsonl_paths),
            "sidecar_executions_read": dg.MetadataValue.int(len(executions)),
        }
        yield dg.MaterializeResult(
            asset_key=PROPOSALS,
            metadata={
                **table_metadata(con, "commands.proposals"),
                **inputs,
                "by_status": dg.MetadataValue.json(
                    dict(con.execute("SELECT status, count(*) FROM commands.proposals GROUP BY 1 ORDER BY 1").fetchall())
                ),
                "by_origin": dg.MetadataValue.json(
                    dict(con.execute("SELECT origin, count(*) FROM commands.proposals GROUP BY 1 ORDER BY 1").fetchall())
                ),
            },
        )
        yield dg.MaterializeResult(asset_key=AUDIT_LOG, metadata=table_metadata(con, "commands.audit_log"))
        yield dg.MaterializeResult(
            asset_key=INVALID_TRANSITIONS,
            metadata={
                **table_metadata(con, "commands.invalid_transitions"),
                "rejected_proposals": dg.MetadataValue.int(len({p.proposal_id for p in accepted.invalid_transitions})),
            },
        )
        yield dg.MaterializeResult(asset_key=INGEST_ERRORS, metadata={**table_metadata(con, "commands.ingest_errors"), **inputs})


@dg.asset(
    key=OUTCOME_METRICS,
    deps=[PROPOSALS],
    group_name=GROUP,
    owners=OWNERS,
    kinds=KINDS,
    pool=DUCKDB_POOL,
    description="Per UTC day x machine x command type: counts per status, success rate = COMPLETED / "
    "(COMPLETED+FAILED+ABORTED+TIMEOUT), rejection rate = REJECTED / decided, approval latency and "
    "execution duration p50/p95/p99/max, execution timeouts. Formulas in docs/commands.md.",
)
def outcome_metrics(duckdb: WarehouseResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        with transaction(con):
            metrics.build_outcome_metrics(con)
        overall = con.execute(
            f"SELECT count(*) FILTER (WHERE status = 'COMPLETED') / nullif(count(*) FILTER (WHERE status IN {metrics.sql_list(EXECUTED_TERMINAL)}), 0) "
            "FROM commands.proposals"
        ).fetchone()[0]
        return dg.MaterializeResult(
            metadata={
                **table_metadata(
                    con, "commands.outcome_metrics",
                    preview_sql="SELECT day, machine_id, command_type, n_proposals, n_terminal_executed, success_rate, "
                    "rejection_rate, approval_latency_p95_s, execution_duration_p95_s FROM commands.outcome_metrics LIMIT 12",
                ),
                "overall_success_rate": dg.MetadataValue.float(float(overall) if overall is not None else float("nan")),
            }
        )


@dg.asset(
    key=ALERTS,
    deps=[PROPOSALS, OUTCOME_METRICS],
    group_name=GROUP,
    owners=OWNERS,
    kinds=KINDS,
    pool=DUCKDB_POOL,
    description="Alerts derived from proposals and outcome metrics: " + ", ".join(alerts.ALERT_TYPES)
    + ". Thresholds are run config (defaults in docs/commands.md).",
)
def command_alerts(config: AlertsConfig, duckdb: WarehouseResource) -> dg.MaterializeResult:
    values = config.model_dump()
    as_of = parse_timestamp(values.pop("as_of"), "as_of")
    thresholds = alerts.AlertThresholds(**values)
    with duckdb.get_connection() as con:
        with transaction(con):
            alerts.build_alerts(con, thresholds, as_of)
        counts = dict(con.execute("SELECT alert_type, count(*) FROM commands.alerts GROUP BY 1").fetchall())
        return dg.MaterializeResult(
            metadata={
                **table_metadata(
                    con, "commands.alerts",
                    preview_sql="SELECT alert_type, severity, day, machine_id, command_type, proposal_id, message "
                    "FROM commands.alerts ORDER BY severity = 'CRITICAL' DESC, day, alert_type LIMIT 15",
                ),
                "by_type": dg.MetadataValue.json({t: counts.get(t, 0) for t in alerts.ALERT_TYPES}),
                "thresholds": dg.MetadataValue.json(values),
            }
        )


# ---- checks --------------------------------------------------------------------------------------


def _check_result(passed: bool, description: str, rows: list[tuple], severity=dg.AssetCheckSeverity.ERROR) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        passed=passed,
        severity=severity,
        metadata={"why": dg.MetadataValue.text(description), "offending_rows": len(rows),
                  "examples": dg.MetadataValue.json([[str(v) for v in row] for row in rows[:10]])},
    )


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
    return _check_result(not rows, "metrics and alerts join on these keys; a duplicate would count a proposal twice", rows)


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
    return _check_result(not rows, "metrics assume every proposal followed the documented lifecycle", rows)


@dg.asset_check(asset=PROPOSALS, blocking=True, pool=DUCKDB_POOL,
                description="finished proposals carry the timestamps their status implies, in order")
def terminal_rows_have_timestamps(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        rows = con.execute(f"""
            SELECT proposal_id, status FROM commands.proposals
            WHERE (status = 'REJECTED' AND rejected_at IS NULL)
               OR (status IN {metrics.sql_list(EXECUTED_TERMINAL)}
                   AND (execution_started_at IS NULL OR execution_completed_at IS NULL
                        OR execution_completed_at < execution_started_at))
               OR (created_at IS NULL AND source <> '{store.SIDECAR_SOURCE}')
        """).fetchall()
    return _check_result(not rows, "latency and duration metrics are computed from these timestamps", rows)


@dg.asset_check(asset=INVALID_TRANSITIONS, pool=DUCKDB_POOL,
                description="the input had no illegal lifecycles (warning: those proposals were left out)")
def input_lifecycles_valid(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        rows = con.execute("SELECT proposal_id, location, problem FROM commands.invalid_transitions").fetchall()
    return _check_result(not rows, "a proposal with an illegal lifecycle is flagged, not loaded", rows, dg.AssetCheckSeverity.WARN)


@dg.asset_check(asset=INGEST_ERRORS, pool=DUCKDB_POOL, description="every input row could be read (warning)")
def input_rows_readable(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        rows = con.execute("SELECT location, error_kind, message FROM commands.ingest_errors").fetchall()
    return _check_result(not rows, "unreadable rows are reported here instead of being dropped", rows, dg.AssetCheckSeverity.WARN)


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
    return _check_result(not rows, "every proposal is counted exactly once, in one status", rows)


@dg.asset_check(asset=ALERTS, pool=DUCKDB_POOL, description="alert ids unique and alert types known")
def alerts_well_formed(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    known = metrics.sql_list(alerts.ALERT_TYPES)
    with duckdb.get_connection() as con:
        rows = con.execute(f"""
            SELECT alert_id, alert_type FROM commands.alerts WHERE alert_type NOT IN {known}
            UNION ALL
            SELECT alert_id, 'duplicate id' FROM commands.alerts GROUP BY alert_id HAVING count(*) > 1
        """).fetchall()
    return _check_result(not rows, "downstream notification deduplicates on alert_id", rows)


commands_job = dg.define_asset_job(
    "commands_job", selection=dg.AssetSelection.groups(GROUP), description="Ingest proposals, compute outcome metrics and alerts"
)

defs = dg.Definitions(
    assets=[command_proposals, outcome_metrics, command_alerts],
    asset_checks=[
        proposal_keys_unique,
        no_invalid_transition_accepted,
        terminal_rows_have_timestamps,
        input_lifecycles_valid,
        input_rows_readable,
        outcome_counts_add_up,
        alerts_well_formed,
    ],
    jobs=[commands_job],
)
