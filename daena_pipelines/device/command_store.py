"""``device.command_queue`` (what the sidecar may execute) and ``device.command_executions`` (what it did).

The sidecar runs for a whole roast beside other warehouse writers, so it never holds the DuckDB
file: each read or write opens a short connection, and when the file is locked the write waits
in memory and is retried on the next call (nothing is dropped: every execution is also in the
recording file).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from daena_pipelines.device.safety import Command
from daena_pipelines.db import connect, transaction

log = logging.getLogger(__name__)

DDL = """
CREATE SCHEMA IF NOT EXISTS device;
CREATE TABLE IF NOT EXISTS device.command_queue (
    proposal_id VARCHAR PRIMARY KEY,
    machine_id VARCHAR NOT NULL,
    session_id VARCHAR,
    command_type VARCHAR NOT NULL,
    target_value DOUBLE,
    target_unit VARCHAR,
    status VARCHAR NOT NULL,
    created_at TIMESTAMPTZ DEFAULT current_timestamp,
    approved_at TIMESTAMPTZ,
    source VARCHAR
);
CREATE TABLE IF NOT EXISTS device.command_executions (
    execution_id VARCHAR PRIMARY KEY,
    proposal_id VARCHAR NOT NULL,
    machine_id VARCHAR NOT NULL,
    session_id VARCHAR,
    recording_id VARCHAR,
    command_type VARCHAR NOT NULL,
    target_value DOUBLE,
    status VARCHAR NOT NULL,
    started_at TIMESTAMPTZ,
    completed_at TIMESTAMPTZ,
    session_t_s DOUBLE,
    observed_value DOUBLE,
    error VARCHAR,
    source VARCHAR NOT NULL
);
"""

EXECUTION_COLUMNS = (
    "execution_id", "proposal_id", "machine_id", "session_id", "recording_id", "command_type", "target_value",
    "status", "started_at", "completed_at", "session_t_s", "observed_value", "error", "source",
)


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


class WarehouseCommandStore:
    def __init__(self, warehouse_path: str):
        self.path = warehouse_path
        self._unwritten: dict[str, dict] = {}  # execution_id -> newest row not yet in the warehouse
        self._session_ids: dict[str, str] = {}  # recording_id -> session_id waiting to be written
        self._tables_ready = False  # created through the first connection that gets the file

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.path) as con:
            if not self._tables_ready:
                ensure_tables(con)
                self._tables_ready = True
            yield con

    def approved(self, machine_id: str, recording_id: str, exclude: set[str]) -> list[Command] | None:
        """APPROVED proposals for this machine, oldest approval first; None when the warehouse is busy."""
        try:
            with self._connection() as con:
                rows = con.execute(
                    """
                    SELECT q.proposal_id, q.machine_id, q.command_type, q.target_value, q.target_unit, q.session_id
                    FROM device.command_queue q
                    WHERE q.status = 'APPROVED' AND q.machine_id = ?
                      AND (q.session_id IS NULL OR q.session_id = ?)
                      AND NOT EXISTS (SELECT 1 FROM device.command_executions e WHERE e.proposal_id = q.proposal_id)
                    ORDER BY q.approved_at NULLS LAST, q.created_at, q.proposal_id
                    """,
                    [machine_id, recording_id],
                ).fetchall()
        except duckdb.Error as error:
            log.warning("command queue not readable now (%s); will retry", error)
            return None
        return [Command(*row) for row in rows if row[0] not in exclude]

    def record(self, row: dict) -> None:
        """Insert or update one execution row and mirror its status on the queue row."""
        self._unwritten[row["execution_id"]] = row
        self.flush()

    def set_session_id(self, recording_id: str, session_id: str) -> None:
        self._session_ids[recording_id] = session_id
        self.flush()

    def flush(self) -> bool:
        """Write what is pending; False when the warehouse is locked (kept for the next call)."""
        if not self._unwritten and not self._session_ids:
            return True
        try:
            with self._connection() as con, transaction(con):
                for row in self._unwritten.values():
                    con.execute(
                        f"INSERT OR REPLACE INTO device.command_executions ({', '.join(EXECUTION_COLUMNS)}) "
                        f"VALUES ({', '.join('?' * len(EXECUTION_COLUMNS))})",
                        [row.get(c) for c in EXECUTION_COLUMNS],
                    )
                    con.execute(
                        "UPDATE device.command_queue SET status = ? WHERE proposal_id = ?",
                        [row["status"], row["proposal_id"]],
                    )
                for recording_id, session_id in self._session_ids.items():
                    con.execute(
                        "UPDATE device.command_executions SET session_id = ? WHERE recording_id = ?",
                        [session_id, recording_id],
                    )
        except duckdb.Error as error:
            log.warning("command executions not written yet (%s); will retry", error)
            return False
        self._unwritten.clear()
        self._session_ids.clear()
        return True

