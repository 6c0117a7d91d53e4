"""``device.command_queue`` (what the sidecar may execute), ``device.command_executions`` (what it did),
``device.sidecar_sessions`` (which session is live on which roaster) and ``device.machine_leases`` (which
sidecar may execute a machine_id's commands), behind one I/O thread.

The poll loop never touches DuckDB: it hands rows to a ``CommandBridge`` and takes approved
commands from it through in-memory queues; the bridge's own thread reads and writes the warehouse.
The sidecar runs for a whole roast beside other warehouse writers, so the thread never holds the
file: each cycle opens a short connection, and when the file is locked the writes wait in memory
and are retried next cycle (nothing is dropped: every execution is also in the recording file).
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import queue
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace

import duckdb

from daena_pipelines.db import connect, retrying_transaction, serialize_writes, transaction
from daena_pipelines.device import contract
from daena_pipelines.device.clock import since_boot
from daena_pipelines.device.rescue import (
    DIED, PARENT_CHECK_S, WORKER, Outliving, RescuePlan, SharedFlag, after_death, outlive_the_sidecar,
)
from daena_pipelines.migrations import Migration
from daena_pipelines.device.roaster import DeviceError
from daena_pipelines.device.safety import Command

log = logging.getLogger(__name__)

DDL_V1 = """
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

SESSION_COLUMNS = ("recording_id", "machine_id", "roaster_serial", "model", "source", "started_at", "ended_at", "end_reason",
                   "exit_outcome")
QUEUE_COLUMNS = ("proposal_id", "machine_id", "command_type", "target_value", "target_unit", "session_id",
                 "roaster_serial", "approved_at", "expires_at")


MIGRATIONS = [
    Migration(1, "device tables as first created", DDL_V1),
    Migration(2, "approvals name the roaster serial and an expiry; stale ones closed EXPIRED with a reason; live sidecar sessions", [
        "ALTER TABLE device.command_queue ADD COLUMN IF NOT EXISTS roaster_serial VARCHAR",
        "ALTER TABLE device.command_queue ADD COLUMN IF NOT EXISTS expires_at TIMESTAMPTZ",
        "ALTER TABLE device.command_queue ADD COLUMN IF NOT EXISTS closed_at TIMESTAMPTZ",
        "ALTER TABLE device.command_queue ADD COLUMN IF NOT EXISTS closed_reason VARCHAR",
        """CREATE TABLE IF NOT EXISTS device.sidecar_sessions (
    recording_id VARCHAR PRIMARY KEY,
    machine_id VARCHAR NOT NULL,
    roaster_serial VARCHAR,
    model VARCHAR,
    source VARCHAR NOT NULL,
    started_at TIMESTAMPTZ NOT NULL,
    ended_at TIMESTAMPTZ,
    end_reason VARCHAR
);""",
    ]),
    Migration(3, "an approval closed EXPIRED names the source (real | simulator) of the sidecar that closed it", [
        "ALTER TABLE device.command_queue ADD COLUMN IF NOT EXISTS closed_source VARCHAR",
    ]),
    # no PRIMARY KEY (a DuckLake warehouse has none): claims replace the row under db.serialize_writes
    Migration(4, "one live sidecar per machine_id: a lease the holder renews every warehouse cycle", """
CREATE TABLE IF NOT EXISTS device.machine_leases (
    machine_id VARCHAR NOT NULL,
    recording_id VARCHAR NOT NULL,
    model VARCHAR,
    source VARCHAR,
    host VARCHAR,
    pid INTEGER,
    claimed_at TIMESTAMPTZ NOT NULL,
    renewed_at TIMESTAMPTZ NOT NULL,
    lease_until TIMESTAMPTZ NOT NULL
);"""),
    # rows written before hold NULL: nothing recorded the timeout they ran with (the default was 20 s)
    Migration(5, "each execution records the command timeout it ran with (commands' EXECUTION_STUCK reads it)", [
        "ALTER TABLE device.command_executions ADD COLUMN IF NOT EXISTS command_timeout_s DOUBLE",
    ]),
    # rows written before hold NULL: their roaster's end state is in the recording's footer only
    Migration(6, "each ended sidecar session says what became of the roaster (exit_outcome)", [
        "ALTER TABLE device.sidecar_sessions ADD COLUMN IF NOT EXISTS exit_outcome VARCHAR",
        "COMMENT ON COLUMN device.sidecar_sessions.exit_outcome IS 'what became of the roaster when the session ended: "
        "the exit procedure''s outcome (made safe…, already safe, untouched…, left as is…, NOT confirmed safe…, roaster gone…) "
        "or, for a sidecar that died without it, its warehouse worker''s (rescue.py)'",
    ]),
]


ROW_KINDS = ("execution", "expired", "session", "session_id")
APPROVALS_READ = "approvals read"  # (APPROVALS_READ, clock.since_boot() as the cycle began) after each cycle that read the queue
LEASE_LOST = "lease lost"  # (LEASE_LOST, why): another sidecar holds this machine_id now; nothing more is read
DEAD_SESSION_WRITE_S = 60.0  # how long the worker of a dead sidecar keeps trying to write what it left open


class MachineBusy(DeviceError):
    """Another live sidecar holds this machine_id: it reads and runs the machine's approvals."""


def claim_machine(path: str, machine_id: str, recording_id: str, model: str, source: str, lease_s: float) -> str | None:
    """Take ``machine_id``'s lease for ``lease_s`` seconds (the bridge renews it every warehouse cycle), or raise
    ``MachineBusy`` while another sidecar's lease has not lapsed: two sidecars reading one machine_id's approvals
    would each take commands meant for the other's roaster (and run them, or close them FAILED so that the right
    roaster never gets them, an ABORT too). Returns a note when a lapsed lease was taken over."""
    def claim(con: duckdb.DuckDBPyConnection) -> str | None:
        serialize_writes(con)  # two claims at once: the later commit conflicts, runs again and sees the first
        held = con.execute("SELECT recording_id, host, pid, renewed_at, lease_until, lease_until > now() "
                           "FROM device.machine_leases WHERE machine_id = ? ORDER BY lease_until DESC", [machine_id]).fetchone()
        if held is not None and held[5]:
            raise MachineBusy(
                f"machine_id {machine_id!r} is driven by another live sidecar (session {held[0]}, host {held[1]}, pid "
                f"{held[2]}; lease renewed {held[3]:%H:%M:%S}, until {held[4]:%H:%M:%S}): give this sidecar the machine_id "
                "its roaster's approvals name (machine_id=...), or stop the other one first")
        con.execute("DELETE FROM device.machine_leases WHERE machine_id = ?", [machine_id])
        con.execute("INSERT INTO device.machine_leases (machine_id, recording_id, model, source, host, pid, claimed_at, "
                    "renewed_at, lease_until) VALUES (?, ?, ?, ?, ?, ?, now(), now(), now() + to_seconds(?))",
                    [machine_id, recording_id, model, source, socket.gethostname(), os.getpid(), lease_s])
        if held is None:
            return None
        return f"took over the lapsed lease of session {held[0]} (host {held[1]}, pid {held[2]}, last renewed {held[3]})"

    with connect(path) as con:
        return retrying_transaction(con, claim)


class CommandBridge:
    """The sidecar's only warehouse user. Every ``interval_s`` it writes what the poll loop reported
    and reads the APPROVED proposals for ``machine_id`` it has not handed out yet.

    Poll-loop side (never blocks, only in-memory queues): ``take()``, ``execution(row)``,
    ``expired(...)``, ``session(row)``, ``set_session_id(...)``. The DuckDB work runs in a separate
    **process** in real or scaled time, so it never competes with the poll loop for the GIL (as a
    thread it added ~1 ms to the median poll lateness), and in a **thread** for stepped simulations,
    whose loop waits for each cycle (``sync()``) because their time has no wall clock."""

    def __init__(self, warehouse_path: str, machine_id: str, recording_id: str, interval_s: float, stepped: bool = False,
                 lease_s: float | None = None, rescue: RescuePlan | None = None):
        self.stepped = stepped
        if stepped:
            self._reports, self._commands, self._done = queue.Queue(), queue.Queue(), queue.Queue()
            self._commanded = threading.Event()
            make = threading.Thread
            self.worker_name = "sidecar-warehouse"
        else:
            context = multiprocessing.get_context("spawn")  # no fork of a process with threads
            self._reports, self._commands, self._done = context.Queue(), context.Queue(), context.Queue()
            # set before the first command is written, in shared memory (a queued report could die with the
            # sidecar in its feeder thread): the worker makes the roaster safe only when it was commanded
            self._commanded = SharedFlag()
            make = Outliving  # (the spawn context's Process)
            self.worker_name = "sidecar-warehouse-process"
        # a stepped simulation (seconds of CPU) keeps one connection instead of opening one per cycle; its worker is
        # a thread, which dies with the sidecar: no rescue
        self._worker = make(target=_serve, name=self.worker_name, daemon=True, args=(
            warehouse_path, machine_id, recording_id, interval_s, stepped, lease_s, self._reports, self._commands, self._done,
            None if stepped else rescue, self._commanded))
        self.cycle_seconds: list[float] = []  # how long each warehouse cycle took (known after stop)
        self.unwritten = 0  # rows still pending after the last cycle
        self.reads = 0  # cycles that read the queue, as far as take() has seen
        self.read_at: float | None = None  # when the newest of them began (clock.since_boot(), the same in both processes)
        self.lease_lost: str | None = None  # why this sidecar no longer holds its machine_id (as far as take() has seen)

    def start(self) -> None:
        self._worker.start()

    def take(self) -> list[Command]:
        commands = []
        while True:
            try:
                item = self._commands.get_nowait()
            except queue.Empty:
                return commands
            if isinstance(item, tuple) and item[0] == APPROVALS_READ:
                self.reads += 1
                self.read_at = item[1]
            elif isinstance(item, tuple) and item[0] == LEASE_LOST:
                self.lease_lost = item[1]
            else:
                commands.append(item)

    def commanding(self) -> None:
        """The sidecar is about to send the roaster its first command: from now on, should the sidecar be killed,
        the worker makes the roaster safe (``rescue.make_safe``) before it closes the session."""
        self._commanded.set()

    who = WORKER

    def alive(self) -> bool:
        """Whether the worker still runs (it ends only after ``stop``, or after the sidecar's death)."""
        return self._worker.is_alive()

    def execution(self, row: dict) -> None:
        """Insert or update one execution row (its status is mirrored on the queue row)."""
        self._reports.put(("execution", row))

    def expired(self, proposal_id: str, closed_at, reason: str, source: str) -> None:
        """Close a stale approval as EXPIRED; it never ran, so it has no execution row."""
        self._reports.put(("expired", {"proposal_id": proposal_id, "closed_at": closed_at, "reason": reason, "source": source}))

    def session(self, row: dict) -> None:
        """Insert or update this sidecar's row in ``device.sidecar_sessions``."""
        self._reports.put(("session", row))

    def set_session_id(self, session_id: str) -> None:
        self._reports.put(("session_id", {"session_id": session_id}))

    def sync(self, timeout_s: float = 30.0) -> None:
        """Run one cycle now and wait for it (stepped simulations)."""
        self._reports.put(("sync", None))
        self.unwritten, _ = self._done.get(timeout=timeout_s)

    def stop(self, timeout_s: float) -> bool:
        """Write what is pending (one last cycle) and stop; False if rows could not be written."""
        self._reports.put(("stop", None))
        try:
            self.unwritten, self.cycle_seconds = self._done.get(timeout=timeout_s)
        except queue.Empty:
            self.unwritten = -1  # the worker did not answer: unknown
        if self.stepped:
            self._worker.join(1.0)
        else:
            self._worker.end(1.0)
        return self.unwritten == 0


def _close_sessions(con: duckdb.DuckDBPyConnection, recording_ids: list[str], reason: str,
                    roaster: str = "the roaster keeps what it was last sent") -> None:
    """Sessions that ended without their exit procedure: each running command FAILED (nobody confirmed or
    undid it; its queue row too), each session ended with ``reason``; ``roaster``: what became of the roaster."""
    marks = ", ".join("?" * len(recording_ids))
    running = [row[0] for row in con.execute(
        f"SELECT proposal_id FROM device.command_executions WHERE recording_id IN ({marks}) AND status = 'EXECUTING'",
        recording_ids).fetchall()]
    con.execute(f"UPDATE device.command_executions SET status = 'FAILED', completed_at = now(), error = ? "
                f"WHERE recording_id IN ({marks}) AND status = 'EXECUTING'",
                [f"sidecar {reason}, during execution; {roaster}", *recording_ids])
    for proposal_id in running:
        con.execute("UPDATE device.command_queue SET status = 'FAILED' WHERE proposal_id = ? "
                    "AND status IN ('APPROVED', 'EXECUTING')", [proposal_id])
    con.execute(f"UPDATE device.sidecar_sessions SET ended_at = now(), end_reason = ?, exit_outcome = ? "
                f"WHERE recording_id IN ({marks}) AND ended_at IS NULL", [reason, roaster, *recording_ids])


def _serve(path, machine_id, recording_id, interval_s, keep_connection, lease_s, reports, commands, done, rescue,
           commanded) -> None:
    """The worker (thread or process): gather reported rows; every ``interval_s``, on ``sync`` and on
    ``stop``, write them and read new approvals. When its sidecar process dies without its exit procedure,
    a roaster it commanded is made safe first (``rescue``, with the sidecar's exit policy ``make_safe``)."""
    # own process: the sidecar handles the stop signals
    sidecar = outlive_the_sidecar() if threading.current_thread() is threading.main_thread() else None
    io = WarehouseIO(path, machine_id, recording_id, keep_connection, lease_s)
    next_cycle = time.monotonic() + interval_s
    while True:
        if sidecar is not None and not sidecar.is_alive():
            # stop: an orphan would read the queue forever
            _after_sidecar_died(io, reports, rescue, commanded)
            return
        try:
            kind, row = reports.get(timeout=max(0.0, min(next_cycle - time.monotonic(), PARENT_CHECK_S)))
        except queue.Empty:
            if time.monotonic() < next_cycle:
                continue
            kind, row = "cycle", None
        if kind in ROW_KINDS:
            io.add(kind, row)
            if time.monotonic() < next_cycle:
                continue
            kind = "cycle"
        stopping = kind == "stop"
        began = since_boot()  # a revocation committed after this may not be in what the cycle reads (a suspend counts)
        lost = io.lease_lost
        for command in io.cycle(read=not stopping):
            commands.put(command)
        if io.read_ok:
            commands.put((APPROVALS_READ, began))
        if io.lease_lost and not lost:
            commands.put((LEASE_LOST, io.lease_lost))
        next_cycle = time.monotonic() + interval_s
        if kind == "sync":
            done.put((io.unwritten, None))
        if stopping:
            io.release()
            io.close()
            done.put((io.unwritten, io.cycle_seconds))
            return


def _after_sidecar_died(io: "WarehouseIO", reports, rescue: RescuePlan | None, commanded) -> None:
    """Killed (kill -9, OOM) or crashed: no exit procedure ran. The roaster first; then write what the sidecar
    reported, and close what it left open (its running command, its session). Every report still in the pipe
    first: the last ones say which commands it had started."""
    # the lease would lapse during a rescue as long as exit_timeout_s (it is renewed each cycle): another sidecar
    # could then start on the machine, read its approvals and take the roaster between two reopenings
    roaster = after_death(rescue, commanded, WORKER, before_rescue=io.hold_lease_for)
    log.warning("sidecar %s died: %s", io.recording_id, roaster)
    _take_reports(reports, io)
    # nothing waits on this process now: a warehouse another process holds is waited for, not given up with the
    # dead sidecar's last rows (its running command would stay EXECUTING, its session open)
    deadline = time.monotonic() + DEAD_SESSION_WRITE_S
    while True:
        io.cycle(read=False)
        if (io.close_dead_session(roaster) and io.unwritten == 0) or time.monotonic() >= deadline:
            break
        time.sleep(1.0)
    io.close()


def _take_reports(reports, io: "WarehouseIO") -> None:
    """Add every report waiting in ``reports`` (a sidecar that died has sent its last ones)."""
    while True:
        try:
            kind, row = reports.get_nowait()
        except queue.Empty:
            return
        if kind in ROW_KINDS:
            io.add(kind, row)


class WarehouseIO:
    """The DuckDB side of the bridge: rows waiting to be written, approvals already handed out."""

    def __init__(self, path: str, machine_id: str, recording_id: str, keep_connection: bool, lease_s: float | None = None):
        self.path = path
        self.lease_s = lease_s  # renew the machine's lease (claim_machine) for this long each cycle; None: hold none
        self.lease_lost: str | None = None
        self.machine_id = machine_id
        self.recording_id = recording_id
        self.keep_connection = keep_connection
        self._con: duckdb.DuckDBPyConnection | None = None
        self._kept = ExitStack()  # the kept connection's db.connect context
        self._pending: dict[tuple[str, str], dict] = {}  # (kind, key) -> newest row not yet written
        self._handed_out: set[str] = set()
        self._live: dict[str, Command] = {}  # handed out and not finished: watched for revocation
        self._earlier_closed = False
        self.cycle_seconds: list[float] = []
        self.unwritten = 0
        self.read_ok = False  # the last cycle read the queue (new approvals, and changes to the running ones)

    def add(self, kind: str, row: dict) -> None:
        key = {"execution": "execution_id", "expired": "proposal_id", "session": "recording_id"}.get(kind)
        self._pending[(kind, row[key] if key else kind)] = row

    def close(self) -> None:
        self._kept.close()

    @contextmanager
    def _connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self.keep_connection and self._con is None:
            # db.connect, like every writer: the path may be a DuckLake target, not a file
            self._con = self._kept.enter_context(connect(self.path, wait_s=0))
        if self._con is not None:
            yield self._con
            return
        # never wait: the next cycle retries, nothing is lost; the connection brings the tables up to date
        with connect(self.path, wait_s=0) as con:
            yield con

    def cycle(self, read: bool) -> list[Command]:
        """Write what is pending, then (``read``) return the approvals not handed out yet."""
        started = time.perf_counter()
        new: list[Command] = []
        self.read_ok = False
        try:
            with self._connection() as con:
                if self._pending:
                    with transaction(con):
                        if not self._earlier_closed:
                            self._close_earlier_sessions(con)
                        for (kind, _), row in self._pending.items():
                            self._write(con, kind, row)
                    self._pending.clear()
                if read and self._holds_lease(con):
                    new = self._approved(con)
                    self._handed_out.update(command.proposal_id for command in new)
                    self._live.update((command.proposal_id, command) for command in new)
                    new += self._changed_approvals(con)
                    self.read_ok = True
        except duckdb.Error as error:
            log.warning("warehouse busy (%s); %d row(s) kept for the next try", error, len(self._pending))
        self.unwritten = len(self._pending)
        self.cycle_seconds.append(time.perf_counter() - started)
        return new

    def _write(self, con: duckdb.DuckDBPyConnection, kind: str, row: dict) -> None:
        # rows are replaced by key with DELETE + INSERT, not INSERT OR REPLACE: a DuckLake warehouse has no keys
        if kind == "execution":
            con.execute("DELETE FROM device.command_executions WHERE execution_id = ?", [row["execution_id"]])
            con.execute(
                f"INSERT INTO device.command_executions ({', '.join(contract.COMMAND_EXECUTIONS_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(contract.COMMAND_EXECUTIONS_COLUMNS))})",
                [row.get(c) for c in contract.COMMAND_EXECUTIONS_COLUMNS],
            )
            # a status someone else set (a revocation) is theirs to keep; the execution row says what ran
            con.execute("UPDATE device.command_queue SET status = ? WHERE proposal_id = ? AND status IN ('APPROVED', 'EXECUTING')",
                        [row["status"], row["proposal_id"]])
            if row["status"] != "EXECUTING":
                self._live.pop(row["proposal_id"], None)
        elif kind == "expired":
            self._live.pop(row["proposal_id"], None)
            con.execute(
                f"UPDATE device.command_queue SET status = '{contract.EXPIRED}', closed_at = ?, closed_reason = ?, closed_source = ? "
                "WHERE proposal_id = ? AND status = 'APPROVED'",
                [row["closed_at"], row["reason"], row["source"], row["proposal_id"]],
            )
        elif kind == "session":
            con.execute("DELETE FROM device.sidecar_sessions WHERE recording_id = ?", [row["recording_id"]])
            con.execute(
                f"INSERT INTO device.sidecar_sessions ({', '.join(SESSION_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(SESSION_COLUMNS))})",
                [row.get(c) for c in SESSION_COLUMNS],
            )
        else:  # the recording's session id, known once it has closed
            con.execute("UPDATE device.command_executions SET session_id = ? WHERE recording_id = ?",
                        [row["session_id"], self.recording_id])

    def close_dead_session(self, roaster: str) -> bool:
        """The sidecar died: its running command FAILED (nobody confirmed or undid it), its session ended, and its
        lease released (the next sidecar need not wait for it to lapse); ``roaster``: what became of the roaster.
        False when the warehouse could not be written."""
        try:
            with connect(self.path, wait_s=5.0) as con, transaction(con):
                _close_sessions(con, [self.recording_id], DIED, roaster)
                self._close_unreported(con, roaster)
                self._release(con)
        except duckdb.Error as error:
            log.warning("could not close the dead sidecar's rows: %s", error)
            return False
        return True

    def _close_unreported(self, con: duckdb.DuckDBPyConnection, roaster: str) -> None:
        """Approvals handed out to the dead sidecar of which no report reached the warehouse: it may have sent
        their first steps (killed between the write and its report, which died in its feeder thread) or never
        started them. Left APPROVED they would read as still to run."""
        if not self._handed_out:
            return
        taken = sorted(self._handed_out)
        con.execute(f"UPDATE device.command_queue SET status = 'FAILED', closed_at = now(), closed_reason = ? "
                    f"WHERE proposal_id IN ({', '.join('?' * len(taken))}) AND status = 'APPROVED' AND NOT EXISTS "
                    "(SELECT 1 FROM device.command_executions e WHERE e.proposal_id = command_queue.proposal_id)",
                    [f"sidecar {DIED} after it took this approval, before a report of it reached the warehouse (it may "
                     f"have sent steps); {roaster}", *taken])

    def _holds_lease(self, con: duckdb.DuckDBPyConnection) -> bool:
        """Renew this sidecar's lease on its machine_id; False from the first cycle that finds another sidecar's
        (or no) lease row: that one now reads and runs the machine's approvals, this one reads none again."""
        if self.lease_s is None:
            return True
        if self.lease_lost is not None:
            return False
        with transaction(con):
            holders = con.execute("SELECT recording_id, host, pid FROM device.machine_leases WHERE machine_id = ?",
                                  [self.machine_id]).fetchall()
            if [holder[0] for holder in holders] != [self.recording_id]:
                others = [f"session {rid} (host {host}, pid {pid})" for rid, host, pid in holders if rid != self.recording_id]
                self.lease_lost = (f"machine_id {self.machine_id!r} is now held by {', '.join(others)}" if others else
                                   f"the lease row of machine_id {self.machine_id!r} was removed")
                return False
            con.execute("UPDATE device.machine_leases SET renewed_at = now(), lease_until = now() + to_seconds(?) "
                        "WHERE machine_id = ? AND recording_id = ?", [self.lease_s, self.machine_id, self.recording_id])
        return True

    def hold_lease_for(self, extra_s: float) -> None:
        """Hold the lease for its length plus ``extra_s`` from now in this process's name (its pid: the holder a
        refused sidecar is told of is alive), if this session holds one. One try: it must not hold up the rescue it
        precedes."""
        if self.lease_s is None:
            return
        seconds = self.lease_s + extra_s
        try:
            with connect(self.path, wait_s=0) as con:
                con.execute("UPDATE device.machine_leases SET renewed_at = now(), lease_until = now() + to_seconds(?), "
                            "pid = ? WHERE machine_id = ? AND recording_id = ?",
                            [seconds, os.getpid(), self.machine_id, self.recording_id])
        except duckdb.Error as error:  # the rescue goes on: the roaster comes first
            log.warning("could not hold the lease of machine_id %r: %s", self.machine_id, error)

    def release(self) -> None:
        """Give the lease up at the session's end (the next sidecar on this machine_id may start at once)."""
        if self.lease_s is None or self.lease_lost is not None:
            return
        try:
            with self._connection() as con:
                self._release(con)
        except duckdb.Error as error:  # it lapses by itself after lease_s
            log.warning("could not release the lease of machine_id %r: %s", self.machine_id, error)

    def _release(self, con: duckdb.DuckDBPyConnection) -> None:
        con.execute("DELETE FROM device.machine_leases WHERE machine_id = ? AND recording_id = ?",
                    [self.machine_id, self.recording_id])

    def _close_earlier_sessions(self, con: duckdb.DuckDBPyConnection) -> None:
        """Sessions on this roaster left open by a sidecar that died with its worker (power loss, the whole
        container killed). This sidecar has claimed the roaster, so no other one is driving it: they are dead."""
        session = self._pending.get(("session", self.recording_id))
        if session is None or session.get("roaster_serial") is None:
            return  # no serial: another open session may be another roaster's
        dead = [row[0] for row in con.execute(
            "SELECT recording_id FROM device.sidecar_sessions WHERE machine_id = ? AND roaster_serial = ? "
            "AND ended_at IS NULL AND recording_id <> ?",
            [self.machine_id, session["roaster_serial"], self.recording_id]).fetchall()]
        if dead:
            _close_sessions(con, dead, f"{DIED}; found open by session {self.recording_id}, which then claimed the roaster")
        self._earlier_closed = True

    def _changed_approvals(self, con: duckdb.DuckDBPyConnection) -> list[Command]:
        """The handed-out, unfinished approvals whose queue row changed since: a new ``expires_at`` (ending an
        approval now is how the approval service revokes it), or the row deleted or closed by someone else."""
        if not self._live:
            return []
        ids = list(self._live)
        rows = dict((row[0], row[1:]) for row in con.execute(
            f"SELECT proposal_id, status, expires_at FROM device.command_queue WHERE proposal_id IN ({', '.join('?' * len(ids))})",
            ids).fetchall())
        changed = []
        for proposal_id, command in self._live.items():
            status, expires_at = rows.get(proposal_id, (None, None))
            if proposal_id not in rows:
                update = replace(command, revoked="its queue row was deleted")
            elif status not in ("APPROVED", "EXECUTING"):
                update = replace(command, revoked=f"its queue row was set to {status}")
            elif expires_at != command.expires_at:
                update = replace(command, expires_at=expires_at)
            else:
                continue
            self._live[proposal_id] = update
            changed.append(update)
        for update in changed:
            if update.revoked:
                del self._live[update.proposal_id]  # told once
        return changed

    def _approved(self, con: duckdb.DuckDBPyConnection) -> list[Command]:
        """APPROVED proposals for this machine meant for this session or for none, oldest approval
        first. Whether each may run (age, serial, session) is decided by the poll loop. A row a sidecar
        closed EXPIRED (``closed_at``) never runs, even when its status is set back to APPROVED."""
        rows = con.execute(
            f"""
            SELECT {', '.join('q.' + c for c in QUEUE_COLUMNS)}
            FROM device.command_queue q
            WHERE q.status = 'APPROVED' AND q.machine_id = ?
              AND (q.session_id IS NULL OR q.session_id = ?)
              AND NOT EXISTS (SELECT 1 FROM device.command_executions e WHERE e.proposal_id = q.proposal_id)
              AND q.closed_at IS NULL
            ORDER BY q.approved_at NULLS FIRST, q.created_at, q.proposal_id
            """,
            [self.machine_id, self.recording_id],
        ).fetchall()
        return [Command(**dict(zip(QUEUE_COLUMNS, row))) for row in rows if row[0] not in self._handed_out]
