"""Two sidecars beside one warehouse: each roaster runs only the commands addressed to it. A sidecar reads the
APPROVED proposals of its machine_id; a second sidecar reading the same machine_id takes commands meant for the
first's roaster and closes them FAILED ('approved for roaster serial ...'), so the first never gets them, an
ABORT too. The machine_id defaults to the model, and one live sidecar holds a machine_id at a time (its lease in
device.machine_leases, renewed every warehouse cycle). End states: the virtual roasters' levels and what they
were sent, the queue rows."""
import duckdb
import pytest

from daena_pipelines.device import protocol as p
from daena_pipelines.device.command_store import MachineBusy
from daena_pipelines.device.roaster import State
from daena_pipelines.device.sidecar import build_sidecar
from daena_pipelines.device.virtual_r1 import VirtualR1Config

from .conftest import ROASTERS, approve, locked_retry, queue_rows, run_until
from .test_faults import safe, writes


def levels(device) -> tuple:
    return device.heater, device.fan, device.drum, device.sidecar_state


def untouched(device) -> bool:
    """Nothing was ever written to the roaster, and it stands as it was plugged in (off, nobody at the panel)."""
    return writes(device) == [] and levels(device) == device.plugged_in_as


def _sidecar(sim_config, warehouse, *, seed, serial=None, model="r1", **overrides):
    virtual = VirtualR1Config(**({"serial": serial} if serial else {}))
    sidecar, device = build_sidecar(sim_config(model=model, seed=seed, virtual=virtual, warehouse=warehouse,
                                               queue_poll_interval_s=1.0, **overrides))
    device.plugged_in_as = levels(device)
    return sidecar, device


def _preheating(sidecar, warehouse, serial):
    """The sidecar has preheated its roaster on an approved PREHEAT: it answers for it now."""
    approve(warehouse, f"preheat-{serial}", "PREHEAT", serial=serial, machine=sidecar.cfg.machine_id)
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED"), limit_s=60) and sidecar.commanded


def _run_for(sidecar, seconds):
    until = sidecar.clock.now() + seconds
    assert run_until(sidecar, lambda s: s.clock.now() >= until)


def test_an_r2_sidecar_started_without_a_machine_id_leaves_the_r1s_abort_to_the_r1(sim_config, warehouse):
    """Before: machine_id defaulted to 'r1' whatever the model. The R2's sidecar read the R1's approved ABORT
    first and closed it FAILED (another serial): the R1 it was approved for stayed preheating at heater 9."""
    r1, r1_device = _sidecar(sim_config, warehouse, seed=1)
    r1.start()
    _preheating(r1, warehouse, ROASTERS["r1"].serial)
    r2, r2_device = _sidecar(sim_config, warehouse, seed=2, model="r2")
    r2.start()
    _run_for(r2, 3)
    approve(warehouse, "abort-r1", "ABORT", serial=ROASTERS["r1"].serial, machine="r1")
    _run_for(r2, 3)  # the R2's sidecar reads the queue first
    assert run_until(r1, lambda s: s.abort is not None and s.abort.done, limit_s=r1.clock.now() - r1.t0 + 60)
    for sidecar in (r1, r2):
        sidecar.request_stop("operator stop")
        sidecar.run_started()
    assert safe(r1_device) and r1_device.sidecar_state == State.COOLING
    assert queue_rows(warehouse)["abort-r1"][0] == "COMPLETED"
    assert untouched(r2_device) and r2.cfg.machine_id == "r2"


def test_a_second_sidecar_on_a_machine_id_another_one_holds_refuses_to_start(sim_config, warehouse):
    """Two R1s given one machine_id. Before: the second started and read the first's approvals: it closed the first
    roaster's ABORT FAILED and that roaster kept preheating. Now it refuses before it opens its roaster; once the
    first has ended, the lease is free at once."""
    first, first_device = _sidecar(sim_config, warehouse, seed=1, machine_id="bench")
    first.start()
    _preheating(first, warehouse, "4242")
    second, second_device = _sidecar(sim_config, warehouse, seed=2, serial=5151, machine_id="bench")
    with pytest.raises(MachineBusy, match="'bench' is driven by another live sidecar"):
        second.start()
    approve(warehouse, "abort-first", "ABORT", serial="4242", machine="bench")
    assert run_until(first, lambda s: s.abort is not None and s.abort.done, limit_s=first.clock.now() - first.t0 + 60)
    first.request_stop("operator stop")
    first.run_started()
    assert safe(first_device) and queue_rows(warehouse)["abort-first"][0] == "COMPLETED"
    assert untouched(second_device)
    with locked_retry(warehouse) as con:
        assert con.execute("SELECT count(*) FROM device.machine_leases").fetchone() == (0,)  # released at the end
        assert con.execute("SELECT count(*) FROM device.sidecar_sessions").fetchone() == (1,)  # none for the refused one
    third, _ = _sidecar(sim_config, warehouse, seed=3, serial=5151, machine_id="bench")
    third.start()  # the first has ended: no wait for a lease to lapse
    _run_for(third, 2)
    third.request_stop("operator stop")
    assert third.run_started().end_reason == "operator stop"


def test_a_sidecar_whose_lapsed_lease_was_taken_over_steps_no_more_and_makes_its_roaster_safe(sim_config, warehouse):
    """The first sidecar could not renew its lease in time (the warehouse held by another program) and a second one
    took the machine_id over. The first, at its next warehouse cycle, sends no further step of its running fan ramp
    and ends its session with the roaster it commanded made safe; the second runs what is approved for its roaster."""
    first, first_device = _sidecar(sim_config, warehouse, seed=1, machine_id="bench")
    first.start()
    _preheating(first, warehouse, "4242")
    approve(warehouse, "fan-12", "SET_FAN", 12, serial="4242", machine="bench")
    assert run_until(first, lambda s: s.active is not None and first_device.fan >= 3, limit_s=120)
    with locked_retry(warehouse) as con:
        con.execute("UPDATE device.machine_leases SET lease_until = now() - INTERVAL 1 SECOND")
    second, second_device = _sidecar(sim_config, warehouse, seed=2, serial=5151, machine_id="bench")
    second.start()
    assert any("took over the lapsed lease of session " + first.recording_id in fault for fault in second.faults)
    taken_at = first.clock.now()
    result = first.run_started()
    assert result.end_reason == "lease lost" and safe(first_device)
    # fan steps of the ramp sent after the take-over: at most those of the one queue cycle (1 s) before it is seen
    assert len([data for t, data in first_device.wire_log if t >= taken_at and data == p.FAN_UP]) <= 2
    assert any(fault.startswith("lease_lost: machine_id 'bench' is now held by session " + second.recording_id)
               for fault in result.faults)
    approve(warehouse, "preheat-second", "PREHEAT", serial="5151", machine="bench")
    assert run_until(second, lambda s: s.command_statuses.get("COMPLETED"), limit_s=60)
    second.request_stop("operator stop")
    second.run_started()
    rows = queue_rows(warehouse)
    assert rows["fan-12"][0] == "ABORTED" and "lease lost" in rows["fan-12"][3]
    assert rows["preheat-second"][0] == "COMPLETED" and second_device.sidecar_state == State.COOLING
    with duckdb.connect(warehouse) as con:
        assert con.execute("SELECT count(*) FROM device.machine_leases").fetchone() == (0,)


def test_a_sidecar_that_fails_to_start_after_its_claim_leaves_the_machine_id_free(sim_config, warehouse, tmp_path):
    """The claim comes first; the roaster opened, the recording could not be created (its folder is a file). Before,
    only a roaster that failed to open gave the lease back: this one stayed held for its lease (here 10 s) by a
    sidecar that never ran, and the next start on the machine_id failed with MachineBusy naming it."""
    (tmp_path / "not-a-folder").write_text("")
    broken, broken_device = _sidecar(sim_config, warehouse, seed=1, machine_id="bench",
                                     recordings_dir=str(tmp_path / "not-a-folder"))
    with pytest.raises(OSError):
        broken.start()
    assert untouched(broken_device)
    with locked_retry(warehouse) as con:
        assert con.execute("SELECT count(*) FROM device.machine_leases").fetchone() == (0,)
    second, _ = _sidecar(sim_config, warehouse, seed=2, serial=5151, machine_id="bench")
    second.start()
    _run_for(second, 2)
    second.request_stop("operator stop")
    assert second.run_started().end_reason == "operator stop"
