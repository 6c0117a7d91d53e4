"""Builders for constructed proposals: a lifecycle path in, a consistent Proposal + audit history out."""
import sqlite3
from dataclasses import replace
from datetime import datetime, timedelta, timezone


from daena_pipelines.commands import metrics, store, tables
from daena_pipelines.commands.model import STATUS_TIMESTAMP, AuditEntry, Proposal
from daena_pipelines.db import connect, transaction

T0 = datetime(2026, 11, 17, 10, 0, tzinfo=timezone.utc)
FULL = ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "EXECUTING", "COMPLETED")


def build(proposal_id, path=FULL, gaps=None, start=T0, **overrides):
    """Proposal walked along ``path``; ``gaps`` are seconds between consecutive statuses (default 1 s each)."""
    gaps = list(gaps) if gaps is not None else [1.0] * (len(path) - 1)
    proposal = Proposal(
        proposal_id=proposal_id, machine_id="bullet-r1-virtual", session_id=None, command_type="SET_POWER",
        target_value=5.0, target_unit="level", constraints=None, proposed_by="AGENT", actor="agent",
        reasoning=None, status=path[-1], created_at=None, approved_at=None, rejected_at=None, expired_at=None,
        execution_started_at=None, execution_completed_at=None, rejection_reason=None, expiry_reason=None, outcome=None,
        actual_value=None, error=None, session_t_s=None, origin="generated", source="test", location=f"test:{proposal_id}",
    )
    history, at, previous = [], start, None
    for index, status in enumerate(path):
        if index:
            at = at + timedelta(seconds=gaps[index - 1])
        if status in STATUS_TIMESTAMP:
            setattr(proposal, STATUS_TIMESTAMP[status], at)
        history.append(AuditEntry(proposal_id, at, previous, status, "agent", None, "test", f"test:{proposal_id}#{index}"))
        previous = status
    if path[-1] == "COMPLETED":
        proposal.outcome, proposal.actual_value = "SUCCESS", proposal.target_value
    return replace(proposal, **overrides), history


def write_store(path, proposals, audit):
    """A command service SQLite store (``store.SQLITE_SCHEMA``) holding ``proposals`` (column -> value
    dicts) and ``audit`` rows (proposal_id, changed_at, from_status, to_status, actor, note)."""
    con = sqlite3.connect(path)
    con.executescript(store.SQLITE_SCHEMA)
    for row in proposals:
        con.execute(f"INSERT INTO proposals ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
    con.executemany("INSERT INTO audit_log (proposal_id, changed_at, from_status, to_status, actor, note) "
                    "VALUES (?, ?, ?, ?, ?, ?)", audit)
    con.commit()
    con.close()
    return path


def write_ingest(con, accepted):
    """The ingest's write at T0, its log aged to its own last event (as the bundled sample is)."""
    tables.write_ingest(con, accepted, T0, tables.choose_as_of(None, True, accepted.proposals, T0))


def load(db_path, built):
    """Write constructed (proposal, history) pairs through the real ingest path and build outcome metrics."""
    batch = store.Batch()
    for proposal, history in built:
        batch.add(proposal, history)
    accepted = store.accept(batch)
    assert not accepted.invalid_transitions, accepted.invalid_transitions
    with connect(db_path) as con, transaction(con):
        write_ingest(con, accepted)
        metrics.build_outcome_metrics(con)
