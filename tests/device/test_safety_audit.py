"""Faults found by the third, adversarial review of the sidecar. Each test asserts the end state (the virtual
roaster's own heater/state, the warehouse rows) and failed on the code before its fix."""

from daena_pipelines.device.roaster import State

from .conftest import ROASTERS, approve, queue_rows, run_until
from .test_fault_review import disk_full, power_3_running
from .test_faults import footer


def test_a_progress_channel_that_fails_mid_command_still_ends_with_the_roaster_safe(sim_config, warehouse):
    """The run's log channel breaks while an approved command runs: Dagster Pipes appends every log line to a
    file in a temp folder, which fails once that disk is full (or the folder is gone). Before, the first line
    of the exit procedure raised, and so did the error line written in the handler: the exception left the
    loop and the process died with the commanded roaster roasting. A log line is now given up instead."""
    sidecar, device = power_3_running(sim_config, ROASTERS["r1"], warehouse)
    sidecar.progress = disk_full
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert device.heater == 0 and device.sidecar_state == State.COOLING
    assert result.exit["outcome"].startswith("made safe") and footer(result)["end_reason"] == "operator stop"
    assert result.command_statuses == {"COMPLETED": 1, "ABORTED": 1}  # take-control, power-3


# ----- clocks that disagree or jump ---------------------------------------------------------------
def test_an_approval_dated_in_the_future_is_never_run(roaster, sim_config, warehouse):
    """The approval service's clock runs an hour ahead (or this host's clock was stepped back an hour): a
    session-less approval given before this session started reads as given during it, and its expiry (approved_at
    + 300 s) lies an hour away. Before, it ran (a preheat started on a roaster nobody had asked for in this
    session). An approval whose time is ahead of this host's clock has no age anyone can judge: EXPIRED."""
    from .test_faults import start, writes

    approve(warehouse, "preheat-from-the-future", "PREHEAT", serial=roaster.serial, approved_at="now() + INTERVAL 1 HOUR")
    sidecar, device = start(sim_config, roaster, warehouse, operator=False)  # nobody at the panel
    assert run_until(sidecar, lambda s: s.command_statuses, limit_s=60)
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    status, reason, execution, _ = queue_rows(warehouse)["preheat-from-the-future"]
    assert (status, execution) == ("EXPIRED", None) and "in the future" in reason, reason
    assert writes(device) == [] and device.heater == 0 and device.sidecar_state == State.OFF  # untouched
    assert result.exit["outcome"].startswith("untouched")


def test_a_clock_stepped_back_while_a_command_executes_stops_its_steps(sim_config, warehouse, monkeypatch):
    """This host's clock is stepped back an hour (NTP, an operator) while an approved SET_FAN 12 steps: the
    approval's expiry moves an hour away, and so does any revocation by expiry. Before, the steps went on to 12;
    the approval's time now lies ahead of the clock, its age is unknown, and no further step is sent."""
    from datetime import datetime, timedelta

    import daena_pipelines.device.sidecar as sidecar_module

    from .test_fault_review import _fan_command_running, _stop_when_fan_command_ends

    sidecar, device = _fan_command_running(sim_config, ROASTERS["r1"], warehouse)

    class SteppedBack(datetime):
        @classmethod
        def now(cls, tz=None):
            return datetime.now(tz) - timedelta(hours=1)

    monkeypatch.setattr(sidecar_module, "datetime", SteppedBack)
    result, fan = _stop_when_fan_command_ends(sidecar, device)
    status, _, execution, error = queue_rows(warehouse)["fan-12"]
    assert execution == "ABORTED" and "in the future on this host's clock" in error, error
    assert fan == 2  # no step after the jump
    assert device.heater == 0 and device.sidecar_state == State.COOLING and result.exit["outcome"].startswith("made safe")
