"""The ``commands`` tables in DuckDB: DDL, writing an ingest in one transaction, reading sidecar executions."""
from __future__ import annotations

from dataclasses import asdict, fields
from datetime import datetime

import duckdb
import pandas as pd

from daena_pipelines.commands.contract import PROPOSAL_STATUSES
from daena_pipelines.commands.model import AuditEntry, IngestError, InvalidTransition, Proposal
from daena_pipelines.commands.store import EXECUTION_COLUMNS, SIDECAR_SOURCE, Accepted
from daena_pipelines.db import comment_columns, insert, retrying_transaction, table_exists
from daena_pipelines.device import contract as device
from daena_pipelines.migrations import Migration

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
}
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


# Every ingest replaces the commands tables with the current DDL, so the only migration adapts
# tables an older version left, for the outcome metrics, alerts and checks that read them before
# the next ingest.
def _add_origin(con: duckdb.DuckDBPyConnection) -> None:
    # Rows written before pooled every origin (or, for invalid_transitions, did not say it): NULL says
    # "not known" until the next ingest and metrics build write them per origin.
    for table in ("outcome_metrics", "alerts", "invalid_transitions"):
        if table_exists(con, f"commands.{table}"):
            con.execute(f"ALTER TABLE commands.{table} ADD COLUMN IF NOT EXISTS origin VARCHAR")


MIGRATIONS = [
    Migration(1, "status EXPIRED: commands.proposals.expired_at and expiry_reason, commands.outcome_metrics.n_expired", _add_expired),
    Migration(2, "commands.invalid_transitions names the proposal's machine_id and command_type", _add_invalid_transition_machine),
    Migration(3, "origin (real | simulator | generated) in commands.outcome_metrics, alerts and invalid_transitions: "
              "real, simulated and generated proposals are never pooled", _add_origin),
]


def _frame(rows: list, row_type) -> pd.DataFrame:
    """One column per dataclass field, even when there are no rows."""
    return pd.DataFrame([asdict(r) for r in rows], columns=[f.name for f in fields(row_type)])


def create_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute("CREATE SCHEMA IF NOT EXISTS commands")
    for table, columns in DDL.items():
        con.execute(f"CREATE OR REPLACE TABLE {table} ({columns})")
        comment_columns(con, table, COMMENTS.get(table, {}))




def replace_ingest(con: duckdb.DuckDBPyConnection, accepted: Accepted, seen_at: datetime) -> None:
    """`write_ingest` in a transaction of its own, run again when a concurrent ingest replaced the
    tables first (DuckLake refuses the later of two commits that create or replace the same table)."""
    retrying_transaction(con, lambda con: write_ingest(con, accepted, seen_at))


def write_ingest(con: duckdb.DuckDBPyConnection, accepted: Accepted, seen_at: datetime) -> None:
    """Replace the four ingest tables with this ingest (call inside one transaction)."""
    create_tables(con)
    # A proposal's or audit entry's location only serves error messages; it is not a column.
    insert(con, "commands.proposals", _frame(accepted.proposals, Proposal).drop(columns="location"))

    audit = _frame(accepted.audit, AuditEntry).drop(columns="location")
    audit["seq"] = audit.groupby("proposal_id").cumcount() if not audit.empty else []
    insert(con, "commands.audit_log", audit)

    for table, rows, row_type in (
        ("commands.invalid_transitions", accepted.invalid_transitions, InvalidTransition),
        ("commands.ingest_errors", accepted.errors, IngestError),
    ):
        frame = _frame(rows, row_type)
        frame["seen_at"] = pd.Timestamp(seen_at)
        insert(con, table, frame)


def read_executions(con: duckdb.DuckDBPyConnection) -> tuple[list[dict], list[IngestError]]:
    """The device sidecar's executions (none while ``device.command_executions`` does not exist).

    The contract columns are required; ``session_t_s`` is read when the table has it.
    """
    return _read_device_table(con, "command_executions", EXECUTION_COLUMNS, ("session_t_s",),
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
