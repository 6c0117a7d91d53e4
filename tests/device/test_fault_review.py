"""Faults found by an independent review of the sidecar, each asserted by its end state: the virtual
roaster's own heater/state, what the recording says, the warehouse rows."""
import duckdb
import pytest

from daena_pipelines.device.roaster import State
from daena_pipelines.device.safety import SafetyLimits
from daena_pipelines.device.virtual_r1 import UNKNOWN_STATE

from .conftest import ROASTERS, approve, queue_rows, run_until
from .test_faults import footer, inject, record, safe, start, writes


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
    from daena_pipelines.device.sidecar import build_sidecar

    virtual = roaster.virtual()
    virtual.operator = type(virtual.operator)(drop_bt_c=400.0, heater_at_bt=())  # nobody drops, heater stays up
    sidecar, device = build_sidecar(sim_config(model=roaster.model, virtual=virtual, warehouse=warehouse,
                                               stop_on="duration", max_duration_s=900,
                                               limits=SafetyLimits(max_bt_c=120.0)))
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


# ----- an approval that ends while its command runs ---------------------------------------------
def _fan_command_running(sim_config, roaster, warehouse, **approval):
    """A commanded, preheating roaster, then an approved SET_FAN 12 (11 steps, >= 5 s) that has made its first step."""
    sidecar, device = start(sim_config, roaster, warehouse, operator=False, queue_poll_interval_s=1.0)
    approve(warehouse, "preheat", "PREHEAT", serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED"), limit_s=60)
    approve(warehouse, "fan-12", "SET_FAN", 12, serial=roaster.serial, **approval)
    assert run_until(sidecar, lambda s: s.active is not None and device.fan == 2, limit_s=120)
    return sidecar, device


def _stop_when_fan_command_ends(sidecar, device):
    """(result, the fan level when the command ended; the make-safe exit then sets the fan to 12 for cooling)."""
    assert run_until(sidecar, lambda s: s.active is None, limit_s=sidecar.clock.now() + 60)
    fan = device.fan
    sidecar.request_stop("operator stop")
    return sidecar.run_started(), fan


def test_an_approval_that_expires_while_executing_stops_the_steps(sim_config, warehouse):
    import time

    roaster = ROASTERS["r1"]  # the check is the sidecar's, not the model's

    sidecar, device = _fan_command_running(sim_config, roaster, warehouse, expires_at="now() + INTERVAL 2 SECOND")
    time.sleep(2.0)  # approvals run on the real clock; the stepped roaster waits meanwhile (2 s: room for a loaded machine)
    result, fan = _stop_when_fan_command_ends(sidecar, device)
    row = queue_rows(warehouse)["fan-12"]
    assert row[2] == "ABORTED" and "approval expired" in row[3], row
    assert fan == 2  # no step after the expiry
    assert safe(device) and result.exit["outcome"].startswith("made safe")
    record("approval expires while its SET_FAN 12 executes", device, result, result.command_statuses)


@pytest.mark.parametrize("revoke, why", [
    ("UPDATE device.command_queue SET expires_at = now() WHERE proposal_id = 'fan-12'", "approval expired at"),
    ("DELETE FROM device.command_queue WHERE proposal_id = 'fan-12'", "approval revoked (its queue row was deleted)"),
], ids=["expires_at-now", "row-deleted"])
def test_an_approval_revoked_while_executing_stops_the_steps(roaster, sim_config, warehouse, revoke, why):
    """Revoking: the approval service ends the approval now (expires_at = now()), or deletes the row."""
    sidecar, device = _fan_command_running(sim_config, roaster, warehouse)
    with duckdb.connect(warehouse) as con:
        con.execute(revoke)
    result, fan = _stop_when_fan_command_ends(sidecar, device)
    with duckdb.connect(warehouse) as con:
        status, error = con.execute("SELECT status, error FROM device.command_executions WHERE proposal_id = 'fan-12'").fetchone()
    assert status == "ABORTED" and why in error, error
    assert fan <= 4  # seen at the next queue read (1 s): two more steps at most
    assert safe(device)
    record(f"approval revoked ({revoke.split()[0]}) while its SET_FAN 12 executes", device, result, result.command_statuses)


# ----- two sidecars, one roaster -----------------------------------------------------------------
def test_a_second_sidecar_on_a_roaster_another_one_drives_fails_and_leaves_it_alone(roaster, sim_config, warehouse,
                                                                                      tmp_path):
    """Two sidecars on one host, one roaster (the same virtual USB bus, each with its own handle, as two
    processes have): the second must fail before it disturbs the first, which keeps control and at its
    exit makes the roaster safe."""
    from daena_pipelines.device.roaster import KernelDriverBusy
    from daena_pipelines.device.sidecar import Sidecar

    first, device = start(sim_config, roaster, warehouse, operator=False, queue_poll_interval_s=1.0)
    approve(warehouse, "preheat", "PREHEAT", serial=roaster.serial)
    assert run_until(first, lambda s: s.command_statuses.get("COMPLETED"), limit_s=60) and first.commanded
    second = Sidecar(sim_config(model=roaster.model, recordings_dir=str(tmp_path / "second")), first.clock,
                     first.open_driver, "simulator")
    with pytest.raises(KernelDriverBusy, match="busy"):
        second.start()
    polls = first.polls
    assert run_until(first, lambda s: s.polls >= polls + 50)  # 5 s on: every poll still answered
    assert first.lost == 0 and first.driver is not None
    first.request_stop("operator stop")
    result = first.run_started()
    assert safe(device) and result.exit["outcome"] == "made safe: heater 0 and cooling confirmed by status"
    assert not (tmp_path / "second").exists()  # the second wrote nothing
    record("a second sidecar started on the roaster the first one drives", device, result, result.command_statuses)


# ----- the wire at an exact moment ---------------------------------------------------------------
@pytest.mark.parametrize("fault", [
    {"unplug_on": "command_write", "reconnect_after_s": 4.0},  # the cable goes while a step is written
    {"unplug_on": "status_read", "reconnect_after_s": 4.0},  # ... between the two halves of a status
    {"short_replies": 5.0},  # every reply cut to 40 bytes for 5 s (a corrupt, short frame)
], ids=["unplug-mid-write", "unplug-mid-read", "short-frames"])
def test_wire_faults_mid_command_end_with_the_commanded_roaster_safe(sim_config, warehouse, fault):
    roaster = ROASTERS["r1"]  # the R2 shares the USB double and the sidecar's handling
    sidecar, device = _fan_command_running(sim_config, roaster, warehouse)  # preheating, commanded, fan stepping
    now = sidecar.clock.now()
    if "short_replies" in fault:
        fault = {"short_replies": (now, now + fault["short_replies"])}
    inject(device, **fault)
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done), sidecar.faults
    assert sidecar.abort.reason.startswith("lost control")  # 3 s without a valid status while it commanded
    assert safe(device)  # heater 0, cooling
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    command = queue_rows(warehouse)["fan-12"]
    assert command[2] in ("FAILED", "ABORTED"), command  # never left EXECUTING, never COMPLETED by a half status
    assert footer(result)["end_reason"] == "operator stop" and 30 <= result.lost_polls <= 60
    what = {"command_write": "unplug mid command write, replug after 4 s",
            "status_read": "unplug between the two status halves, replug after 4 s"}
    record(f"{what.get(fault.get('unplug_on'), 'replies cut to 40 bytes for 5 s')}, mid-command (preheating, commanded)",
           device, result, {"fan-12": command[2]})


def test_a_reply_a_killed_sidecar_left_unread_is_not_the_next_ones_serial(clock):
    """kill -9 between a status request and its read leaves the reply in the roaster's IN endpoint; the
    next sidecar's info request must not read it (libusb: 64 bytes into a 32-byte read is an overflow)."""
    import usb.core
    import usb.util

    from daena_pipelines.device.driver import BulletR1
    from daena_pipelines.device.virtual_r1 import VirtualR1Config, plug_in_virtual_r1

    _, backend = plug_in_virtual_r1(VirtualR1Config(), clock)
    dead = usb.core.find(idVendor=0x0483, backend=backend)
    dead.detach_kernel_driver(1)
    dead.set_configuration(1)
    usb.util.claim_interface(dead, 1)
    dead.write(0x03, b"\x30\x01")  # ... and killed before reading the reply
    usb.util.dispose_resources(dead)  # the kernel closes a dead process's handle
    roaster = BulletR1.open("4242", backend=backend)
    assert roaster.info.serial == "4242" and roaster.info.roast_count == 318
    clock.sleep(1.5)  # out of the second in which an idle R1 sends its other message
    assert roaster.poll().state == State.OFF


def test_commands_nobody_approved_are_never_sent(sim_config, warehouse):
    """Queue rows for this roaster, session and serial in every status but APPROVED (the approval service
    never approved them): nothing is written to the roaster and the rows stay as they were."""
    roaster = ROASTERS["r1"]
    sidecar, device = start(sim_config, roaster, warehouse, operator=False, queue_poll_interval_s=1.0)
    statuses = ("PROPOSED", "PENDING_APPROVAL", "REJECTED", "EXPIRED", "approved", "")
    with duckdb.connect(warehouse) as con:
        for status in statuses:
            con.execute("INSERT INTO device.command_queue (proposal_id, machine_id, session_id, roaster_serial, command_type,"
                        " status, approved_at, source) VALUES (?, 'r1', ?, '4242', 'PREHEAT', ?, now(), 'test')",
                        [f"preheat-{status or 'blank'}", sidecar.recording_id, status])
    assert not run_until(sidecar, lambda s: s.command_statuses, limit_s=20)  # 20 queue reads: nothing taken
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert writes(device) == [] and device.state == device.OFF and device.heater == 0
    assert {k: v[0] for k, v in queue_rows(warehouse).items()} == {f"preheat-{s or 'blank'}": s for s in statuses}
    assert result.exit["outcome"].startswith("untouched")


def test_after_the_watchdog_took_over_the_loop_sends_no_command_step(sim_config, warehouse):
    """The poll loop hangs mid-command; the watchdog (its own thread, real time) drives the roaster safe;
    then the loop resumes. Stepped here: the hang runs the watchdog's takeover, as the real one would
    meanwhile. The resumed loop must not send the running command's next step after the takeover."""
    from types import SimpleNamespace

    roaster = ROASTERS["r1"]
    sidecar, device = start(sim_config, roaster, warehouse, operator=False, queue_poll_interval_s=1.0)
    approve(warehouse, "preheat", "PREHEAT", serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED"), limit_s=60)
    approve(warehouse, "fan-12", "SET_FAN", 12, serial=roaster.serial)
    # hang in the cycle that sends the next step (one per min_step_interval_s, 0.5 s)
    assert run_until(sidecar, lambda s: s.active is not None and device.fan == 2
                     and s.clock.now() - s.last_change_at >= 0.5, limit_s=120)
    sidecar.watchdog = watchdog = SimpleNamespace(took_over=False, stop=lambda: None)
    events_for = sidecar._events_for  # runs in every cycle between the poll and the action
    taken_over_at = []

    def hangs_while_the_watchdog_takes_over(*args):
        del sidecar._events_for
        watchdog.took_over = True
        assert sidecar.drive_safe("watchdog", sidecar.clock.now() + 12.0)
        taken_over_at.append(sidecar.clock.now())
        return events_for(*args)

    sidecar._events_for = hangs_while_the_watchdog_takes_over
    result = sidecar.run_started()
    assert safe(device) and footer(result)["end_reason"] == "watchdog"
    after = [w for w in writes(device, taken_over_at[0])]
    assert after == [], [w.hex() for w in after]  # nothing sent once the watchdog had made the roaster safe
    assert queue_rows(warehouse)["fan-12"][2] == "ABORTED"


def test_one_status_that_looks_safe_does_not_end_an_abort(roaster, sim_config, warehouse):
    """Neither R1 statuses nor R2 frames carry a checksum anyone checks: one corrupt status reading heater 0
    and cooling while the roaster still heats must not confirm an abort, after which nothing is sent."""
    sidecar, device = start(sim_config, roaster, warehouse, operator=False, queue_poll_interval_s=1.0)
    approve(warehouse, "preheat", "PREHEAT", serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED") and device.heater > 0, limit_s=60)
    now = sidecar.clock.now()
    inject(device, safe_looking=(now, now + 0.05))  # the next poll only
    sidecar.request_abort("operator signal (SIGUSR1)")
    assert run_until(sidecar, lambda s: s.clock.now() >= now + 10)
    assert device.heater == 0 and device.sidecar_state == State.COOLING  # the abort went on to the true safe state
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    record("one corrupt status reads heater 0 + cooling at the start of an abort", device, result, result.command_statuses)


def test_a_reopen_that_fails_after_the_claim_does_not_lock_the_roaster_out(sim_config, warehouse):
    """Replugged, the roaster does not answer for its first 3 s: the reconnect attempts claim it and then
    time out reading its serial. A failed attempt must release its claim, or every later one is 'busy'
    (pyusb frees nothing by itself) and the sidecar gives up on a roaster that is back."""
    roaster = ROASTERS["r1"]
    sidecar, device = _fan_command_running(sim_config, roaster, warehouse)  # preheating, commanded
    now = sidecar.clock.now()
    inject(device, disconnect_at_s=now, reconnect_after_s=2.0, stall_reads=(now + 2.0, now + 5.0))
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done, limit_s=now + 30), sidecar.faults
    assert safe(device)
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert any(f.startswith("reconnected") for f in result.faults)
    record("unplug, replug after 2 s, the roaster silent for its first 3 s back (commanded)", device, result,
           result.command_statuses)


def test_a_roaster_silent_until_reopened_is_reopened(roaster, sim_config, warehouse):
    """Connected but silent (an endpoint stuck until the interface is claimed anew): after 5 s without an
    answer the sidecar closes and reopens it, as after an unplug, and the lost-control abort then runs.
    Before, it waited for an answer that never came until max_duration_s, the roaster heating."""
    sidecar, device = _fan_command_running(sim_config, roaster, warehouse)  # preheating, commanded
    now = sidecar.clock.now()
    inject(device, wedged_from=now)
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done, limit_s=now + 60), sidecar.faults
    assert safe(device) and sidecar.clock.now() < now + 10
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert any(f.startswith("disconnect: no answer for 5.") for f in result.faults)
    record("roaster connected but silent until reopened (commanded, preheating)", device, result, result.command_statuses)


def test_a_flicker_to_roasting_inside_the_confirm_window_restarts_it_for_the_abort_and_the_exit(roaster, sim_config,
                                                                                                warehouse):
    """'Confirmed safe' is one rule (safety.SafeConfirmation) for the exit's abort and for the exit itself: a
    status reading roasting between safe ones, inside safe_confirm_s, starts the wait again for both, and at
    every cycle the abort is done exactly when the exit sees the roaster confirmed safe."""
    from .test_faults import controlling

    sidecar, device, _ = controlling(sim_config, roaster, warehouse, stop_on="duration", max_duration_s=3600)
    sidecar.request_stop("operator stop")  # the exit's abort drives the roasting roaster to heater 0 and cooling
    flicker = first_since = None
    cycles = []  # (abort done, exit sees it confirmed safe), from the abort's start
    while True:
        if flicker is None and sidecar.safe.since is not None:  # the confirm window has begun
            first_since = sidecar.safe.since
            flicker = (first_since + 0.15, first_since + 0.25)  # inside safe_confirm_s (0.4 s)
            inject(device, roasting_looking=flicker)
        going_on = sidecar.step()
        if sidecar.abort is not None:
            cycles.append((sidecar.abort.done, sidecar.safe.confirmed))
        if not going_on:
            break
        sidecar.clock.sleep(sidecar.next_tick - sidecar.clock.now())
    result = sidecar.finish()
    assert flicker is not None and cycles and cycles[-1] == (True, True)
    assert all(done == confirmed for done, confirmed in cycles), cycles  # the two never disagree
    abort = sidecar.abort
    assert abort.safe_at >= flicker[1] > first_since  # the flicker started the wait again ...
    assert abort.confirmed_at - abort.safe_at >= sidecar.limits.safe_confirm_s  # ... for the full window
    assert device.heater == 0 and device.sidecar_state == State.COOLING
    assert result.exit["outcome"].startswith("made safe") and not result.left_unsafe
    record("a status flickers to roasting inside the exit's confirm window", device, result, result.command_statuses)


def test_a_status_reply_later_than_the_drain_does_not_lose_the_roaster(sim_config, warehouse):
    """R1 (request/reply; the R2 pushes its frames): one status reply comes late, after the read timed out
    and after the next poll's drain found nothing. Before, from then on every status paired the second half
    of one poll with the first half of the next: all invalid, the roaster out of reach for the rest of the
    session, and the exit could not make the roaster it had commanded safe (it kept roasting)."""
    from .test_faults import controlling

    roaster = ROASTERS["r1"]
    sidecar, device, now = controlling(sim_config, roaster, warehouse, stop_on="duration", max_duration_s=3600)
    inject(device, late_reply_at_s=now)
    assert run_until(sidecar, lambda s: s.clock.now() >= now + 2)
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert device.heater == 0 and device.sidecar_state == State.COOLING
    assert result.exit["outcome"].startswith("made safe") and not result.left_unsafe
    assert result.lost_polls <= 5  # the late poll, the mixed one, and the drain's
    record("one R1 status reply arrives after the drain (commanded, roasting)", device, result, result.command_statuses)


def test_a_roaster_another_program_holds_does_not_keep_the_sidecar_from_its_own(sim_config, warehouse):
    """Two R1s on one host, each driven by its own program (another sidecar, Artisan). Finding ours by
    serial means asking each R1 for its serial, which needs a claim, and the one another program holds
    refuses it (EBUSY). Before, that refusal ended the whole open: once the other roaster's program had
    started, the sidecar could not reopen its own roaster after an unplug, gave up and left it heating."""
    from daena_pipelines.device.clock import SteppedClock
    from daena_pipelines.device.driver import BULLET_R1
    from daena_pipelines.device.sidecar import Sidecar
    from daena_pipelines.device.virtual_r1 import VirtualBus, VirtualR1Config, plug_in_virtual_r1

    clock = SteppedClock()
    _, other_backend = plug_in_virtual_r1(VirtualR1Config(serial=4242), clock)  # first on the bus
    ours, ours_backend = plug_in_virtual_r1(VirtualR1Config(serial=5151), clock)
    bus = VirtualBus(other_backend, ours_backend)
    sidecar = Sidecar(sim_config(roaster_serial="5151", warehouse=warehouse, queue_poll_interval_s=1.0), clock,
                      lambda serial: BULLET_R1.open(serial, backend=bus), "simulator")
    sidecar.start()
    approve(warehouse, "preheat", "PREHEAT", serial="5151")
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED"), limit_s=60) and ours.heater > 0
    other = BULLET_R1.open("4242", backend=bus)  # the other program starts on the other roaster
    now = clock.now()
    inject(ours, disconnect_at_s=now, reconnect_after_s=4.0)  # past lost_control_s (3 s): an abort is due
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done, limit_s=now + 40), sidecar.faults
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert ours.heater == 0 and ours.sidecar_state == State.COOLING  # the lost-control abort ran after the replug
    assert any(f.startswith("reconnected") for f in result.faults) and result.exit["outcome"] == "already safe"
    assert other_backend.claims and other.info.serial == "4242"  # the other program keeps its roaster
    other.close()
    record("two R1s, the other held by another program; ours unplugged 4 s (commanded)", ours, result,
           result.command_statuses)


def test_an_unplug_while_the_failing_loop_drives_the_roaster_safe_is_reconnected(roaster, sim_config, warehouse):
    """Every cycle raises (e.g. the recordings disk is full), so drive_safe runs the abort outside the loop;
    meanwhile the roaster is unplugged for 1 s. Before, drive_safe kept polling the dead handle of the
    unplugged roaster and never reopened it: the abort stopped half way and the commanded roaster went on
    roasting until the exit gave up ('NOT confirmed safe')."""
    from .test_faults import controlling

    sidecar, device, now = controlling(sim_config, roaster, warehouse, stop_on="duration", max_duration_s=3600)

    def broken(*args):
        raise OSError(28, "No space left on device")

    sidecar._record = broken  # three failing cycles (0.2 s), then drive_safe
    inject(device, disconnect_at_s=now + 0.5, reconnect_after_s=1.0)  # while drive_safe steps the heater down
    result = sidecar.run_started()
    assert device.heater == 0 and device.sidecar_state == State.COOLING
    assert result.exit["outcome"] == "made safe outside the poll loop: heater 0 and cooling confirmed by status"
    assert any(f.startswith("reconnected") for f in result.faults)
    record("unplug for 1 s while drive_safe runs for a failing loop (commanded, roasting)", device, result,
           result.command_statuses)


def test_a_level_the_operator_sets_at_the_panel_mid_command_is_never_stepped_back(roaster, sim_config, warehouse):
    """An approved SET_POWER steps the heater up; after its first step the operator at the panel turns the
    heater down to 2. The sidecar never fights the panel (docs/device.md, safety model): before, the command
    went on stepping from the operator's 2 back up to its target and COMPLETED there."""
    from .test_faults import controlling

    sidecar, device, _ = controlling(sim_config, roaster, warehouse, stop_on="duration", max_duration_s=3600,
                                     queue_poll_interval_s=1.0)
    top = device.HEATER_RANGE[1]  # the charge heater of the simulated operator: 9 (R1), 14 (R2)
    approve(warehouse, "power-down", "SET_POWER", top - 4, serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED") == 2 and device.heater == top - 4)
    approve(warehouse, "power-up", "SET_POWER", top, serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.active is not None and device.heater == top - 3)
    device.heater = 2  # at the panel
    panel_at = sidecar.clock.now()
    assert run_until(sidecar, lambda s: s.clock.now() >= panel_at + 10)
    assert device.heater == 2 and device.sidecar_state == State.ROASTING  # the operator's setting stands
    assert not [w for w in writes(device, panel_at) if w[:2] == bytes([0x34, 0x01])]  # no heater +1 sent since
    status, error = queue_rows(warehouse)["power-up"][2:]
    assert status == "ABORTED" and "to 2 by someone else (the panel" in error, error
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert safe(device) and result.exit["outcome"].startswith("made safe")
    record("operator turns the heater down at the panel while a SET_POWER steps it up", device, result,
           result.command_statuses)


def test_empty_replies_from_a_replugged_roaster_do_not_end_the_session_or_lock_it_out(roaster, sim_config, warehouse):
    """Unplugged 4 s while commanded; back, it answers with zero-length packets for its first 2 s (e.g.
    still booting). Before, on the R1 the empty serial reply raised a ValueError out of the reopen: the
    cycle failed (end reason 'error') and the claim it had taken was never released, so every later
    attempt was 'busy' and the roaster went on heating; now it is a failed attempt like any other."""
    from .test_faults import controlling

    sidecar, device, now = controlling(sim_config, roaster, warehouse, stop_on="duration", max_duration_s=3600)
    inject(device, disconnect_at_s=now, reconnect_after_s=4.0, empty_replies=(now + 4.0, now + 6.0))
    sidecar.cfg.max_duration_s = now - sidecar.t0 + 20  # the session ends 20 s on, through the exit procedure
    result = sidecar.run_started()
    assert device.heater == 0 and device.sidecar_state == State.COOLING  # the lost-control abort ran
    assert sidecar.abort.reason.startswith("lost control") and sidecar.abort.done
    assert result.error is None and footer(result)["end_reason"] == "duration"
    assert any(f.startswith("reconnected") for f in result.faults) and not result.left_unsafe
    record("unplug 4 s, back answering zero-length packets for 2 s (commanded, roasting)", device, result,
           result.command_statuses)


def power_3_running(sim_config, roaster, warehouse):
    """A sidecar in control of a roasting roaster, an approved SET_POWER 3 executing: (sidecar, device)."""
    from .test_faults import controlling

    sidecar, device, _ = controlling(sim_config, roaster, warehouse, stop_on="duration", max_duration_s=3600,
                                     queue_poll_interval_s=1.0)
    approve(warehouse, "power-3", "SET_POWER", 3, serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.active is not None and s.active.command.proposal_id == "power-3")
    return sidecar, device


def disk_full(*_):
    raise OSError(28, "No space left on device")


def test_a_full_recordings_disk_mid_command_still_ends_with_the_roaster_safe(roaster, sim_config, warehouse):
    """The recordings disk fills up while an approved command runs: every line written fails. Before, the
    exit procedure that began after the first failing cycle wrote the aborted command's line, which raised
    again, out of the loop: the process died with the commanded roaster roasting. Now the line is given up
    (the run still fails: the footer cannot be written either) and the roaster is made safe first."""
    sidecar, device = power_3_running(sim_config, roaster, warehouse)
    sidecar.recorder._write = disk_full
    with pytest.raises(OSError, match="No space left on device"):
        sidecar.run_started()  # at the footer, after the exit procedure
    assert device.heater == 0 and device.sidecar_state == State.COOLING
    assert sidecar.exit_outcome == "made safe outside the poll loop: heater 0 and cooling confirmed by status"
    assert sidecar.command_statuses == {"COMPLETED": 1, "ABORTED": 1}  # take-control, power-3


def test_a_watchdog_takeover_inside_the_action_of_a_cycle_sends_nothing_stale(sim_config, warehouse):
    """As above, but the loop hangs inside the action of its cycle (writing the line of a refused approval,
    another approval waiting behind it) while the watchdog makes the roaster safe. Before, the resumed loop
    then started the waiting command from the status it had read before the hang and sent its step (drum 8)
    to the roaster the watchdog had just made safe."""
    from types import SimpleNamespace

    roaster = ROASTERS["r1"]  # the R1's drum takes an absolute level: a stale step shows in the end state
    sidecar, device = start(sim_config, roaster, warehouse, operator=False, queue_poll_interval_s=1.0)
    approve(warehouse, "preheat", "PREHEAT", serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED"), limit_s=60)
    approve(warehouse, "fan-99", "SET_FAN", 99, serial=roaster.serial)  # refused by local limits: a line written
    approve(warehouse, "drum-8", "SET_DRUM", 8, serial=roaster.serial)
    sidecar.watchdog = watchdog = SimpleNamespace(took_over=False, stop=lambda: None)
    command_line = sidecar.recorder.command
    taken_over_at = []

    def hangs_while_the_watchdog_takes_over(row):
        sidecar.recorder.command = command_line
        watchdog.took_over = True
        assert sidecar.drive_safe("watchdog", sidecar.clock.now() + 12.0)
        taken_over_at.append(sidecar.clock.now())
        return command_line(row)

    sidecar.recorder.command = hangs_while_the_watchdog_takes_over
    result = sidecar.run_started()
    assert taken_over_at and safe(device) and device.sidecar_state == State.COOLING
    assert device.drum == 5  # never moved after the takeover
    assert writes(device, taken_over_at[0]) == []
    assert footer(result)["end_reason"] == "watchdog"
    assert result.command_statuses == {"COMPLETED": 1, "FAILED": 1, "ABORTED": 1}  # preheat, fan-99, drum-8
    assert queue_rows(warehouse)["fan-99"][2] == "FAILED"
