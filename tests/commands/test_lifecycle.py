from dataclasses import replace
from datetime import timedelta
from itertools import product

import pytest
from proposal_builders import FULL, build

from daena_pipelines.commands.model import (
    STATUSES,
    TRANSITIONS,
    RowError,
    check_lifecycle,
    parse_constraints,
    parse_timestamp,
    proposal_from_fields,
)

# The documented lifecycle (docs/commands.md), written out independently of model.TRANSITIONS.
DOCUMENTED = {
    (None, "PROPOSED"),
    ("PROPOSED", "PENDING_APPROVAL"),
    ("PROPOSED", "REJECTED"),
    ("PENDING_APPROVAL", "APPROVED"),
    ("PENDING_APPROVAL", "REJECTED"),
    ("APPROVED", "EXECUTING"),
    ("APPROVED", "EXPIRED"),
    ("EXECUTING", "COMPLETED"),
    ("EXECUTING", "FAILED"),
    ("EXECUTING", "ABORTED"),
    ("EXECUTING", "TIMEOUT"),
}


def test_transition_table_is_exactly_the_documented_one():
    table = {(a, b) for a, targets in TRANSITIONS.items() for b in targets}
    assert table == DOCUMENTED


@pytest.mark.parametrize("from_status,to_status", list(product(STATUSES, STATUSES)))
def test_every_status_pair_is_judged_by_the_table(from_status, to_status):
    """A two-step history ending in (from -> to): accepted iff the move is documented."""
    reach = {"PROPOSED": ("PROPOSED",), "PENDING_APPROVAL": ("PROPOSED", "PENDING_APPROVAL"),
             "APPROVED": ("PROPOSED", "PENDING_APPROVAL", "APPROVED"), "REJECTED": ("PROPOSED", "REJECTED"),
             "EXECUTING": ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "EXECUTING")}
    if from_status not in reach:  # terminal: nothing may follow
        before = {"REJECTED": reach["PROPOSED"], "EXPIRED": reach["APPROVED"]}.get(from_status, reach["EXECUTING"])
        path = (*before, from_status, to_status)
    else:
        path = (*reach[from_status], to_status)
    proposal, history = build("p1", path)
    problems = check_lifecycle(proposal, history)
    illegal = [p for p in problems if "is not a valid transition" in p.problem]
    assert bool(illegal) == ((from_status, to_status) not in DOCUMENTED)


@pytest.mark.parametrize("path", [
    FULL,
    ("PROPOSED", "REJECTED"),
    ("PROPOSED", "PENDING_APPROVAL", "REJECTED"),
    ("PROPOSED", "PENDING_APPROVAL"),
    ("PROPOSED", "PENDING_APPROVAL", "APPROVED"),
    ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "EXPIRED"),
    ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "EXECUTING", "TIMEOUT"),
])
def test_legal_histories_are_accepted(path):
    proposal, history = build("p1", path)
    assert check_lifecycle(proposal, history) == []


def test_skipping_executing_is_flagged_with_its_location():
    proposal, history = build("p1", ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "COMPLETED"))
    [problem] = check_lifecycle(proposal, history)
    assert problem.problem == "APPROVED -> COMPLETED is not a valid transition"
    assert problem.location == "test:p1#3"


def test_status_column_disagreeing_with_the_log_is_flagged():
    proposal, history = build("p1", FULL)
    problems = check_lifecycle(replace(proposal, status="FAILED"), history)
    assert [p.problem for p in problems] == ["status is FAILED but the audit log ends at COMPLETED"]


def test_broken_chain_and_time_going_backwards_are_flagged():
    proposal, history = build("p1", FULL)
    history[2] = replace(history[2], from_status="PROPOSED")
    history[4] = replace(history[4], changed_at=history[3].changed_at - timedelta(seconds=5))
    problems = [p.problem for p in check_lifecycle(proposal, history)]
    assert any("starts from PROPOSED but the proposal was PENDING_APPROVAL" in p for p in problems)
    assert any("PROPOSED -> APPROVED is not a valid transition" in p for p in problems)
    assert any("earlier than the entry before it" in p for p in problems)


def test_missing_and_unexpected_timestamps_are_flagged():
    proposal, history = build("p1", FULL)
    assert any("execution_completed_at is missing" in p.problem
               for p in check_lifecycle(replace(proposal, execution_completed_at=None), history))
    pending, pending_history = build("p2", ("PROPOSED", "PENDING_APPROVAL"))
    assert any("approved_at is set although" in p.problem
               for p in check_lifecycle(replace(pending, approved_at=pending.created_at), pending_history))


def test_timestamps_out_of_order_are_flagged():
    proposal, history = build("p1", FULL)
    late_start = replace(proposal, execution_started_at=proposal.execution_completed_at + timedelta(seconds=1))
    assert any("execution_completed_at" in p.problem and "is before execution_started_at" in p.problem
               for p in check_lifecycle(late_start, history))


def test_an_expiry_needs_its_time_after_the_approval():
    proposal, history = build("p1", ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "EXPIRED"))
    assert proposal.expired_at is not None and check_lifecycle(proposal, history) == []
    assert [p.problem for p in check_lifecycle(replace(proposal, expired_at=None), history)] == [
        "expired_at is missing although the proposal reached that state"]
    early = replace(proposal, expired_at=proposal.approved_at - timedelta(seconds=1))
    assert [p.problem for p in check_lifecycle(early, history)] == [
        f"expired_at ({early.expired_at.isoformat()}) differs from the time of the audit entry that reached EXPIRED "
        f"({proposal.expired_at.isoformat()})",
        f"expired_at ({early.expired_at.isoformat()}) is before approved_at ({proposal.approved_at.isoformat()})"]
    # an expired approval never runs: nothing may follow it
    ran, ran_history = build("p2", ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "EXPIRED", "EXECUTING"))
    assert "EXPIRED -> EXECUTING is not a valid transition" in [p.problem for p in check_lifecycle(ran, ran_history)]


def test_outcome_needs_a_finished_execution():
    proposal, history = build("p1", ("PROPOSED", "PENDING_APPROVAL", "APPROVED"))
    problems = check_lifecycle(replace(proposal, outcome="SUCCESS"), history)
    assert [p.problem for p in problems] == ["outcome SUCCESS given although status APPROVED is not a finished execution"]


def test_no_history_cannot_be_verified():
    proposal, _ = build("p1", FULL)
    assert "no audit log entries" in check_lifecycle(proposal, [])[0].problem


def test_sidecar_history_may_start_at_approved_but_a_store_one_may_not():
    proposal, history = build("p1", FULL)
    executed = history[3:]
    sidecar_only = replace(proposal, created_at=None, approved_at=None)
    assert check_lifecycle(sidecar_only, executed, starts_at="APPROVED") == []
    assert check_lifecycle(sidecar_only, executed, starts_at=None)


def test_row_fields_are_validated_with_clear_messages():
    good = {"proposal_id": "p1", "machine_id": "m", "command_type": "SET_FAN", "proposed_by": "HUMAN",
            "actor": "ana", "status": "PROPOSED", "created_at": "2026-11-17T10:00:00Z", "constraints": '{"max_value": 9}'}
    proposal = proposal_from_fields(good, "real", "s", "loc")
    assert proposal.constraints == '{"max_value":9}' and proposal.created_at.tzinfo is not None
    for change, kind, text in [
        ({"command_type": "SET_HEAT"}, "bad_value", "command_type='SET_HEAT' is not one of"),
        ({"created_at": "2026-11-17 10:00:00"}, "bad_timestamp", "has no UTC offset"),
        ({"created_at": "yesterday"}, "bad_timestamp", "not an ISO 8601 timestamp"),
        ({"actor": " "}, "missing_field", "actor is required"),
        ({"target_value": "high"}, "bad_value", "target_value='high' is not a number"),
        ({"constraints": "[1, 2]"}, "bad_constraints", "must be a JSON object"),
        ({"origin": "made-up"}, "bad_value", "origin='made-up'"),
        ({"target_value": "220"}, "bad_value", "target_value='220' is not a number (str given)"),  # numeric text too
        ({"target_value": 10**400}, "bad_value", "target_value is an integer of 401 digits, beyond any float"),
        ({"created_at": "0001-01-01T00:00:00+05:00"}, "bad_timestamp", "out of range once converted to UTC"),
        ({"proposal_id": {"id": 1}}, "bad_value", "proposal_id is {'id': 1} (dict), expected text"),
        ({"reasoning": "bad \ud800"}, "bad_text", "reasoning holds a lone surrogate U+D800 at character 4"),
    ]:
        with pytest.raises(RowError) as raised:
            proposal_from_fields({**good, **change}, "real", "s", "loc")
        assert raised.value.kind == kind and text in str(raised.value)


def test_timestamps_are_normalised_to_utc():
    assert parse_timestamp("2026-11-17T12:00:00+02:00", "t").hour == 10
    assert parse_constraints({"b": 1, "a": 2}) == '{"a":2,"b":1}'


def test_a_timestamp_column_that_contradicts_its_audit_entry_is_flagged_and_not_loaded():
    """The log says approved after 300 s; an approved_at column 2 s after creation (still in order, still before
    the execution) would give a 2 s decision latency and hide the APPROVAL_TIMEOUT. The bundled store and export
    agree column = audit entry time on all 830 of their timestamps."""
    from daena_pipelines.commands import store

    proposal, history = build("p1", FULL, gaps=[1, 299, 1, 1])
    early = replace(proposal, approved_at=proposal.created_at + timedelta(seconds=2))
    batch = store.Batch()
    batch.add(early, history)
    accepted = store.accept(batch)
    assert accepted.proposals == [] and accepted.audit == []
    [problem] = accepted.invalid_transitions
    assert problem.location == "test:p1#2" and problem.to_status == "APPROVED"
    assert problem.problem == (f"approved_at ({early.approved_at.isoformat()}) differs from the time of the audit entry "
                               f"that reached APPROVED ({history[2].changed_at.isoformat()})")
