"""``device.command_queue`` (what the sidecar may execute), ``device.command_executions`` (what it did)
and ``device.sidecar_sessions`` (which session is live on which roaster), behind one I/O thread.

The poll loop never touches DuckDB: it hands rows to a ``CommandBridge`` and takes approved
commands from it through in-memory queues; the bridge's own thread reads and writes the warehouse.
The sidecar runs for a whole roast beside other warehouse writers, so the thread never holds the
file: each cycle opens a short connection, and when the file is locked the writes wait in memory
and are retried next cycle (nothing is dropped: every execution is also in the recording file).
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb

from daena_pipelines.db import connect, transaction
from daena_pipelines.device.safety import Command

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
ALTER TABLE device.command_queue ADD COLUMN IF NOT EXISTS roaster_serial VARCHAR;
ALTER TABLE device.command_queue ADD COLUMN IF NOT EXISTS expires_at TIMESTAMPTZ;
ALTER TABLE device.command_queue ADD COLUMN IF NOT EXISTS closed_at TIMESTAMPTZ;
ALTER TABLE device.command_queue ADD COLUMN IF NOT EXISTS closed_reason VARCHAR;
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
CREATE TABLE IF NOT EXISTS device.sidecar_sessions (
    recording_id VARCHAR PRIMARY KEY,
    machine_id VARCHAR NOT NULL,
    roaster_serial VARCHAR,
    model VARCHAR,
    source VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    end_reason VARCHAR
);
"""

EXECUTION_COLUMNS = (
    "execution_id", "proposal_id", "machine_id", "session_id", "recording_id", "command_type", "target_value",
    "status", "started_at", "completed_at", "session_t_s", "observed_value", "error", "source",
)
SESSION_COLUMNS = ("recording_id", "machine_id", "roaster_serial", "model", "source", "started_at", "ended_at", "end_reason")
QUEUE_COLUMNS = ("proposal_id", "machine_id", "command_type", "target_value", "target_unit", "session_id",
                 "roaster_serial", "approved_at", "expires_at")


def ensure_tables(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


class CommandBridge:
    """The sidecar's only warehouse user: a thread that every ``interval_s`` writes what the poll
    loop reported and reads the APPROVED proposals for ``machine_id`` it has not handed out yet.

    Poll-loop side (never blocks): ``take()``, ``execution(row)``, ``expired(...)``, ``session(row)``.
    ``sync()`` runs one cycle and waits for it: only for stepped simulations, whose device time has
    no relation to the wall clock (in real or scaled time the thread runs on its own)."""

    def __init__(self, warehouse_path: str, machine_id: str, recording_id: str, interval_s: float):
        self.path = warehouse_path
        self.machine_id = machine_id
        self.recording_id = recording_id
        self.interval_s = interval_s
        self._commands: queue.SimpleQueue[Command] = queue.SimpleQueue()
        self._reports: queue.SimpleQueue[tuple[str, dict]] = queue.SimpleQueue()
        self._pending: dict[tuple[str, str], dict] = {}  # (kind, key) -> newest row not yet written
        self._handed_out: set[str] = set()
        self._tables_ready = False
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._cycles = 0
        self._cycle_done = threading.Condition()
        self.cycle_seconds: list[float] = []  # how long each warehouse cycle took (benchmark, logs)
        self.unwritten = 0  # rows still pending after the last cycle
        self._thread = threading.Thread(target=self._run, name="sidecar-warehouse", daemon=True)

    # ----- poll-loop side ------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def take(self) -> list[Command]:
        commands = []
        while True:
            try:
                commands.append(self._commands.get_nowait())
            except queue.Empty:
                return commands

    def execution(self, row: dict) -> None:
        """Insert or update one execution row (its status is mirrored on the queue row)."""
        self._reports.put(("execution", row))

    def expired(self, proposal_id: str, closed_at, reason: str) -> None:
        """Close a stale approval as EXPIRED; it never ran, so it has no execution row."""
        self._reports.put(("expired", {"proposal_id": proposal_id, "closed_at": closed_at, "reason": reason}))

    def session(self, row: dict) -> None:
        """Insert or update this sidecar's row in ``device.sidecar_sessions``."""
        self._reports.put(("session", row))

    def set_session_id(self, session_id: str) -> None:
        self._reports.put(("session_id", {"session_id": session_id}))

    def sync(self, timeout_s: float = 30.0) -> None:
        with self._cycle_done:
            target = self._cycles + 1
            self._wake.set()
            self._cycle_done.wait_for(lambda: self._cycles >= target, timeout_s)

    def stop(self, timeout_s: float) -> bool:
        """Write what is pending (one last cycle) and stop; False if rows could not be written."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout_s)
        return not self._thread.is_alive() and self.unwritten == 0

    # ----- I/O thread ----------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval_s)
            self._wake.clear()
            stopping = self._stopping.is_set()
            self._cycle(read=not stopping)
            with self._cycle_done:
                self._cycles += 1
                self._cycle_done.notify_all()
            if stopping:
                return

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.path) as con:
            if not self._tables_ready:
                ensure_tables(con)
                self._tables_ready = True
            yield con

    def _cycle(self, read: bool) -> None:
        started = time.perf_counter()
        while True:
            try:
                kind, row = self._reports.get_nowait()
            except queue.Empty:
                break
            key = {"execution": "execution_id", "expired": "proposal_id", "session": "recording_id"}.get(kind)
            self._pending[(kind, row[key] if key else kind)] = row
        try:
            with self._connection() as con:
                if self._pending:
                    with transaction(con):
                        for (kind, _), row in self._pending.items():
                            self._write(con, kind, row)
                    self._pending.clear()
                if read:
                    for command in self._approved(con):
                        self._handed_out.add(command.proposal_id)
                        self._commands.put(command)
        except duckdb.Error as error:
            log.warning("warehouse busy (%s); %d row(s) kept for the next try", error, len(self._pending))
        self.unwritten = len(self._pending)
        self.cycle_seconds.append(time.perf_counter() - started)

    def _write(self, con: duckdb.DuckDBPyConnection, kind: str, row: dict) -> None:
        if kind == "execution":
            con.execute(
                f"INSERT OR REPLACE INTO device.command_executions ({', '.join(EXECUTION_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(EXECUTION_COLUMNS))})",
                [row.get(c) for c in EXECUTION_COLUMNS],
            )
            con.execute("UPDATE device.command_queue SET status = ? WHERE proposal_id = ?", [row["status"], row["proposal_id"]])
        elif kind == "expired":
            con.execute(
                "UPDATE device.command_queue SET status = 'EXPIRED', closed_at = ?, closed_reason = ? "
                "WHERE proposal_id = ? AND status = 'APPROVED'",
                [row["closed_at"], row["reason"], row["proposal_id"]],
            )
        elif kind == "session":
            con.execute(
                f"INSERT OR REPLACE INTO device.sidecar_sessions ({', '.join(SESSION_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(SESSION_COLUMNS))})",
                [row.get(c) for c in SESSION_COLUMNS],
            )
        else:  # the recording's session id, known once it has closed
            con.execute("UPDATE device.command_executions SET session_id = ? WHERE recording_id = ?",
                        [row["session_id"], self.recording_id])

    def _approved(self, con: duckdb.DuckDBPyConnection) -> list[Command]:
        """APPROVED proposals for this machine meant for this session or for none, oldest approval
        first. Whether each may run (age, serial, session) is decided by the poll loop."""
        rows = con.execute(
            f"""
            SELECT {', '.join('q.' + c for c in QUEUE_COLUMNS)}
            FROM device.command_queue q
            WHERE q.status = 'APPROVED' AND q.machine_id = ?
              AND (q.session_id IS NULL OR q.session_id = ?)
              AND NOT EXISTS (SELECT 1 FROM device.command_executions e WHERE e.proposal_id = q.proposal_id)
            ORDER BY q.approved_at NULLS FIRST, q.created_at, q.proposal_id
            """,
            [self.machine_id, self.recording_id],
        ).fetchall()
        return [Command(**dict(zip(QUEUE_COLUMNS, row))) for row in rows if row[0] not in self._handed_out]
