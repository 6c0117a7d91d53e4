"""The ``commands`` tables in DuckDB: their migrations, writing an ingest in one transaction, reading sidecar executions."""
from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime

import duckdb
import pandas as pd

from daena_pipelines.commands import alerts, metrics
from daena_pipelines.commands.contract import PROPOSAL_STATUSES
from daena_pipelines.commands.model import AuditEntry, IngestError, InvalidTransition, Proposal
from daena_pipelines.commands.store import EXECUTION_COLUMNS, OPTIONAL_EXECUTION_COLUMNS, SIDECAR_SOURCE, Accepted
from daena_pipelines.db import comment_columns, insert, retrying_transaction, serialize_writes, table_exists
from daena_pipelines.device import contract as device
from daena_pipelines.migrations import Migration

# Every commands table as migration 4 created it (a later change is a new migration, not an edit here).
DDL = {
    "commands.proposals": """
        proposal_id VARCHAR PRIMARY KEY, machine_id VARCHAR NOT NULL, session_id VARCHAR,
        command_type VARCHAR NOT NULL, target_value DOUBLE, target_unit VARCHAR, constraints JSON,
        proposed_by VARCHAR, actor VARCHAR, reasoning VARCHAR, status VARCHAR NOT NULL,
        created_at TIMESTAMPTZ, approved_at TIMESTAMPTZ, rejected_at TIMESTAMPTZ, expired_at TIMESTAMPTZ,
        execution_started_at TIMESTAMPTZ, execution_completed_at TIMESTAMPTZ, rejection_reason VARCHAR,
        expiry_reason VARCHAR, outcome VARCHAR, actual_value DOUBLE, error VARCHAR, session_t_s DOUBLE,
        origin VARCHAR NOT NULL, source VARCHAR NOT NULL""",
    "commands.audit_log": """
        proposal_id VARCHAR NOT NULL, seq INTEGER NOT NULL, changed_at TIMESTAMPTZ NOT NULL,
        from_status VARCHAR, to_status VARCHAR NOT NULL, actor VARCHAR, note VARCHAR,
        source VARCHAR NOT NULL, PRIMARY KEY (proposal_id, seq)""",
    "commands.invalid_transitions": """
        proposal_id VARCHAR NOT NULL, machine_id VARCHAR, command_type VARCHAR, origin VARCHAR, source VARCHAR NOT NULL,
        location VARCHAR NOT NULL, from_status VARCHAR, to_status VARCHAR, changed_at TIMESTAMPTZ, problem VARCHAR NOT NULL,
        seen_at TIMESTAMPTZ NOT NULL""",
    "commands.ingest_errors": """
        source VARCHAR NOT NULL, location VARCHAR NOT NULL, proposal_id VARCHAR, error_kind VARCHAR NOT NULL,
        message VARCHAR NOT NULL, seen_at TIMESTAMPTZ NOT NULL""",
    "commands.outcome_metrics": metrics.COLUMNS,
    "commands.alerts": alerts.ALERT_COLUMNS,
}
INGEST_TABLES = ("commands.proposals", "commands.audit_log", "commands.invalid_transitions", "commands.ingest_errors")

# How an ingest's as_of was chosen: the time its sources describe, up to which still-pending proposals and
# still-running executions are aged (docs/commands.md, "as_of"). A live source (the command service's store,
# the sidecar's tables) describes the moment it was read; a historical export, the moment it was taken, which
# only its owner knows (run config); the bundled sample ends at its last event, so its outputs are reproducible.
AS_OF_GIVEN = "given (run config as_of)"
AS_OF_RUN_CLOCK = "the run's wall-clock time: live sources"
AS_OF_SAMPLE_END = "the bundled sample's last event"
AS_OF_DDL = """CREATE TABLE IF NOT EXISTS commands.ingest_as_of (
    ingested_at TIMESTAMPTZ NOT NULL, as_of TIMESTAMPTZ NOT NULL, as_of_rule VARCHAR NOT NULL)"""
COMMENTS = {
    "commands.proposals": {
        "status": " | ".join(PROPOSAL_STATUSES) + " (lifecycle in docs/commands.md)",
        "expired_at": "when the device sidecar closed the approval EXPIRED unexecuted (status EXPIRED only)",
        "expiry_reason": "why it expired, as the sidecar gave it (past its expiry, approved before this session, ...)",
        "session_t_s": "seconds from CHARGE when executed; NULL if unknown",
        "origin": "real | simulator | generated (demo data made by scripts/make_sample_proposals.py)",
        "source": "where the row was read from: sqlite:<file>, jsonl:<file>, sidecar, or '<store> + sidecar'",
    },
    "commands.audit_log": {"seq": "position in the proposal's history, from 0"},
    "commands.outcome_metrics": metrics.COMMENTS,
}


def _add_expired(con: duckdb.DuckDBPyConnection) -> None:
    # Tables written before EXPIRED existed hold no expired proposal: NULL and 0 are their true values.
    if table_exists(con, "commands.proposals"):
        con.execute("ALTER TABLE commands.proposals ADD COLUMN IF NOT EXISTS expired_at TIMESTAMPTZ")
        con.execute("ALTER TABLE commands.proposals ADD COLUMN IF NOT EXISTS expiry_reason VARCHAR")
    if table_exists(con, "commands.outcome_metrics"):
        con.execute("ALTER TABLE commands.outcome_metrics ADD COLUMN IF NOT EXISTS n_expired BIGINT")
        con.execute("UPDATE commands.outcome_metrics SET n_expired = 0 WHERE n_expired IS NULL")


def _add_invalid_transition_machine(con: duckdb.DuckDBPyConnection) -> None:
    # Rows written before are left without them (NULL): the UNAPPROVED_EXECUTION alert needs a machine, and the
    # next ingest writes them afresh.
    if table_exists(con, "commands.invalid_transitions"):
        con.execute("ALTER TABLE commands.invalid_transitions ADD COLUMN IF NOT EXISTS machine_id VARCHAR")
        con.execute("ALTER TABLE commands.invalid_transitions ADD COLUMN IF NOT EXISTS command_type VARCHAR")


def _create_tables(con: duckdb.DuckDBPyConnection) -> None:
    # Before this migration every ingest and build re-created its tables (CREATE OR REPLACE), so a warehouse may
    # have them, some with columns in another order (appended by migrations 1 to 3) or without keys (outcome
    # metrics were a CREATE TABLE AS): each is made afresh as a new warehouse gets it and keeps the rows it had, by
    # column name (a column of an older build that no table has any more is not carried).
    con.execute("CREATE SCHEMA IF NOT EXISTS commands")
    for table, columns in DDL.items():
        old = f"{table}_before_migration_4"
        existed = table_exists(con, table)
        if existed:
            con.execute(f"CREATE TABLE {old} AS FROM {table}")
            con.execute(f"DROP TABLE {table}")
        con.execute(f"CREATE TABLE {table} ({columns})")
        comment_columns(con, table, COMMENTS.get(table, {}))
        if existed:
            kept = ", ".join(c for (c,) in con.execute(f"SELECT column_name FROM (DESCRIBE {old}) "
                                                       f"INTERSECT SELECT column_name FROM (DESCRIBE {table})").fetchall())
            con.execute(f"INSERT INTO {table} BY NAME SELECT {kept} FROM {old}")
            con.execute(f"DROP TABLE {old}")


def _add_origin(con: duckdb.DuckDBPyConnection) -> None:
    # Rows written before pooled every origin (or, for invalid_transitions, did not say it): NULL says
    # "not known" until the next ingest and metrics build write them per origin.
    for table in ("outcome_metrics", "alerts", "invalid_transitions"):
        if table_exists(con, f"commands.{table}"):
            con.execute(f"ALTER TABLE commands.{table} ADD COLUMN IF NOT EXISTS origin VARCHAR")


# Migrations 1 to 3 adapted tables an older version left, for the outcome metrics, alerts and checks that read
# them before the next ingest; until migration 4 the runs created the tables.
MIGRATIONS = [
    Migration(1, "status EXPIRED: commands.proposals.expired_at and expiry_reason, commands.outcome_metrics.n_expired", _add_expired),
    Migration(2, "commands.invalid_transitions names the proposal's machine_id and command_type", _add_invalid_transition_machine),
    Migration(3, "origin (real | simulator | generated) in commands.outcome_metrics, alerts and invalid_transitions: "
              "real, simulated and generated proposals are never pooled", _add_origin),
    Migration(4, "every commands table (proposals, audit_log, invalid_transitions, ingest_errors, outcome_metrics, alerts) "
              "made by this migration with its column descriptions; runs replace rows", _create_tables),
    Migration(5, "commands.ingest_as_of: the time the latest ingest's sources describe, and how it was chosen", [
        AS_OF_DDL,
        f"COMMENT ON COLUMN {metrics.AS_OF_TABLE}.as_of IS 'pending waits and running executions are aged up to this time'",
        f"COMMENT ON COLUMN {metrics.AS_OF_TABLE}.as_of_rule IS 'given, the run''s wall-clock time (live sources) "
        "or the bundled sample''s last event (docs/commands.md)'",
    ]),
    # proposals written before hold NULL (not recorded): EXECUTION_STUCK uses the configured timeout for them
    Migration(6, "commands.proposals.command_timeout_s: the command timeout the device sidecar ran the execution with", [
        "ALTER TABLE commands.proposals ADD COLUMN IF NOT EXISTS command_timeout_s DOUBLE",
        "COMMENT ON COLUMN commands.proposals.command_timeout_s IS 'the command timeout the device sidecar ran the execution "
        "with, seconds (device.command_executions); NULL: not recorded, EXECUTION_STUCK then uses its configured one'",
    ]),
]


def last_event(proposals: list[Proposal]) -> datetime | None:
    times = [t for p in proposals for t in (p.created_at, p.approved_at, p.rejected_at, p.expired_at,
                                            p.execution_started_at, p.execution_completed_at) if t is not None]
    return max(times, default=None)


def choose_as_of(given: datetime | None, sample_only: bool, proposals: list[Proposal], now: datetime) -> tuple[datetime, str]:
    """(as_of, rule): ``given`` if set; the last event of a log that is the bundled sample alone; else ``now``."""
    if given is not None:
        return given, AS_OF_GIVEN
    if sample_only and (end := last_event(proposals)) is not None:
        return end, AS_OF_SAMPLE_END
    return now, AS_OF_RUN_CLOCK


def _frame(rows: list, row_type) -> pd.DataFrame:
    """One column per dataclass field, even when there are no rows."""
    return pd.DataFrame([asdict(r) for r in rows], columns=[f.name for f in fields(row_type)])


def replace_ingest(con: duckdb.DuckDBPyConnection, accepted: Accepted, seen_at: datetime, as_of: tuple[datetime, str]) -> None:
    """`write_ingest` in a transaction of its own, run again when a concurrent ingest committed first
    (both update the row db.serialize_writes updates, so the later commit conflicts)."""
    retrying_transaction(con, lambda con: write_ingest(con, accepted, seen_at, as_of))


def write_ingest(con: duckdb.DuckDBPyConnection, accepted: Accepted, seen_at: datetime, as_of: tuple[datetime, str]) -> None:
    """Replace the rows of the four ingest tables and the as_of row (``choose_as_of``) with this ingest (call inside
    one transaction)."""
    # A proposal's or audit entry's location only serves error messages; it is not a column.
    audit = _frame(accepted.audit, AuditEntry).drop(columns="location")
    audit["seq"] = audit.groupby("proposal_id").cumcount() if not audit.empty else []
    frames = [_frame(accepted.proposals, Proposal).drop(columns="location"), audit]
    for rows, row_type in ((accepted.invalid_transitions, InvalidTransition), (accepted.errors, IngestError)):
        frames.append(_frame(rows, row_type).assign(seen_at=pd.Timestamp(seen_at)))
    serialize_writes(con)  # two concurrent replacements on DuckLake would both commit (db.serialize_writes)
    for table, frame in zip(INGEST_TABLES, frames):
        con.execute(f"DELETE FROM {table}")
        insert(con, table, frame)
    con.execute(f"DELETE FROM {metrics.AS_OF_TABLE}")
    insert(con, metrics.AS_OF_TABLE, [(seen_at, *as_of)], ("ingested_at", "as_of", "as_of_rule"))


def read_executions(con: duckdb.DuckDBPyConnection) -> tuple[list[dict], list[IngestError]]:
    """The device sidecar's executions (none while ``device.command_executions`` does not exist).

    The contract columns are required; ``OPTIONAL_EXECUTION_COLUMNS`` are read when the table has them.
    """
    return _read_device_table(con, "command_executions", EXECUTION_COLUMNS, OPTIONAL_EXECUTION_COLUMNS,
                              "", "ORDER BY started_at, proposal_id", "execution")


def read_expiries(con: duckdb.DuckDBPyConnection) -> tuple[list[dict], list[IngestError]]:
    """The approvals the sidecar closed EXPIRED (``device.command_queue`` rows; none without the table)."""
    return _read_device_table(con, "command_queue", device.EXPIRED_APPROVAL_COLUMNS, (),
                              f"WHERE status = '{device.EXPIRED}'", "ORDER BY closed_at, proposal_id", "expiry")


def _read_device_table(con, table: str, required: tuple[str, ...], optional: tuple[str, ...], where: str, order: str,
                       what: str) -> tuple[list[dict], list[IngestError]]:
    have = {name for (name,) in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = 'device' AND table_name = ?", [table]
    ).fetchall()}
    if not have:
        return [], []
    missing = [c for c in required if c not in have]
    if missing:
        return [], [IngestError(SIDECAR_SOURCE, f"device.{table}", None, "bad_schema",
                                f"table lacks columns {', '.join(missing)}; no {what} read")]
    columns = [*required, *(c for c in optional if c in have)]
    cursor = con.execute(f"SELECT {', '.join(columns)} FROM device.{table} {where} {order}")
    return [dict(zip(columns, row)) for row in cursor.fetchall()], []
