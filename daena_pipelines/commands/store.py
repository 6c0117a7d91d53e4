"""Readers for the command service's store (SQLite database, JSONL export) and the sidecar's executions.

Every reader validates row by row: a bad row becomes an ``IngestError`` naming file and line/row,
the good rows still load. ``combine`` merges the sources into one ``Batch`` and ``accept`` splits
it into accepted proposals and lifecycle problems (see docs/commands.md).
"""
from __future__ import annotations

import codecs
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from daena_pipelines.commands.model import (
    COMMAND_TYPES,
    EXECUTED_TERMINAL,
    AuditEntry,
    IngestError,
    InvalidTransition,
    Proposal,
    RowError,
    audit_from_fields,
    check_lifecycle,
    least_real,
    parse_choice,
    parse_number,
    parse_text,
    parse_timestamp,
    proposal_from_fields,
)
from daena_pipelines.device import contract as device
from daena_pipelines.values import unique_keys

SIDECAR_SOURCE = "sidecar"

# The command service's SQLite store as this reader expects it. Timestamps are ISO 8601 text with
# a UTC offset; constraints is a JSON object as text; audit_log rows are in log order by entry_id.
SQLITE_SCHEMA = """
CREATE TABLE proposals (
    proposal_id            TEXT PRIMARY KEY,
    machine_id             TEXT NOT NULL,
    session_id             TEXT,
    command_type           TEXT NOT NULL,
    target_value           REAL,
    target_unit            TEXT,
    constraints            TEXT,
    proposed_by            TEXT NOT NULL,
    actor                  TEXT NOT NULL,
    reasoning              TEXT,
    status                 TEXT NOT NULL,
    created_at             TEXT NOT NULL,
    approved_at            TEXT,
    rejected_at            TEXT,
    execution_started_at   TEXT,
    execution_completed_at TEXT,
    rejection_reason       TEXT,
    outcome                TEXT,
    actual_value           REAL,
    error                  TEXT,
    session_t_s            REAL,
    origin                 TEXT,
    expired_at             TEXT,
    expiry_reason          TEXT
);
CREATE TABLE audit_log (
    entry_id    INTEGER PRIMARY KEY,
    proposal_id TEXT NOT NULL,
    changed_at  TEXT NOT NULL,
    from_status TEXT,
    to_status   TEXT NOT NULL,
    actor       TEXT,
    note        TEXT
);
"""
PROPOSAL_COLUMNS = (
    "proposal_id", "machine_id", "session_id", "command_type", "target_value", "target_unit",
    "constraints", "proposed_by", "actor", "reasoning", "status", "created_at", "approved_at",
    "rejected_at", "execution_started_at", "execution_completed_at", "rejection_reason", "outcome",
    "actual_value", "error", "session_t_s", "origin", "expired_at", "expiry_reason",
)
# Columns a store may lack (older stores): read as NULL; origin then defaults to real.
OPTIONAL_PROPOSAL_COLUMNS = ("origin", "expired_at", "expiry_reason")
AUDIT_COLUMNS = ("entry_id", "proposal_id", "changed_at", "from_status", "to_status", "actor", "note")
# The columns of device.command_executions (device/contract.py) a proposal's lifecycle needs;
# the sidecar's own ids are not, and these are read when present (older warehouses lack them).
OPTIONAL_EXECUTION_COLUMNS = ("session_t_s", "command_timeout_s")
EXECUTION_COLUMNS = tuple(
    c for c in device.COMMAND_EXECUTIONS_COLUMNS if c not in ("execution_id", "recording_id", *OPTIONAL_EXECUTION_COLUMNS)
)


@dataclass
class Batch:
    """Proposals by id (first seen wins), their audit history in log order, and every row error."""

    proposals: dict[str, Proposal] = field(default_factory=dict)
    audit: dict[str, list[AuditEntry]] = field(default_factory=dict)
    # Status a proposal's history starts from: None = creation; "APPROVED" for sidecar-only ones.
    starts_at: dict[str, str | None] = field(default_factory=dict)
    errors: list[IngestError] = field(default_factory=list)

    def add(self, proposal: Proposal, history: list[AuditEntry], starts_at: str | None = None) -> None:
        first = self.proposals.get(proposal.proposal_id)
        if first is None:
            self.proposals[proposal.proposal_id] = proposal
            self.audit[proposal.proposal_id] = history
            self.starts_at[proposal.proposal_id] = starts_at
        elif not _same_record(first, proposal, self.audit[proposal.proposal_id], history):
            self.errors.append(
                IngestError(proposal.source, proposal.location, proposal.proposal_id, "duplicate_proposal_id",
                            f"proposal {proposal.proposal_id} differs from the one already read at {first.location}; "
                            "the first one is kept")
            )


def _same_record(a: Proposal, b: Proposal, history_a: list[AuditEntry], history_b: list[AuditEntry]) -> bool:
    """The same proposal exported twice (e.g. in the database and in a JSONL export) is one record."""
    same_history = [replace(e, source="") for e in history_a] == [replace(e, source="") for e in history_b]
    return same_history and replace(a, source="") == replace(b, source="")


@dataclass
class Accepted:
    proposals: list[Proposal]
    audit: list[AuditEntry]
    invalid_transitions: list[InvalidTransition]
    errors: list[IngestError]


def _input(path: Path | str, kind: str) -> tuple[Path, str]:
    """The input file (which must exist: a configured path that is missing is a mistake) and its source label."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"command proposals input {path} does not exist")
    return path, f"{kind}:{path.name}"


# ---- SQLite store ---------------------------------------------------------------------------------


class _NotUtf8(bytes):
    """A TEXT value whose bytes are not UTF-8 (SQLite stores whatever bytes it is given)."""


def _text_or_marker(raw: bytes) -> str | _NotUtf8:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return _NotUtf8(raw)


def read_sqlite(path: Path | str) -> Batch:
    """Read the command service's SQLite store (schema: ``SQLITE_SCHEMA``).

    A bad row is one error naming its rowid; a file SQLite cannot read through (not a database,
    truncated, corrupt) is one error naming the file, and none of its rows load: half a
    database would mean half-known histories."""
    path, source = _input(path, "sqlite")
    if path.stat().st_size == 0:
        return Batch(errors=[IngestError(source, str(path), None, "not_a_database", "empty file (0 bytes): not a SQLite database")])
    batch = Batch()
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        con.text_factory = _text_or_marker
        con.row_factory = sqlite3.Row
        try:
            problems = []
            for table, needed in (("proposals", PROPOSAL_COLUMNS), ("audit_log", AUDIT_COLUMNS)):
                have = {row[1] for row in con.execute(f"PRAGMA table_info({table})")}
                missing = [c for c in needed if c not in have and c not in OPTIONAL_PROPOSAL_COLUMNS]
                if missing:
                    problems.append(f"table {table} lacks columns {', '.join(missing)}")
            if problems:
                return Batch(errors=[IngestError(source, str(path), None, "bad_schema", "; ".join(problems))])
            history = _group_audit(
                ((f"{path}:audit_log entry_id={row['entry_id']}", dict(row))
                 for row in con.execute("SELECT * FROM audit_log ORDER BY entry_id")),
                source, batch,
            )
            rows = ((f"{path}:proposals rowid={row['rowid']}", dict(row))
                    for row in con.execute("SELECT rowid, * FROM proposals ORDER BY rowid"))
            _add_proposals(rows, history, source, batch)
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return Batch(errors=[IngestError(source, str(path), None, "unreadable_database",
                                         f"SQLite cannot read the file ({exc}): not a database, truncated or corrupt")])
    return batch


def _check_utf8(fields: dict) -> None:
    for name, value in fields.items():
        if isinstance(value, _NotUtf8):
            try:
                value.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RowError("encoding", f"{name} is not UTF-8 text: byte {exc.start} ({exc.reason})") from None


def _group_audit(rows, source: str, batch: Batch) -> dict[str, list[AuditEntry]]:
    history: dict[str, list[AuditEntry]] = {}
    for location, fields in rows:
        try:
            _check_utf8(fields)
            entry = audit_from_fields(fields, source, location)
        except RowError as exc:
            batch.errors.append(IngestError(source, location, _id_or_none(fields), exc.kind, str(exc)))
            continue
        history.setdefault(entry.proposal_id, []).append(entry)
    return history


def _id_or_none(fields: dict) -> str | None:
    """The row's proposal id when it is one that can be stored (for error rows)."""
    value = fields.get("proposal_id")
    try:
        return parse_text(value, "proposal_id")
    except RowError:
        return None


def _add_proposals(rows, history: dict[str, list[AuditEntry]], source: str, batch: Batch) -> None:
    """Validate proposal rows against their audit entries; entries left without a proposal are errors."""
    for location, fields in rows:
        proposal_id = _id_or_none(fields)
        entries = history.pop(proposal_id, []) if proposal_id else []
        try:
            _check_utf8(fields)
            proposal = proposal_from_fields(fields, "real", source, location)
        except RowError as exc:
            note = f" ({len(entries)} audit entries of it not loaded)" if entries else ""
            batch.errors.append(IngestError(source, location, proposal_id, exc.kind, f"{exc}{note}"))
            continue
        batch.add(proposal, entries)
    for proposal_id, entries in history.items():
        for entry in entries:
            batch.errors.append(IngestError(source, entry.location, proposal_id, "orphan_audit_entry",
                                            f"audit entry for proposal {proposal_id}, which the store does not have"))


# ---- JSONL export ---------------------------------------------------------------------------------


def read_jsonl(path: Path | str) -> Batch:
    """Read a JSONL export: one proposal per line, command and outcome nested, with its audit_log list."""
    path, source = _input(path, "jsonl")
    batch = Batch()
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            if line_no == 1:  # a UTF-8 byte order mark (Windows tools write one) marks the encoding, it is not data
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if not raw.strip():
                continue
            location = f"{path}:{line_no}"
            try:
                _read_export_line(raw, location, source, batch)
            except RowError as exc:
                batch.errors.append(IngestError(source, location, None, exc.kind, str(exc)))
            except Exception as exc:  # a reader bug must not sink the file: record it against the line
                batch.errors.append(IngestError(source, location, None, "internal_error", f"{type(exc).__name__}: {exc}"))
    return batch


def _read_export_line(raw: bytes, location: str, source: str, batch: Batch) -> None:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RowError("encoding", f"line is not UTF-8: byte {exc.start} of the line ({exc.reason})") from None
    try:
        record = json.loads(text, object_pairs_hook=unique_keys)  # a key twice: which one the service meant is unknown
    except json.JSONDecodeError as exc:
        raise RowError("bad_json", f"invalid JSON: {exc.msg} at character {exc.pos}") from None
    except RecursionError:
        raise RowError("bad_json", "JSON nested too deeply to read") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise RowError("bad_json", f"invalid JSON: {str(exc).split(';')[0]}") from None
    if not isinstance(record, dict):
        raise RowError("bad_json", "line is not a JSON object")
    fields, audit_rows = _flatten_export(record)
    history = _group_audit(
        ((f"{location} audit_log[{i}]", {**row, "proposal_id": fields.get("proposal_id")})
         for i, row in enumerate(audit_rows)),
        source, batch,
    )
    _add_proposals([(location, fields)], history, source, batch)


def _flatten_export(record: dict) -> tuple[dict, list]:
    command = record.get("command")
    outcome = record.get("outcome")
    if not isinstance(command, dict):
        raise RowError("missing_field", "command object is required")
    if outcome is not None and not isinstance(outcome, dict):
        raise RowError("bad_value", "outcome must be an object or null")
    audit_rows = record.get("audit_log") or []
    if not isinstance(audit_rows, list):
        raise RowError("bad_value", "audit_log must be a list")
    for index, row in enumerate(audit_rows):
        if not isinstance(row, dict):
            raise RowError("bad_value", f"audit_log[{index}] is not an object")
    outcome = outcome or {}
    fields = {
        **{k: v for k, v in record.items() if k not in ("command", "outcome", "audit_log")},
        "command_type": command.get("type"),
        "machine_id": command.get("machine_id"),
        "target_value": command.get("target_value"),
        "target_unit": command.get("target_unit"),
        "constraints": command.get("constraints"),
        "outcome": outcome.get("result"),
        "actual_value": outcome.get("actual_value"),
        "error": outcome.get("error"),
    }
    return fields, audit_rows


# ---- device sidecar executions ---------------------------------------------------------------------


def apply_executions(batch: Batch, rows: list[dict]) -> None:
    """Fold ``device.command_executions`` rows into the batch.

    An execution of a known proposal extends its history (APPROVED -> EXECUTING -> final status),
    so executing a proposal that was never approved shows up as an invalid transition. An execution
    of an unknown proposal becomes a proposal of its own whose history starts at APPROVED. A second
    execution of one proposal (another start) is one approval run twice: its entries are appended, so
    the proposal is flagged (execution started without a valid approval).
    """
    started: dict[str, datetime] = {}  # proposal_id -> start of the execution of it read first
    for location, execution in _parsed(batch, rows, "device.command_executions", _execution_from_fields):
        execution["command_timeout_s"] = _recorded_timeout(batch, location, execution)
        entries = [AuditEntry(execution["proposal_id"], execution["started_at"], "APPROVED", "EXECUTING",
                              SIDECAR_SOURCE, None, SIDECAR_SOURCE, location)]
        if execution["status"] != "EXECUTING":
            entries.append(AuditEntry(execution["proposal_id"], execution["completed_at"], "EXECUTING",
                                      execution["status"], SIDECAR_SOURCE, execution["error"], SIDECAR_SOURCE, location))
        first_start = started.setdefault(execution["proposal_id"], execution["started_at"])
        if first_start != execution["started_at"]:
            batch.audit[execution["proposal_id"]] = [*batch.audit[execution["proposal_id"]], *entries]
            continue
        known = batch.proposals.get(execution["proposal_id"])
        if known is None:
            batch.add(_proposal_from_execution(execution, location), entries, starts_at="APPROVED")
            continue
        if (known.machine_id, known.command_type) != (execution["machine_id"], execution["command_type"]):
            batch.errors.append(IngestError(SIDECAR_SOURCE, location, known.proposal_id, "conflicting_execution",
                                            f"the sidecar ran {execution['command_type']} on {execution['machine_id']} but "
                                            f"the proposal (at {known.location}) is {known.command_type} on {known.machine_id}"))
            continue
        if known.status in EXECUTED_TERMINAL or known.status == "EXECUTING":
            if known.status == execution["status"] and known.execution_started_at == execution["started_at"]:
                # the store already has this execution, but not the timeout it ran with (only the sidecar records it)
                if known.command_timeout_s is None:
                    batch.proposals[known.proposal_id] = replace(known, command_timeout_s=execution["command_timeout_s"])
                continue
            if known.status == "EXECUTING":
                entries = entries[1:]  # the store saw it start; the sidecar tells how it ended
            else:
                batch.errors.append(IngestError(SIDECAR_SOURCE, location, known.proposal_id, "conflicting_execution",
                                                f"the store says {known.status} (at {known.location}) but the sidecar "
                                                f"says {execution['status']}; the store's record is kept"))
                continue
        batch.audit[known.proposal_id] = [*batch.audit[known.proposal_id], *entries]
        batch.proposals[known.proposal_id] = replace(
            known,
            session_id=known.session_id or execution["session_id"],
            status=execution["status"],
            execution_started_at=known.execution_started_at or execution["started_at"],
            execution_completed_at=execution["completed_at"],
            outcome=_sidecar_outcome(execution["status"]),
            actual_value=execution["observed_value"],
            error=execution["error"],
            session_t_s=known.session_t_s if execution["session_t_s"] is None else execution["session_t_s"],
            origin=least_real(known.origin, execution["origin"]),
            source=f"{known.source} + {SIDECAR_SOURCE}",
            command_timeout_s=execution["command_timeout_s"],
        )


def _parsed(batch: Batch, rows: list[dict], table: str, parse) -> Iterator[tuple[str, dict]]:
    """(location, parse(row)) of each sidecar row that parses; the others become ingest errors."""
    for index, fields in enumerate(rows):
        location = f"{table} row {index} proposal_id={fields.get('proposal_id')}"
        try:
            yield location, parse(fields)
        except RowError as exc:
            batch.errors.append(IngestError(SIDECAR_SOURCE, location, fields.get("proposal_id"), exc.kind, str(exc)))


def _execution_from_fields(fields: dict) -> dict:
    status = parse_choice(fields.get("status"), "status", ("EXECUTING", *EXECUTED_TERMINAL))
    completed_at = parse_timestamp(fields.get("completed_at"), "completed_at", required=status != "EXECUTING")
    return {
        "proposal_id": parse_text(fields.get("proposal_id"), "proposal_id", required=True),
        "machine_id": parse_text(fields.get("machine_id"), "machine_id", required=True),
        "session_id": parse_text(fields.get("session_id"), "session_id"),
        "command_type": parse_choice(fields.get("command_type"), "command_type", COMMAND_TYPES),
        "target_value": parse_number(fields.get("target_value"), "target_value"),
        "status": status,
        "started_at": parse_timestamp(fields.get("started_at"), "started_at", required=True),
        "completed_at": completed_at,
        "observed_value": parse_number(fields.get("observed_value"), "observed_value"),
        "error": parse_text(fields.get("error"), "error"),
        "session_t_s": parse_number(fields.get("session_t_s"), "session_t_s"),
        "origin": parse_choice(fields.get("source"), "source", ("real", "simulator")),
        "command_timeout_s": fields.get("command_timeout_s"),  # read by _recorded_timeout
    }


def _recorded_timeout(batch: Batch, location: str, execution: dict) -> float | None:
    """The execution's recorded command timeout, s; None when not recorded or unusable (EXECUTION_STUCK then uses the
    configured one). An unusable one is an ingest error, but the row stays: it only sets the stuck alert's limit, and
    dropping the execution would drop the alert that a command nobody saw end is still EXECUTING."""
    try:
        timeout = parse_number(execution["command_timeout_s"], "command_timeout_s")
        if timeout is not None and timeout < 0:
            raise RowError("bad_value", f"command_timeout_s={timeout:g} is below 0: a timeout is seconds >= 0 (SafetyLimits)")
        if timeout is not None and timeout > device.MAX_COMMAND_TIMEOUT_S:
            raise RowError("bad_value", f"command_timeout_s={timeout:g} is over the sidecar's {device.MAX_COMMAND_TIMEOUT_S:g} s "
                                        "(SafetyLimits): it would keep the execution from ever counting as stuck")
    except RowError as exc:
        batch.errors.append(IngestError(SIDECAR_SOURCE, location, execution["proposal_id"], exc.kind,
                                        f"{exc}; the execution is kept, EXECUTION_STUCK uses the configured command timeout"))
        return None
    return timeout


def _sidecar_outcome(status: str) -> str | None:
    # The sidecar confirms a level against the next status read: COMPLETED means it was reached.
    return {"COMPLETED": "SUCCESS", "FAILED": "FAILURE", "TIMEOUT": "FAILURE"}.get(status)


def _proposal_from_execution(execution: dict, location: str) -> Proposal:
    return Proposal(
        proposal_id=execution["proposal_id"], machine_id=execution["machine_id"], session_id=execution["session_id"],
        command_type=execution["command_type"], target_value=execution["target_value"], target_unit=None,
        constraints=None, proposed_by=None, actor=None, reasoning=None, status=execution["status"],
        created_at=None, approved_at=None, rejected_at=None, expired_at=None,
        execution_started_at=execution["started_at"], execution_completed_at=execution["completed_at"],
        rejection_reason=None, expiry_reason=None, outcome=_sidecar_outcome(execution["status"]), actual_value=execution["observed_value"],
        error=execution["error"], session_t_s=execution["session_t_s"], origin=execution["origin"], source=SIDECAR_SOURCE,
        command_timeout_s=execution["command_timeout_s"], location=location,
    )


def apply_expiries(batch: Batch, rows: list[dict]) -> None:
    """Fold the approvals the sidecar closed EXPIRED (``device.command_queue`` rows) into the batch.

    An expiry of a known APPROVED proposal extends its history APPROVED -> EXPIRED at closed_at, with
    the reason; one the store never approved thereby gets an invalid transition, as for executions;
    one the store saw executing or ended otherwise is a ``conflicting_expiry`` error (store kept).
    An expiry of an unknown proposal becomes a proposal of its own whose history starts at APPROVED."""
    for location, expiry in _parsed(batch, rows, "device.command_queue", _expiry_from_fields):
        entries = [AuditEntry(expiry["proposal_id"], expiry["closed_at"], "APPROVED", "EXPIRED", SIDECAR_SOURCE,
                              expiry["closed_reason"], SIDECAR_SOURCE, location)]
        known = batch.proposals.get(expiry["proposal_id"])
        if known is None:
            batch.add(_proposal_from_expiry(expiry, location), entries, starts_at="APPROVED")
            continue
        if known.status == "EXPIRED" and known.expired_at == expiry["closed_at"]:
            continue  # the store already has this expiry
        conflict = None
        if (known.machine_id, known.command_type) != (expiry["machine_id"], expiry["command_type"]):
            conflict = (f"the sidecar closed {expiry['command_type']} on {expiry['machine_id']} but the proposal "
                        f"(at {known.location}) is {known.command_type} on {known.machine_id}")
        elif known.status in ("EXECUTING", "EXPIRED", *EXECUTED_TERMINAL):
            conflict = (f"the store says {known.status} (at {known.location}) but the sidecar closed it EXPIRED "
                        f"at {expiry['closed_at'].isoformat()}; the store's record is kept")
        if conflict:
            batch.errors.append(IngestError(SIDECAR_SOURCE, location, known.proposal_id, "conflicting_expiry", conflict))
            continue
        batch.audit[known.proposal_id] = [*batch.audit[known.proposal_id], *entries]
        batch.proposals[known.proposal_id] = replace(
            known, status="EXPIRED", expired_at=expiry["closed_at"], expiry_reason=expiry["closed_reason"],
            origin=least_real(known.origin, expiry["origin"]), source=f"{known.source} + {SIDECAR_SOURCE}",
        )


def _expiry_from_fields(fields: dict) -> dict:
    return {
        "proposal_id": parse_text(fields.get("proposal_id"), "proposal_id", required=True),
        "machine_id": parse_text(fields.get("machine_id"), "machine_id", required=True),
        "command_type": parse_choice(fields.get("command_type"), "command_type", COMMAND_TYPES),
        "target_value": parse_number(fields.get("target_value"), "target_value"),
        "target_unit": parse_text(fields.get("target_unit"), "target_unit"),
        "closed_at": parse_timestamp(fields.get("closed_at"), "closed_at", required=True),
        "closed_reason": parse_text(fields.get("closed_reason"), "closed_reason", required=True),
        "origin": parse_choice(fields.get("closed_source"), "closed_source", ("real", "simulator")),
    }


def _proposal_from_expiry(expiry: dict, location: str) -> Proposal:
    # the queue row's session_id is a sidecar recording id, not a telemetry session: not carried over
    return Proposal(
        proposal_id=expiry["proposal_id"], machine_id=expiry["machine_id"], session_id=None,
        command_type=expiry["command_type"], target_value=expiry["target_value"], target_unit=expiry["target_unit"],
        constraints=None, proposed_by=None, actor=None, reasoning=None, status="EXPIRED",
        created_at=None, approved_at=None, rejected_at=None, expired_at=expiry["closed_at"],
        execution_started_at=None, execution_completed_at=None, rejection_reason=None,
        expiry_reason=expiry["closed_reason"], outcome=None, actual_value=None, error=None, session_t_s=None,
        origin=expiry["origin"], source=SIDECAR_SOURCE, location=location,
    )


# ---- combining and accepting ------------------------------------------------------------------------


def combine(batches: list[Batch]) -> Batch:
    """One batch from several sources, in the given order (the first record of an id wins)."""
    combined = Batch()
    for batch in batches:
        combined.errors.extend(batch.errors)
        for proposal_id, proposal in batch.proposals.items():
            combined.add(proposal, batch.audit[proposal_id], batch.starts_at[proposal_id])
    return combined


def accept(batch: Batch) -> Accepted:
    """Proposals whose lifecycle is valid, their audit entries, and every problem of the others."""
    proposals, audit, invalid = [], [], []
    for proposal_id, proposal in batch.proposals.items():
        history = batch.audit[proposal_id]
        problems = check_lifecycle(proposal, history, batch.starts_at[proposal_id])
        if problems:
            invalid.extend(problems)
        else:
            proposals.append(proposal)
            audit.extend(history)
    return Accepted(proposals, audit, invalid, batch.errors)
