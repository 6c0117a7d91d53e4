"""Faults found by the third, adversarial review of the sidecar. Each test asserts the end state (the virtual
roaster's own heater/state, the warehouse rows) and failed on the code before its fix."""
import pytest

from daena_pipelines.device.roaster import State

from .conftest import ROASTERS, approve, run_until
from .test_faults import controlling, footer


def test_a_progress_channel_that_fails_mid_command_still_ends_with_the_roaster_safe(sim_config, warehouse):
    """The run's log channel breaks while an approved command runs: Dagster Pipes appends every log line to a
    file in a temp folder, which fails once that disk is full (or the folder is gone). Before, the first line
    of the exit procedure raised, and so did the error line written in the handler: the exception left the
    loop and the process died with the commanded roaster roasting. A log line is now given up instead."""
    roaster = ROASTERS["r1"]
    sidecar, device, _ = controlling(sim_config, roaster, warehouse, stop_on="duration", max_duration_s=3600,
                                     queue_poll_interval_s=1.0)
    approve(warehouse, "power-3", "SET_POWER", 3, serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.active is not None and s.active.command.proposal_id == "power-3")

    def disk_full(message):
        raise OSError(28, "No space left on device")

    sidecar.progress = disk_full
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert device.heater == 0 and device.sidecar_state == State.COOLING
    assert result.exit["outcome"].startswith("made safe") and footer(result)["end_reason"] == "operator stop"
    assert result.command_statuses == {"COMPLETED": 1, "ABORTED": 1}  # take-control, power-3
