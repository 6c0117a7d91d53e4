"""What the real world does to a sidecar that the earlier fault tests do not cover (the fifth review). Each test
asserts the end state: the virtual roaster's levels and what it was sent, the queue rows, the recording's footer."""
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
