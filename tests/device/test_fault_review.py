"""Faults found by an independent review of the sidecar, each asserted by its end state: the virtual
roaster's own heater/state, what the recording says, the warehouse rows."""
from daena_pipelines.device.roaster import State
from daena_pipelines.device.virtual_r1 import UNKNOWN_STATE

from .conftest import approve, run_until
from .test_faults import inject, record, start, writes


def test_an_abort_never_presses_prs_on_a_state_code_it_cannot_place(roaster, sim_config, warehouse):
    """Commanded, then the operator turns the roaster off at the panel; at the exit the state byte
    reads a code no source lists. PRS from an unknown state could start a roaster that is off."""
    sidecar, device = start(sim_config, roaster, warehouse, operator=False, stop_on="duration", max_duration_s=3600)
    approve(warehouse, "preheat", "PREHEAT", serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED"), limit_s=120) and sidecar.commanded
    for _ in range(4):  # at the panel: preheating -> charge -> roasting -> cooling -> after cooling
        device.press_prs()
    assert run_until(sidecar, lambda s: device.state == device.OFF, limit_s=600)
    now = sidecar.clock.now()
    inject(device, unknown_state=(now, now + 3600))
    assert run_until(sidecar, lambda s: s.last_reading.state == UNKNOWN_STATE)
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert device.state == device.OFF and device.heater == 0  # still off: nothing started it
    assert not [w for w in writes(device, now) if w[:4] == bytes([0x30, 0x01, 0x00, 0x00])]  # no PRS (R1 and R2 body)
    assert result.exit["outcome"].startswith("NOT confirmed safe")  # honest: the sidecar could not place the state
    record("state byte unknown (0x05) at the exit, roaster actually off", device, result, result.command_statuses)


def test_started_while_roasting_the_bt_ceiling_still_trips(roaster, sim_config, warehouse):
    """The sidecar starts mid-roast (it never saw CHARGE) and nobody drops: BT passing its ceiling
    must still abort, as it does when the sidecar saw the CHARGE."""
    from daena_pipelines.device.safety import SafetyLimits
    from daena_pipelines.device.sidecar import build_sidecar

    virtual = roaster.virtual()
    virtual.operator = type(virtual.operator)(drop_bt_c=400.0, heater_at_bt=())  # nobody drops, heater stays up
    sidecar, device = build_sidecar(sim_config(model=roaster.model, virtual=virtual, warehouse=warehouse,
                                               stop_on="duration", max_duration_s=900,
                                               limits=SafetyLimits(max_bt_c=200.0)))
    while device.state != device.ROASTING:  # the roast started before the sidecar did
        sidecar.clock.sleep(1.0)
        device.advance()
    sidecar.clock.sleep(30.0)
    sidecar.start()
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done)
    assert device.heater == 0 and device.sidecar_state == State.COOLING  # dropped and cooling, heater off
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert any(f.startswith("abort: safety trip: BT") for f in result.faults)
    assert any(f.startswith("joined_roast") for f in result.faults)
    record("sidecar started mid-roast, BT passes its ceiling, nobody drops", device, result, result.command_statuses)
