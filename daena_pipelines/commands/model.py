"""Command proposals: the record, its lifecycle state machine and per-row validation.

Pure Python (no Dagster, no database): readers turn raw rows into ``Proposal`` + ``AuditEntry``
objects or ``IngestError``s; ``check_lifecycle`` decides whether one proposal's history is legal.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone

from daena_pipelines.commands import contract
from daena_pipelines.values import as_number, as_text, short

COMMAND_TYPES = ("SET_POWER", "SET_FAN", "SET_DRUM", "ABORT", "PREHEAT", "CHARGE", "DROP")
PROPOSERS = ("AGENT", "HUMAN")
OUTCOMES = ("SUCCESS", "FAILURE", "PARTIAL")
ORIGINS = ("real", "simulator", "generated")  # from most to least real


def least_real(*origins: str) -> str:
    """The origin of a row made of parts of these origins: a simulated end of a real proposal is simulated."""
    return max(origins, key=ORIGINS.index)


STATUSES = contract.PROPOSAL_STATUSES
EXECUTED_TERMINAL = ("COMPLETED", "FAILED", "ABORTED", "TIMEOUT")
TERMINAL = ("REJECTED", "EXPIRED", *EXECUTED_TERMINAL)

# The only legal moves. A proposal is created PROPOSED (audit entry from_status NULL); the safety
# validator may reject it before a human sees it; only an APPROVED command may start executing, and
# an approval the device sidecar finds stale (past its expiry, or meant for an earlier session) ends
# EXPIRED without running.
TRANSITIONS: dict[str | None, tuple[str, ...]] = {
    None: ("PROPOSED",),
    "PROPOSED": ("PENDING_APPROVAL", "REJECTED"),
    "PENDING_APPROVAL": ("APPROVED", "REJECTED"),
    "APPROVED": ("EXECUTING", "EXPIRED"),
    "EXECUTING": EXECUTED_TERMINAL,
    **{status: () for status in TERMINAL},
}

# Which timestamp column a status's entry sets; a proposal has the column iff its history visited it.
STATUS_TIMESTAMP = {
    "PROPOSED": "created_at",
    "APPROVED": "approved_at",
    "REJECTED": "rejected_at",
    "EXPIRED": "expired_at",
    "EXECUTING": "execution_started_at",
    **{status: "execution_completed_at" for status in EXECUTED_TERMINAL},
}
TIMESTAMP_ORDER = ("created_at", "approved_at", "execution_started_at", "execution_completed_at")
# The ends beside that chain: (earlier, later) — a rejection after creation, an expiry after approval.
SIDE_ENDS = (("created_at", "rejected_at"), ("approved_at", "expired_at"))


@dataclass
class Proposal:
    """One row of ``commands.proposals`` (the warehouse contract's columns, in order)."""

    proposal_id: str
    machine_id: str
    session_id: str | None
    command_type: str
    target_value: float | None
    target_unit: str | None
    constraints: str | None  # JSON object text
    proposed_by: str | None
    actor: str | None
    reasoning: str | None
    status: str
    created_at: datetime | None
    approved_at: datetime | None
    rejected_at: datetime | None
    expired_at: datetime | None
    execution_started_at: datetime | None
    execution_completed_at: datetime | None
    rejection_reason: str | None
    expiry_reason: str | None  # why the sidecar closed the approval EXPIRED
    outcome: str | None
    actual_value: float | None
    error: str | None
    session_t_s: float | None
    origin: str
    source: str
    # The command timeout the device sidecar ran the execution with, s (device.command_executions); None: not
    # recorded (the store's own records, a sidecar before device migration 5). EXECUTION_STUCK's limit starts from it.
    command_timeout_s: float | None = None
    # Where the row came from (file:line or table row), for error messages; not a warehouse column.
    location: str = field(default="", compare=False)


@dataclass
class AuditEntry:
    """One status change of a proposal, as the command service (or the sidecar) logged it."""

    proposal_id: str
    changed_at: datetime
    from_status: str | None
    to_status: str
    actor: str | None
    note: str | None
    source: str
    location: str = field(default="", compare=False)


@dataclass
class IngestError:
    """A row that could not be read; the rest of its batch still loads."""

    source: str
    location: str
    proposal_id: str | None
    error_kind: str
    message: str


@dataclass
class InvalidTransition:
    """A lifecycle problem of one proposal; the whole proposal is kept out of ``commands.proposals``."""

    proposal_id: str
    machine_id: str  # the proposal's, so an alert can name the machine of a command run without approval
    command_type: str
    origin: str  # the proposal's (real | simulator | generated), for the UNAPPROVED_EXECUTION alert
    source: str
    location: str
    from_status: str | None
    to_status: str | None
    changed_at: datetime | None
    problem: str


# The problem of an execution whose entry does not continue, by a legal move, an approval that was itself a
# legal move continuing the history: the command ran rejected, expired, re-approved illegally, twice or never approved.
RAN_UNAPPROVED = "execution started without a valid approval: the lifecycle up to it is illegal"


class RowError(ValueError):
    """A field of a raw row is missing or malformed; carries the error kind for the errors table."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


# ---- field parsing -------------------------------------------------------------------------------


def parse_timestamp(value, name: str, required: bool = False) -> datetime | None:
    """ISO 8601 text (or a datetime) with an explicit UTC offset; naive times are ambiguous."""
    if value is None or value == "":
        if required:
            raise RowError("missing_field", f"{name} is required")
        return None
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(parse_text(value, name).replace("Z", "+00:00"))
        except ValueError:
            raise RowError("bad_timestamp", f"{name}={short(value)} is not an ISO 8601 timestamp") from None
    else:
        raise RowError("bad_timestamp", f"{name} is {short(value)} ({type(value).__name__}), expected ISO 8601 text")
    if parsed.tzinfo is None:
        raise RowError("bad_timestamp", f"{name}={value!r} has no UTC offset")
    try:
        return parsed.astimezone(timezone.utc)
    except OverflowError:  # e.g. year 1 at +05:00 is before year 1 in UTC
        raise RowError("bad_timestamp", f"{name}={value!r} is out of range once converted to UTC") from None


def parse_choice(value, name: str, choices: tuple[str, ...], required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise RowError("missing_field", f"{name} is required")
        return None
    if not isinstance(value, str) or value not in choices:
        raise RowError("bad_value", f"{name}={short(value)} is not one of {', '.join(choices)}")
    return value


def parse_number(value, name: str) -> float | None:
    """An int or float; text, even numeric text like '220', is not a number here."""
    if value is None or value == "":
        return None
    return as_number(value, name, RowError)


def parse_text(value, name: str, required: bool = False) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise RowError("missing_field", f"{name} is required")
        return None
    return as_text(value, name, RowError)


def parse_constraints(value) -> str | None:
    """Constraints are a JSON object (text in SQLite, an object in JSONL); stored as compact JSON."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        try:
            value = json.loads(parse_text(value, "constraints"))
        except (json.JSONDecodeError, RecursionError, ValueError) as exc:
            raise RowError("bad_constraints", f"constraints is not valid JSON: {getattr(exc, 'msg', exc)}") from None
    if not isinstance(value, dict):
        raise RowError("bad_constraints", "constraints must be a JSON object")
    try:
        text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:  # UnicodeEncodeError (a lone surrogate) is a ValueError
        raise RowError("bad_constraints", f"constraints cannot be stored as JSON: {exc}") from None
    return text


def proposal_from_fields(fields: dict, origin_default: str, source: str, location: str) -> Proposal:
    """Validate a flat mapping of contract fields into a Proposal, or raise RowError."""
    return Proposal(
        proposal_id=parse_text(fields.get("proposal_id"), "proposal_id", required=True),
        machine_id=parse_text(fields.get("machine_id"), "machine_id", required=True),
        session_id=parse_text(fields.get("session_id"), "session_id"),
        command_type=parse_choice(fields.get("command_type"), "command_type", COMMAND_TYPES),
        target_value=parse_number(fields.get("target_value"), "target_value"),
        target_unit=parse_text(fields.get("target_unit"), "target_unit"),
        constraints=parse_constraints(fields.get("constraints")),
        proposed_by=parse_choice(fields.get("proposed_by"), "proposed_by", PROPOSERS),
        actor=parse_text(fields.get("actor"), "actor", required=True),
        reasoning=parse_text(fields.get("reasoning"), "reasoning"),
        status=parse_choice(fields.get("status"), "status", STATUSES),
        created_at=parse_timestamp(fields.get("created_at"), "created_at", required=True),
        approved_at=parse_timestamp(fields.get("approved_at"), "approved_at"),
        rejected_at=parse_timestamp(fields.get("rejected_at"), "rejected_at"),
        expired_at=parse_timestamp(fields.get("expired_at"), "expired_at"),
        execution_started_at=parse_timestamp(fields.get("execution_started_at"), "execution_started_at"),
        execution_completed_at=parse_timestamp(fields.get("execution_completed_at"), "execution_completed_at"),
        rejection_reason=parse_text(fields.get("rejection_reason"), "rejection_reason"),
        expiry_reason=parse_text(fields.get("expiry_reason"), "expiry_reason"),
        outcome=parse_choice(fields.get("outcome"), "outcome", OUTCOMES, required=False),
        actual_value=parse_number(fields.get("actual_value"), "actual_value"),
        error=parse_text(fields.get("error"), "error"),
        session_t_s=parse_number(fields.get("session_t_s"), "session_t_s"),
        origin=parse_choice(fields.get("origin") or origin_default, "origin", ORIGINS),
        source=source,
        location=location,
    )


def audit_from_fields(fields: dict, source: str, location: str) -> AuditEntry:
    return AuditEntry(
        proposal_id=parse_text(fields.get("proposal_id"), "proposal_id", required=True),
        changed_at=parse_timestamp(fields.get("changed_at"), "changed_at", required=True),
        from_status=parse_choice(fields.get("from_status"), "from_status", STATUSES, required=False),
        to_status=parse_choice(fields.get("to_status"), "to_status", STATUSES),
        actor=parse_text(fields.get("actor"), "actor"),
        note=parse_text(fields.get("note"), "note"),
        source=source,
        location=location,
    )


# ---- lifecycle ------------------------------------------------------------------------------------


def check_lifecycle(proposal: Proposal, history: list[AuditEntry], starts_at: str | None = None) -> list[InvalidTransition]:
    """Every lifecycle problem of one proposal; an empty list means the proposal is accepted.

    ``history`` is its audit entries in log order. ``starts_at`` is the status the history may
    start from: None (creation) for the command service's proposals; "APPROVED" for a proposal
    known only from the sidecar, which executes nothing but approved commands.
    """
    problems: list[InvalidTransition] = []

    def flag(problem: str, entry: AuditEntry | None = None) -> None:
        problems.append(
            InvalidTransition(
                proposal_id=proposal.proposal_id,
                machine_id=proposal.machine_id,
                command_type=proposal.command_type,
                origin=proposal.origin,
                source=entry.source if entry else proposal.source,
                location=entry.location if entry else proposal.location,
                from_status=entry.from_status if entry else None,
                to_status=entry.to_status if entry else proposal.status,
                changed_at=entry.changed_at if entry else None,
                problem=problem,
            )
        )

    if not history:
        flag("no audit log entries: the lifecycle cannot be verified")
        return problems

    current, previous_at, visited, reached_by = starts_at, None, set(), {}
    approved = starts_at == "APPROVED"  # holding an approval given by a legal move that continued the history
    for index, entry in enumerate(history):
        continues = entry.from_status == current
        legal = entry.to_status in TRANSITIONS.get(entry.from_status, ())
        if not continues:
            flag(f"audit entry starts from {entry.from_status or 'creation'} but the proposal was {current or 'not yet created'}", entry)
        if not legal:
            flag(f"{entry.from_status or 'creation'} -> {entry.to_status} is not a valid transition", entry)
        if entry.to_status == "EXECUTING" and not (approved and continues and legal):
            flag(RAN_UNAPPROVED, entry)  # the commands.alerts UNAPPROVED_EXECUTION rule reads this row
        # a log that starts after the creation is flagged above, but its approval still counts
        approved = entry.to_status == "APPROVED" and legal and (continues or (index == 0 and current is None))
        if previous_at is not None and entry.changed_at < previous_at:
            flag(f"audit entry at {entry.changed_at.isoformat()} is earlier than the entry before it", entry)
        current, previous_at = entry.to_status, entry.changed_at
        visited.add(entry.to_status)
        if entry.to_status in STATUS_TIMESTAMP:
            reached_by[STATUS_TIMESTAMP[entry.to_status]] = entry

    if current != proposal.status:
        flag(f"status is {proposal.status} but the audit log ends at {current}")

    reached = {STATUS_TIMESTAMP[s] for s in visited if s in STATUS_TIMESTAMP}
    for column in dict.fromkeys(STATUS_TIMESTAMP.values()):
        present = getattr(proposal, column) is not None
        if column in reached and not present:
            flag(f"{column} is missing although the proposal reached that state")
        elif present and column not in reached:
            flag(f"{column} is set although the proposal never reached that state")
        elif present and getattr(proposal, column) != reached_by[column].changed_at:
            # the metrics and alerts read the columns: one the log contradicts would time the wrong event
            entry = reached_by[column]
            flag(f"{column} ({getattr(proposal, column).isoformat()}) differs from the time of the audit entry "
                 f"that reached {entry.to_status} ({entry.changed_at.isoformat()})", entry)

    chain = [c for c in TIMESTAMP_ORDER if getattr(proposal, c) is not None]
    for earlier, later in (*zip(chain, chain[1:]), *SIDE_ENDS):
        a, b = getattr(proposal, earlier), getattr(proposal, later)
        if a is not None and b is not None and b < a:
            flag(f"{later} ({b.isoformat()}) is before {earlier} ({a.isoformat()})")

    if proposal.outcome is not None and proposal.status not in EXECUTED_TERMINAL:
        flag(f"outcome {proposal.outcome} given although status {proposal.status} is not a finished execution")
    if proposal.status == "COMPLETED" and proposal.outcome == "FAILURE":
        flag("status COMPLETED with outcome FAILURE")
    return problems
