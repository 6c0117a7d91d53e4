import json
import sqlite3

import pytest
from proposal_builders import FULL, T0, build, write_ingest, write_store

from daena_pipelines.commands import store
from daena_pipelines.commands.model import RAN_UNAPPROVED
from daena_pipelines.db import connect, transaction

ISO = "2026-11-17T10:00:{:02d}Z"


def store_row(proposal_id, status="COMPLETED", **overrides):
    row = {
        "proposal_id": proposal_id, "machine_id": "bullet-r1-virtual", "session_id": None, "command_type": "SET_POWER",
        "target_value": 5.0, "target_unit": "level", "constraints": '{"max_value": 9, "min_value": 0}',
        "proposed_by": "AGENT", "actor": "agent", "reasoning": "why", "status": status,
        "created_at": ISO.format(0), "approved_at": ISO.format(2), "rejected_at": None,
        "execution_started_at": ISO.format(3), "execution_completed_at": ISO.format(5), "rejection_reason": None,
        "outcome": "SUCCESS", "actual_value": 5.0, "error": None, "session_t_s": 100.0, "origin": "generated",
    }
    if status == "APPROVED":
        row.update(execution_started_at=None, execution_completed_at=None, outcome=None, actual_value=None)
    row.update(overrides)
    return row


def audit_rows(proposal_id, path=FULL):
    previous, rows = None, []
    for second, status in enumerate(path):
        rows.append((proposal_id, ISO.format([0, 1, 2, 3, 5][second]), previous, status, "agent", None))
        previous = status
    return rows


def test_sqlite_store_good_rows_load_bad_rows_are_reported(tmp_path):
    path = write_store(
        tmp_path / "store.sqlite",
        [store_row("p1"), store_row("p2", created_at="not a time"), store_row("p3", command_type="SET_HEAT")],
        audit_rows("p1") + audit_rows("p2") + audit_rows("p3") + audit_rows("ghost"),
    )
    batch = store.read_sqlite(path)
    assert list(batch.proposals) == ["p1"]
    assert [e.to_status for e in batch.audit["p1"]] == list(FULL)
    errors = {(e.proposal_id, e.error_kind) for e in batch.errors}
    assert errors == {("p2", "bad_timestamp"), ("p3", "bad_value"),
                      *{("ghost", "orphan_audit_entry")}}
    p2 = next(e for e in batch.errors if e.proposal_id == "p2")
    assert p2.location == f"{path}:proposals rowid=2" and "5 audit entries of it not loaded" in p2.message
    assert len([e for e in batch.errors if e.error_kind == "orphan_audit_entry"]) == 5


def test_sqlite_store_with_a_different_schema_is_reported_not_guessed(tmp_path):
    path = tmp_path / "other.sqlite"
    con = sqlite3.connect(path)
    con.executescript("CREATE TABLE proposals (id TEXT); CREATE TABLE audit_log (proposal_id TEXT);")
    con.close()
    batch = store.read_sqlite(path)
    assert not batch.proposals
    assert {e.error_kind for e in batch.errors} == {"bad_schema"}
    assert "table proposals lacks columns proposal_id, machine_id," in batch.errors[0].message


def test_missing_input_file_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere.sqlite"):
        store.read_sqlite(tmp_path / "nowhere.sqlite")


def export_line(proposal_id, **overrides):
    row = store_row(proposal_id)
    line = {k: v for k, v in row.items() if k not in ("machine_id", "command_type", "target_value", "target_unit",
                                                      "constraints", "outcome", "actual_value", "error")}
    line["command"] = {"type": "SET_POWER", "machine_id": "bullet-r1-virtual", "target_value": 5.0,
                       "target_unit": "level", "constraints": {"min_value": 0, "max_value": 9}}
    line["outcome"] = {"result": "SUCCESS", "actual_value": 5.0, "error": None}
    line["audit_log"] = [dict(zip(("changed_at", "from_status", "to_status", "actor", "note"), r[1:]))
                         for r in audit_rows(proposal_id)]
    line.update(overrides)
    return json.dumps(line)


def test_jsonl_export_reports_each_bad_line_by_number(tmp_path):
    path = tmp_path / "export.jsonl"
    path.write_text("\n".join([
        export_line("p1"),
        '{"proposal_id": "p2", "command": ',
        export_line("p3", command=None),
        "",
        export_line("p4", audit_log=[{"changed_at": "soon", "to_status": "PROPOSED"}]),
        "[1, 2]",
        export_line("p5"),
        export_line("p6", audit_log=["PROPOSED"]),
    ]) + "\n")
    batch = store.read_jsonl(path)
    assert list(batch.proposals) == ["p1", "p4", "p5"]
    errors = [(e.location.rsplit("/", 1)[1], e.error_kind) for e in batch.errors]
    assert errors == [("export.jsonl:2", "bad_json"), ("export.jsonl:3", "missing_field"),
                      ("export.jsonl:5 audit_log[0]", "bad_timestamp"), ("export.jsonl:6", "bad_json"),
                      ("export.jsonl:8", "bad_value")]
    assert batch.errors[-1].message == "audit_log[0] is not an object"
    assert batch.proposals["p1"].constraints == '{"max_value":9,"min_value":0}'
    assert batch.proposals["p1"].source == "jsonl:export.jsonl"
    # p4 loaded without its unreadable entry, so its lifecycle cannot be verified and it is not accepted.
    assert {p.proposal_id for p in store.accept(batch).invalid_transitions} == {"p4"}


def test_a_jsonl_export_with_a_byte_order_mark_and_crlf_loads_its_first_line(tmp_path):
    """Windows tools (Notepad's "UTF-8 with BOM", PowerShell 5's Out-File) start a UTF-8 file with EF BB BF, an
    encoding mark rather than data. Before, line 1 was bad_json ("Unexpected UTF-8 BOM") and its proposal lost."""
    path = tmp_path / "export.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([export_line("p1"), export_line("p2")]).encode() + b"\r\n")
    batch = store.read_jsonl(path)
    assert list(batch.proposals) == ["p1", "p2"] and batch.errors == []
    # a mark anywhere else is not an encoding mark: reported, not skipped
    path.write_bytes("\n".join([export_line("p1"), "\ufeff" + export_line("p2")]).encode())
    assert [(e.location.rsplit("/", 1)[1], e.error_kind) for e in store.read_jsonl(path).errors] == [("export.jsonl:2", "bad_json")]


def test_the_same_proposal_in_two_sources_is_one_record_a_different_one_is_an_error(tmp_path):
    sqlite_path = write_store(tmp_path / "s.sqlite", [store_row("p1"), store_row("p2")], audit_rows("p1") + audit_rows("p2"))
    jsonl_path = tmp_path / "e.jsonl"
    jsonl_path.write_text(export_line("p1") + "\n" + export_line("p2", reasoning="edited later") + "\n")
    combined = store.combine([store.read_sqlite(sqlite_path), store.read_jsonl(jsonl_path)])
    assert sorted(combined.proposals) == ["p1", "p2"]
    [error] = combined.errors
    assert error.error_kind == "duplicate_proposal_id" and error.proposal_id == "p2"
    assert f"{sqlite_path}:proposals rowid=2" in error.message
    assert combined.proposals["p2"].reasoning == "why"


def execution(proposal_id, status="COMPLETED", **overrides):
    row = {"proposal_id": proposal_id, "machine_id": "bullet-r1-virtual", "session_id": "s1", "command_type": "SET_POWER",
           "target_value": 5.0, "status": status, "started_at": "2026-11-17T10:00:10Z",
           "completed_at": None if status == "EXECUTING" else "2026-11-17T10:00:12Z",
           "observed_value": 5.0, "error": None, "source": "simulator"}
    row.update(overrides)
    return row


def batch_of(*built):
    batch = store.Batch()
    for proposal, history in built:
        batch.add(proposal, history)
    return batch


def test_sidecar_execution_completes_an_approved_proposal():
    batch = batch_of(build("p1", ("PROPOSED", "PENDING_APPROVAL", "APPROVED")))
    store.apply_executions(batch, [execution("p1", "FAILED", observed_value=4.0, error="level not reached")])
    accepted = store.accept(batch)
    [proposal] = accepted.proposals
    assert (proposal.status, proposal.outcome, proposal.actual_value, proposal.error) == ("FAILED", "FAILURE", 4.0, "level not reached")
    assert proposal.source == "test + sidecar" and proposal.session_id == "s1"  # the sidecar knows the session
    assert [(e.to_status, e.source) for e in accepted.audit][-2:] == [("EXECUTING", "sidecar"), ("FAILED", "sidecar")]


def test_sidecar_execution_of_an_unknown_proposal_becomes_its_own_row():
    batch = store.Batch()
    store.apply_executions(batch, [execution("x1"), execution("x2", "EXECUTING")])
    accepted = store.accept(batch)
    assert accepted.invalid_transitions == []
    by_id = {p.proposal_id: p for p in accepted.proposals}
    assert by_id["x1"].source == "sidecar" and by_id["x1"].origin == "simulator" and by_id["x1"].created_at is None
    assert by_id["x1"].outcome == "SUCCESS" and by_id["x2"].status == "EXECUTING"


def test_sidecar_executing_an_unapproved_proposal_is_an_invalid_transition():
    batch = batch_of(build("p1", ("PROPOSED", "PENDING_APPROVAL")))
    store.apply_executions(batch, [execution("p1")])
    accepted = store.accept(batch)
    assert accepted.proposals == []
    assert any("starts from APPROVED but the proposal was PENDING_APPROVAL" in p.problem
               for p in accepted.invalid_transitions)


def test_sidecar_disagreeing_with_a_finished_proposal_is_reported_and_the_store_kept():
    batch = batch_of(build("p1", FULL))
    store.apply_executions(batch, [execution("p1", "TIMEOUT"), execution("bad", status="DONE")])
    assert batch.proposals["p1"].status == "COMPLETED"
    assert [(e.proposal_id, e.error_kind) for e in batch.errors] == [("p1", "conflicting_execution"), ("bad", "bad_value")]


def test_sidecar_execution_already_in_the_store_changes_nothing():
    proposal, history = build("p1", FULL, start=T0)
    batch = batch_of((proposal, history))
    store.apply_executions(batch, [execution("p1", started_at=proposal.execution_started_at,
                                             completed_at=proposal.execution_completed_at)])
    assert batch.errors == [] and len(batch.audit["p1"]) == len(FULL)


def test_sidecar_execution_for_another_machine_is_a_conflict():
    batch = batch_of(build("p1", ("PROPOSED", "PENDING_APPROVAL", "APPROVED")))
    store.apply_executions(batch, [execution("p1", machine_id="bullet-r1-virtual-b")])
    assert batch.proposals["p1"].status == "APPROVED"
    [error] = batch.errors
    assert error.error_kind == "conflicting_execution" and "on bullet-r1-virtual-b" in error.message


def test_one_approval_run_twice_by_the_device_is_flagged_as_an_unapproved_second_run():
    """Two execution rows of one proposal with different starts: two sidecars took the same approval. Before, the
    second was a conflicting_execution error claiming the *store* said COMPLETED, and the proposal loaded as run once."""
    batch = batch_of(build("p1", ("PROPOSED", "PENDING_APPROVAL", "APPROVED")))
    second = execution("p1", started_at="2026-11-17T10:00:11Z", completed_at="2026-11-17T10:00:13Z")
    store.apply_executions(batch, [execution("p1"), execution("p1"), second])  # the same row twice is one run
    accepted = store.accept(batch)
    assert accepted.proposals == [] and accepted.errors == []
    problems = [(p.location, p.problem) for p in accepted.invalid_transitions]
    assert ("device.command_executions row 2 proposal_id=p1", RAN_UNAPPROVED) in problems
    assert ("device.command_executions row 2 proposal_id=p1",
            "audit entry starts from APPROVED but the proposal was COMPLETED") in problems


def test_sidecar_session_time_is_taken_when_given():
    batch = batch_of(build("p1", ("PROPOSED", "PENDING_APPROVAL", "APPROVED")))
    store.apply_executions(batch, [execution("p1", session_t_s=312.5), execution("x1", session_t_s=-20.0)])
    assert (batch.proposals["p1"].session_t_s, batch.proposals["x1"].session_t_s) == (312.5, -20.0)


def test_sidecar_command_timeout_is_taken_when_given_and_an_unusable_one_is_an_error_that_keeps_the_execution():
    """A negative, NaN, infinite or over-long (beyond device.MAX_COMMAND_TIMEOUT_S) recorded timeout is reported, and the execution stays with no timeout (the stuck
    alert's limit then uses the configured one). Before, the whole row was dropped: a command still EXECUTING on the
    roaster vanished from commands.proposals, and with it its EXECUTION_STUCK alert."""
    batch = batch_of(build("p1", ("PROPOSED", "PENDING_APPROVAL", "APPROVED")))
    bad = {"x2": -5.0, "x3": float("nan"), "x4": float("inf"), "x5": 1e9}
    store.apply_executions(batch, [execution("p1", "EXECUTING", command_timeout_s=300.0), execution("x1"),
                                   *(execution(p, "EXECUTING", command_timeout_s=t) for p, t in bad.items())])
    assert (batch.proposals["p1"].command_timeout_s, batch.proposals["x1"].command_timeout_s) == (300.0, None)
    assert [(batch.proposals[p].status, batch.proposals[p].command_timeout_s) for p in bad] == [("EXECUTING", None)] * 4
    assert [(e.proposal_id, e.error_kind, e.location) for e in batch.errors] == [
        (p, "bad_value", f"device.command_executions row {i} proposal_id={p}") for i, p in enumerate(bad, start=2)]
    messages = [e.message for e in batch.errors]
    assert "command_timeout_s=-5 is below 0" in messages[0] and "not a finite number" in messages[1] + messages[2]
    assert "command_timeout_s=1e+09 is over the sidecar's 1200 s" in messages[3]
    assert all("the execution is kept, EXECUTION_STUCK uses the configured command timeout" in m for m in messages)


def test_the_sidecars_timeout_is_taken_when_the_store_already_recorded_the_same_execution():
    """The command service's log has the proposal EXECUTING from the same start as the sidecar's row: the row adds
    nothing to the history but its recorded timeout still sets the stuck alert's limit. Before, it was dropped (None),
    so a command run with 300 s alerted at the configured 20 s + 40 s."""
    proposal, history = build("p1", ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "EXECUTING"))
    batch = batch_of((proposal, history))
    store.apply_executions(batch, [execution("p1", "EXECUTING", started_at=proposal.execution_started_at.isoformat(),
                                             command_timeout_s=300.0)])
    assert (batch.proposals["p1"].status, batch.proposals["p1"].command_timeout_s) == ("EXECUTING", 300.0)
    assert batch.audit["p1"] == history and batch.errors == []


def expiry(proposal_id, **overrides):
    """A device.command_queue row the sidecar closed EXPIRED (device/contract.py EXPIRED_APPROVAL_COLUMNS)."""
    row = {"proposal_id": proposal_id, "machine_id": "bullet-r1-virtual", "command_type": "SET_POWER", "target_value": 5.0,
           "target_unit": "level", "closed_at": "2026-11-17T10:10:00Z", "closed_reason": "approval expired at 10:07",
           "closed_source": "simulator"}
    row.update(overrides)
    return row


APPROVED_PATH = ("PROPOSED", "PENDING_APPROVAL", "APPROVED")


def test_sidecar_expiry_ends_an_approved_proposal_expired_with_its_reason():
    batch = batch_of(build("p1", APPROVED_PATH))
    store.apply_expiries(batch, [expiry("p1")])
    accepted = store.accept(batch)
    assert accepted.invalid_transitions == [] and accepted.errors == []
    [proposal] = accepted.proposals
    assert (proposal.status, proposal.expiry_reason, proposal.expired_at.isoformat()) == (
        "EXPIRED", "approval expired at 10:07", "2026-11-17T10:10:00+00:00")
    assert (proposal.execution_started_at, proposal.outcome, proposal.source) == (None, None, "test + sidecar")
    last = accepted.audit[-1]
    assert (last.from_status, last.to_status, last.actor, last.note) == ("APPROVED", "EXPIRED", "sidecar", "approval expired at 10:07")


def test_sidecar_expiry_of_an_unknown_proposal_becomes_its_own_row():
    batch = store.Batch()
    store.apply_expiries(batch, [expiry("x1", closed_source="real")])
    [proposal] = store.accept(batch).proposals
    assert (proposal.status, proposal.source, proposal.origin, proposal.created_at, proposal.approved_at) == (
        "EXPIRED", "sidecar", "real", None, None)


def test_sidecar_expiry_of_an_unapproved_proposal_is_an_invalid_transition():
    batch = batch_of(build("p1", ("PROPOSED", "PENDING_APPROVAL")))
    store.apply_expiries(batch, [expiry("p1")])
    accepted = store.accept(batch)
    assert accepted.proposals == []
    assert any("starts from APPROVED but the proposal was PENDING_APPROVAL" in p.problem for p in accepted.invalid_transitions)


def test_sidecar_expiry_disagreeing_with_the_store_is_reported_and_the_store_kept():
    batch = batch_of(build("p1", FULL), build("p2", APPROVED_PATH))
    store.apply_expiries(batch, [expiry("p1"), expiry("p2", machine_id="other"), expiry("p3", closed_reason=None)])
    assert (batch.proposals["p1"].status, batch.proposals["p2"].status) == ("COMPLETED", "APPROVED")
    assert [(e.proposal_id, e.error_kind) for e in batch.errors] == [
        ("p1", "conflicting_expiry"), ("p2", "conflicting_expiry"), ("p3", "missing_field")]


def test_an_expiry_the_store_already_has_changes_nothing():
    proposal, history = build("p1", (*APPROVED_PATH, "EXPIRED"))
    batch = batch_of((proposal, history))
    store.apply_expiries(batch, [expiry("p1", closed_at=proposal.expired_at)])
    assert batch.errors == [] and len(batch.audit["p1"]) == 4


def test_a_store_may_record_expiries_in_its_optional_columns(tmp_path):
    expired = {**store_row("p1", "APPROVED"), "status": "EXPIRED", "expired_at": ISO.format(9), "expiry_reason": "approval expired"}
    path = write_store(tmp_path / "s.sqlite", [expired], audit_rows("p1", APPROVED_PATH) + [
        ("p1", ISO.format(9), "APPROVED", "EXPIRED", "sidecar", "approval expired")])
    accepted = store.accept(store.read_sqlite(path))
    assert [(p.status, p.expiry_reason) for p in accepted.proposals] == [("EXPIRED", "approval expired")]
    older = tmp_path / "older.sqlite"  # a store from before the expiry columns still loads
    con = sqlite3.connect(older)
    con.executescript(store.SQLITE_SCHEMA.replace(",\n    expired_at             TEXT,\n    expiry_reason          TEXT", ""))
    con.close()
    assert store.read_sqlite(older).errors == []


@pytest.mark.parametrize("apply, row", [(store.apply_executions, execution), (store.apply_expiries, expiry)])
def test_a_real_proposal_ended_by_the_virtual_roaster_is_labelled_simulator_in_the_warehouse(tmp_path, apply, row):
    """A simulated sidecar that takes a real approval for its machine id decides the proposal's end (status,
    actual value): that end is simulated, so the stored row must not stay origin 'real'. A real sidecar's
    end keeps it real, and a generated proposal stays generated whoever ran it."""
    batch = batch_of(*(build(p, APPROVED_PATH, origin=origin) for p, origin in (
        ("sim", "real"), ("real", "real"), ("gen", "generated"))))
    apply(batch, [row("sim"), row("real", **{"source" if apply is store.apply_executions else "closed_source": "real"}),
                  row("gen")])
    accepted = store.accept(batch)
    assert accepted.errors == [] and accepted.invalid_transitions == []
    with connect(tmp_path / "w.duckdb") as con, transaction(con):
        write_ingest(con, accepted)
        origins = dict(con.execute("SELECT proposal_id, origin FROM commands.proposals").fetchall())
    assert origins == {"sim": "simulator", "real": "real", "gen": "generated"}
