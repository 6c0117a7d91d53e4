"""Assets of the commands domain: proposals ingest, outcome metrics, alerts.

Thin layer: reading and validation live in ``store``/``model``, SQL in ``tables``/``metrics``/``alerts``.
"""

import typing
from dataclasses import fields
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import pydantic

from daena_pipelines.commands import alerts, contract, metrics, store, tables
from daena_pipelines.commands.model import parse_timestamp
from daena_pipelines.config import ASSETS_DIR
from daena_pipelines.db import retrying_transaction
from daena_pipelines.device import contract as device
from daena_pipelines.lib.metadata import table_metadata
from daena_pipelines.lib.specs import asset_defaults, key, table_spec
from daena_pipelines.lib.warehouse import DUCKDB_POOL, WarehouseResource

DEFAULT_DIR = ASSETS_DIR / "commands"


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
    as_of: typing.Optional[str] = pydantic.Field(
        default=None, description="ISO time the sources describe: proposals still pending and executions still running are "
        "aged up to it (APPROVAL_TIMEOUT, EXECUTION_STUCK). Default: the run's wall-clock time, right for the live store "
        "and the sidecar's tables; give it for a historical export (when it was taken). The bundled sample alone: its last event",
    )
    read_sidecar_executions: bool = pydantic.Field(
        default=True, description="also fold in the device sidecar's work when its tables exist: device.command_executions "
        "and the approvals it closed EXPIRED in device.command_queue"
    )


# Alert thresholds as run config: one field per AlertThresholds field with the same default,
# so the defaults are written once (alerts.py) and documented in docs/commands.md.
# The alerts age open proposals to the ingest's as_of (CommandSourcesConfig.as_of), as the outcome metrics do.
AlertsConfig = pydantic.create_model(
    "AlertsConfig",
    __base__=dg.Config,
    **{f.name: (typing.get_type_hints(alerts.AlertThresholds)[f.name], f.default) for f in fields(alerts.AlertThresholds)},
)


SIDECAR_TABLES = [device.COMMAND_EXECUTIONS, device.COMMAND_QUEUE]


@dg.multi_asset(
    specs=[
        table_spec(contract.PROPOSALS, "Command proposals with a valid lifecycle, from the command service's store "
              "(SQLite, JSONL exports), the device sidecar's executions and the approvals it closed EXPIRED.",
              deps=SIDECAR_TABLES),
        table_spec(contract.AUDIT_LOG, "Status changes of every accepted proposal, in order (seq from 0).", deps=SIDECAR_TABLES),
        table_spec(contract.INVALID_TRANSITIONS, "Lifecycle problems found in the input; those proposals are not in commands.proposals.",
              deps=SIDECAR_TABLES),
        table_spec(contract.INGEST_ERRORS, "Input rows that could not be read: file and line/row, kind and problem.",
              deps=SIDECAR_TABLES),
    ],
    pool=DUCKDB_POOL,
)
def command_proposals(context: dg.AssetExecutionContext, config: CommandSourcesConfig, duckdb: WarehouseResource):
    """Read every source, validate rows and lifecycles, replace the four ingest tables in one transaction."""
    batches = [store.read_sqlite(p) for p in config.sqlite_paths] + [store.read_jsonl(p) for p in config.jsonl_paths]
    combined = store.combine(batches)
    with duckdb.get_connection() as con:
        executions, expiries = [], []
        if config.read_sidecar_executions:
            executions, execution_errors = tables.read_executions(con)
            expiries, expiry_errors = tables.read_expiries(con)
            combined.errors.extend([*execution_errors, *expiry_errors])
        store.apply_executions(combined, executions)
        store.apply_expiries(combined, expiries)
        accepted = store.accept(combined)
        paths = [*config.sqlite_paths, *config.jsonl_paths]
        sample_only = bool(paths) and not executions and not expiries and all(
            Path(p).resolve().parent == DEFAULT_DIR.resolve() for p in paths)
        now = datetime.now(timezone.utc)
        as_of, as_of_rule = tables.choose_as_of(parse_timestamp(config.as_of, "as_of"), sample_only, accepted.proposals, now)
        tables.replace_ingest(con, accepted, now, (as_of, as_of_rule))
        context.log.info(
            f"{len(accepted.proposals)} proposals accepted, {len(accepted.invalid_transitions)} lifecycle problems, "
            f"{len(accepted.errors)} unreadable rows, {len(executions)} sidecar executions, {len(expiries)} expired approvals"
        )
        inputs = {
            "sqlite_paths": dg.MetadataValue.json(config.sqlite_paths),
            "jsonl_paths": dg.MetadataValue.json(config.jsonl_paths),
            "sidecar_executions_read": dg.MetadataValue.int(len(executions)),
            "sidecar_expiries_read": dg.MetadataValue.int(len(expiries)),
            "as_of": dg.MetadataValue.text(as_of.isoformat()),
            "as_of_rule": dg.MetadataValue.text(as_of_rule),
        }
        yield dg.MaterializeResult(
            asset_key=key(contract.PROPOSALS),
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
        yield dg.MaterializeResult(asset_key=key(contract.AUDIT_LOG), metadata=table_metadata(con, "commands.audit_log"))
        yield dg.MaterializeResult(
            asset_key=key(contract.INVALID_TRANSITIONS),
            metadata={
                **table_metadata(con, "commands.invalid_transitions"),
                "rejected_proposals": dg.MetadataValue.int(len({p.proposal_id for p in accepted.invalid_transitions})),
            },
        )
        yield dg.MaterializeResult(asset_key=key(contract.INGEST_ERRORS), metadata={**table_metadata(con, "commands.ingest_errors"), **inputs})


@dg.asset(
    key=key(contract.OUTCOME_METRICS),
    deps=[key(contract.PROPOSALS)],
    **asset_defaults("commands", table=contract.OUTCOME_METRICS),
    description="Per UTC day x machine x command type x origin (real, simulator and generated proposals never pooled): counts per status (EXPIRED: approved, never run), success rate = COMPLETED with outcome "
    "SUCCESS / finished (COMPLETED+FAILED+ABORTED+TIMEOUT; PARTIAL is not success), failure rate = (FAILED+TIMEOUT) / "
    "finished, rejection rate = REJECTED / decided, decision latency (approvals and rejections) and execution "
    "duration p50/p95/p99/max, timeouts and pending decisions apart. Formulas in docs/commands.md.",
)
def outcome_metrics(duckdb: WarehouseResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        retrying_transaction(con, metrics.build_outcome_metrics)  # a concurrent run's replacement conflicts
        by_origin = metrics.success_rate_by_origin(con)
        return dg.MaterializeResult(
            metadata={
                **table_metadata(
                    con, "commands.outcome_metrics",
                    preview_sql="SELECT day, machine_id, command_type, origin, n_proposals, n_terminal_executed, success_rate, "
                    "failure_rate, rejection_rate, approval_latency_p95_s, execution_duration_p95_s, "
                    "n_execution_timeouts FROM commands.outcome_metrics LIMIT 12",
                ),
                # one rate per origin: a generated log's successes never stand for a real machine's
                "as_of": dg.MetadataValue.text(metrics.recorded_as_of(con).isoformat()),
                "success_rate_by_origin": dg.MetadataValue.json({o: None if r is None else float(r) for o, r in by_origin.items()}),
            }
        )


@dg.asset(
    key=key(contract.ALERTS),
    deps=[key(contract.PROPOSALS), key(contract.OUTCOME_METRICS)],
    **asset_defaults("commands", table=contract.ALERTS),
    description="Alerts derived from proposals and outcome metrics: " + ", ".join(alerts.ALERT_TYPES)
    + ". Thresholds are run config (defaults in docs/commands.md).",
)
def command_alerts(config: AlertsConfig, duckdb: WarehouseResource) -> dg.MaterializeResult:
    values = config.model_dump()
    thresholds = alerts.AlertThresholds(**values)
    with duckdb.get_connection() as con:
        retrying_transaction(con, lambda con: alerts.build_alerts(con, thresholds))
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
                "as_of": dg.MetadataValue.text(metrics.recorded_as_of(con).isoformat()),
            }
        )
