"""What the real world does to a sidecar that the earlier fault tests do not cover (the fifth review). Each test
asserts the end state: the virtual roaster's levels and what it was sent, the queue rows, the recording's footer."""
from daena_pipelines.device import protocol as p
from daena_pipelines.device.roaster import State

from .conftest import ROASTERS, approve, queue_rows, run_until
from .test_faults import start, writes


def test_a_level_in_the_other_models_steps_is_refused(roaster, sim_config, warehouse):
    """A SET_POWER approved in the other model's steps (R2 heater 0..14, R1 0..9): 'r2_level' 6 is 43 % of an R2's
    heat, 67 % of an R1's. Before, the unit was not checked against the model: the roaster stepped its heater to 6 of
    its own and the command COMPLETED."""
    other = next(r for r in ROASTERS.values() if r.model != roaster.model).model
    sidecar, device = start(sim_config, roaster, warehouse)  # the operator preheats at 2 s: a heater decrease may run
    assert run_until(sidecar, lambda s: device.sidecar_state == State.PREHEATING and device.heater > 6)
    since = sidecar.clock.now()
    approve(warehouse, "power-6", "SET_POWER", 6, serial=roaster.serial, unit=f"{other}_level")
    assert run_until(sidecar, lambda s: s.command_statuses.get("FAILED"), limit_s=sidecar.clock.now() + 30)
    assert writes(device, since) == []  # nothing sent (the operator at the panel may still turn the heater)
    sidecar.request_stop("operator stop")
    sidecar.run_started()
    status, _, execution, error = queue_rows(warehouse)["power-6"]
    assert (status, execution) == ("FAILED", "FAILED")
    assert f"'{other}_level' is another model's level; this roaster's levels are {roaster.model}_level" in error


def test_a_host_suspend_is_a_gap_in_the_session_and_ends_a_running_ramp(sim_config, warehouse, monkeypatch):
    """The host suspends for 60 s while an approved SET_FAN 12 steps (real time); the roaster, on its own power,
    goes on meanwhile. The suspend is simulated by moving this process's boot clock (clock.since_boot) on by 60 s:
    the worker process's clock, which read the approvals, does not move, as the approval service's writes meanwhile
    were not read. time.monotonic (what the sidecar timed with before) does not count a suspend on Linux, so before
    the session resumed as if no time had passed: no gap, and the ramp stepped on with approvals last read a minute
    earlier. Now: a time_gap fault, the lost polls counted, the ramp ABORTED with no further step."""
    from daena_pipelines.device import clock

    boot, suspended_s = clock.since_boot, []
    monkeypatch.setattr(clock, "since_boot", lambda: boot() + sum(suspended_s))
    sidecar, device = start(sim_config, ROASTERS["r1"], warehouse, time_scale=1.0, queue_poll_interval_s=1.0)
    assert run_until(sidecar, lambda s: device.sidecar_state == State.PREHEATING)
    approve(warehouse, "fan-12", "SET_FAN", 12, serial="4242")
    assert run_until(sidecar, lambda s: s.active is not None and 3 <= device.fan < 9)
    suspended_s.append(60.0)
    lost, resumed = sidecar.lost, sidecar.clock.now()
    assert run_until(sidecar, lambda s: s.active is None)
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert [data for t, data in device.wire_log if t >= resumed and data == p.FAN_UP] == []
    assert any(fault.startswith("time_gap: 6") for fault in result.faults) and result.lost_polls >= lost + 590
    status, _, execution, error = queue_rows(warehouse)["fan-12"]
    assert execution == "ABORTED" and "approval not re-read for 6" in error
    assert device.heater == 0 and result.exit["outcome"] == "made safe: heater 0 and cooling confirmed by status"


def test_two_samples_within_a_hundredth_of_a_second_still_land(tmp_path):
    """The loop catching up after an overrun runs cycles back to back; two of them that both record (the record
    interval, then a state change of the abort's PRS walk) can lie within the hundredth of a second the file keeps.
    Before, both were written t=29.12 and the reader refused the whole recording at the footer ('time_not_increasing'):
    the run failed and the session never landed (seen under load after SIGQUIT, test_signals). Now the second is
    written a hundredth later and the session parses with every sample."""
    from daena_pipelines.device.recording import SessionRecorder
    from daena_pipelines.telemetry.sidecar import parse_sidecar

    from .test_roast_recording import HEADER

    recorder = SessionRecorder(tmp_path / "r.sidecar.jsonl", {k: v for k, v in HEADER.items() if k != "type"}, fsync=False)
    for t, state in ((29.0, 2), (29.121, 2), (29.124, 4), (29.2, 4)):
        recorder.sample(t, {"st": state, "a": 150.0, "b": 200.0, "h": 9, "f": 3, "d": 5})
    recorder.close({"end_reason": "duration"})
    session = parse_sidecar(recorder.path.read_bytes(), "r")
    assert list(session.time_s) == [29.0, 29.12, 29.13, 29.2] and session.settings["complete"]
