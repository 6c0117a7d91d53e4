"""Faults found by the third, adversarial review of the sidecar. Each test asserts the end state (the virtual
roaster's own heater/state, the warehouse rows) and failed on the code before its fix."""

import math
import re

import orjson
import pytest

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


# ----- the warehouse out of reach while a command runs ----------------------------------------------
def test_a_command_whose_approval_cannot_be_rechecked_stops_stepping(sim_config, warehouse, monkeypatch):
    """Another program holds the warehouse (DuckDB: one writing process) while an approved SET_FAN 12 steps with a
    SET_DRUM 8 waiting behind it, and the approval service revokes both meanwhile. Before, the revocations could
    not be read: the fan stepped on to 12, then the drum went to 8. Now a level command steps, and a waiting one
    starts, only while the approvals were re-read within three queue cycles: the fan command ends ABORTED (its
    level stays), the drum command waits for the warehouse."""
    from contextlib import contextmanager

    import duckdb

    from daena_pipelines.device.command_store import WarehouseIO

    from .test_fault_review import _fan_command_running

    sidecar, device = _fan_command_running(sim_config, ROASTERS["r1"], warehouse)  # queue read every 1 s
    approve(warehouse, "drum-8", "SET_DRUM", 8, serial="4242")  # waits behind fan-12
    assert run_until(sidecar, lambda s: [c.proposal_id for c in s.waiting] == ["drum-8"])
    with duckdb.connect(warehouse) as con:
        con.execute("UPDATE device.command_queue SET expires_at = now() WHERE proposal_id IN ('fan-12', 'drum-8')")

    @contextmanager
    def held_by_another_program(self):
        raise duckdb.IOException('IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held')
        yield

    monkeypatch.setattr(WarehouseIO, "_connection", held_by_another_program)
    assert run_until(sidecar, lambda s: s.active is None, limit_s=sidecar.clock.now() + 60)
    fan = device.fan
    run_until(sidecar, lambda s: False, limit_s=sidecar.clock.now() + 10)
    assert device.drum == 5 and sidecar.active is None  # drum-8 never started: its approval could not be re-read
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert result.command_statuses == {"COMPLETED": 1, "ABORTED": 1}  # preheat, fan-12
    fan_12 = [line for line in map(orjson.loads, result.path.read_bytes().splitlines())
              if line["type"] == "command" and line["proposal_id"] == "fan-12"][-1]
    assert fan_12["status"] == "ABORTED" and "approval not re-read for" in fan_12["error"], fan_12
    assert fan <= 2 + 2 * 3 + 1 and device.fan == 12  # at most a step per 0.5 s for 3 cycles of 1 s; cooling sets 12
    assert device.heater == 0 and device.sidecar_state == State.COOLING and result.exit["outcome"].startswith("made safe")


# ----- kill -9: what the dead sidecar reported last -------------------------------------------------
def _sidecar_that_reports_and_dies(warehouse, worker_pid, go):
    """A sidecar process (spawned): starts its warehouse worker, has its session written, then reports five running
    commands and is killed, while its worker is stopped (the test sends SIGSTOP) and so cannot take them in time."""
    import os
    import signal
    from datetime import UTC, datetime

    from daena_pipelines.device.command_store import CommandBridge

    bridge = CommandBridge(warehouse, "r1", "dead-rec", interval_s=3600)
    bridge.start()
    bridge.session({"recording_id": "dead-rec", "machine_id": "r1", "roaster_serial": "4242", "model": "Aillio Bullet R1",
                    "source": "real", "started_at": datetime.now(UTC)})
    bridge.sync()
    worker_pid.send(bridge._worker.pid)
    go.recv()  # the worker is stopped now
    for n in range(5):
        bridge.execution({"execution_id": f"dead-rec-p{n}", "proposal_id": f"p{n}", "machine_id": "r1", "recording_id": "dead-rec",
                          "command_type": "SET_FAN", "target_value": 5.0, "status": "EXECUTING",
                          "started_at": datetime.now(UTC), "source": "real"})
    bridge._reports.close()
    bridge._reports.join_thread()  # every report is in the pipe to the worker
    os.kill(os.getpid(), signal.SIGKILL)


def test_every_report_a_killed_sidecar_sent_is_written_and_closed(warehouse):
    """kill -9 of the sidecar right after it reported commands starting: its worker process finds the sidecar gone
    with reports still unread in the pipe. Before, it wrote what it had taken and dropped the rest (here 4 of 5
    running commands: no execution row, their queue rows APPROVED although steps were sent, so a later session would
    close them EXPIRED, 'never executed'). Now it reads every report first, then closes them FAILED."""
    import multiprocessing
    import os
    import signal
    import time

    context = multiprocessing.get_context("spawn")
    pid_out, pid_in = context.Pipe(duplex=False)
    go_out, go_in = context.Pipe(duplex=False)
    sidecar = context.Process(target=_sidecar_that_reports_and_dies, args=(warehouse, pid_in, go_out))
    sidecar.start()
    assert pid_out.poll(60), "the sidecar process never started its worker"
    worker = pid_out.recv()
    os.kill(worker, signal.SIGSTOP)
    try:
        go_in.send(True)
        sidecar.join(30)
        assert sidecar.exitcode == -signal.SIGKILL
    finally:
        os.kill(worker, signal.SIGCONT)
    deadline = time.monotonic() + 30
    while os.path.exists(f"/proc/{worker}") and time.monotonic() < deadline:
        time.sleep(0.05)
    import duckdb

    with duckdb.connect(warehouse) as con:
        rows = con.execute("SELECT proposal_id, status, error FROM device.command_executions ORDER BY 1").fetchall()
        ended = con.execute("SELECT end_reason FROM device.sidecar_sessions WHERE recording_id = 'dead-rec'").fetchone()
    assert [row[:2] for row in rows] == [(f"p{n}", "FAILED") for n in range(5)], rows
    assert all("killed or crashed" in row[2] for row in rows) and "ended without its exit procedure" in ended[0]


# ----- an approved ABORT always runs ------------------------------------------------------------------
def test_an_approved_abort_after_an_earlier_abort_still_makes_the_roaster_safe(sim_config, warehouse):
    """The sidecar aborted once (the roaster confirmed cooling); later the operator starts a preheat at the panel
    and then, from afar, asks for an ABORT through the approval service. Before, every command after an abort was
    refused, the ABORT too ("not executed: this session was aborted"), and the roaster went on preheating. An
    ABORT is the safe direction: it runs whenever its approval is valid (SIGUSR1 already did)."""
    from .test_faults import start

    sidecar, device = start(sim_config, ROASTERS["r1"], warehouse, operator=False, stop_on="duration",
                            max_duration_s=3600, queue_poll_interval_s=1.0)
    approve(warehouse, "preheat", "PREHEAT", serial="4242")
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED"), limit_s=60)
    sidecar.request_abort("operator signal (SIGUSR1)")
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done)
    device.press_prs()  # at the panel: cooling -> shutdown, off 10 s later, then a new preheat
    assert run_until(sidecar, lambda s: device.state == device.OFF)
    device.press_prs()
    assert run_until(sidecar, lambda s: device.state == device.PREHEATING and device.heater > 0)
    approve(warehouse, "abort", "ABORT", serial="4242")
    assert run_until(sidecar, lambda s: queue_rows(warehouse)["abort"][2] in ("COMPLETED", "FAILED"),
                     limit_s=sidecar.clock.now() + 60)
    assert queue_rows(warehouse)["abort"][2:] == ("COMPLETED", None)
    assert device.heater == 0 and device.sidecar_state == State.COOLING
    sidecar.request_stop("operator stop")
    assert sidecar.run_started().exit["outcome"] == "already safe"


# ----- settings that switch a safeguard off -----------------------------------------------------------
def _setting_name(setting: dict) -> str:
    return next(iter(setting["limits"] if "limits" in setting else setting))


@pytest.mark.parametrize("setting", [
    {"watchdog_timeout_s": math.nan},  # before: the watchdog fired once at the start (nothing commanded), never again
    {"reconnect_timeout_s": math.nan},  # before: never gave up on an unplugged roaster
    {"exit_timeout_s": -1.0},
    {"limits": {"max_et_c": math.nan}},  # before: no ET above a NaN ceiling, the trip switched off
    {"limits": {"safe_confirm_s": -0.4}},  # before: one status confirmed the roaster safe
    {"limits": {"max_bt_c": math.inf}},
    {"limits": {"command_timeout_s": 1e9}},  # before: a command never timed out, nor counted as stuck in the warehouse
], ids=lambda setting: _setting_name(setting))
def test_a_setting_that_would_switch_a_safeguard_off_is_refused_before_the_roaster_is_opened(setting):
    """Run config (Dagster takes YAML's .nan) or Pipes extras: refused with the setting's name before anything
    opens the roaster."""
    from daena_pipelines.device.sidecar import SidecarConfig

    with pytest.raises(ValueError, match=_setting_name(setting)):
        SidecarConfig.from_dict({"simulate": True, **setting})


# Every setting only the virtual roaster reads, each with a value other than its default, as run config / Pipes
# extras carry it (the thermal model is no run setting: it comes as an object).
_FAULT_WINDOW = [10.0, 20.0]
SIMULATION_ONLY = {
    "time_scale": 0, "seed": 3, "start_at": "2026-11-17T09:00:00+00:00",
    **{f"virtual.{name}": value for name, value in {
        "product_id": 0xA27E, "serial": 7, "firmware": 220, "roast_count": 1, "batch_g": 100.0, "seed": 3, "ibts": True,
        "operator": {"drop_bt_c": 205.0},
    }.items()},
    **{f"virtual.faults.{name}": value for name, value in {
        "disconnect_at_s": 60.0, "reconnect_after_s": 5.0, "stall_reads": _FAULT_WINDOW, "late_reply_at_s": 30.0,
        "invalid_packets": _FAULT_WINDOW, "probe_failed_at_s": 100.0, "probe_failed_reads_c": 850.0,
        "unknown_state": _FAULT_WINDOW, "short_replies": _FAULT_WINDOW, "empty_replies": _FAULT_WINDOW,
        "safe_looking": _FAULT_WINDOW, "roasting_looking": _FAULT_WINDOW, "wedged_from": 50.0,
        "unplug_on": "command_write", "unplug_file": "/tmp/pull-the-cable", "heater_ignores_steps": True,
        "command_write_timeouts": _FAULT_WINDOW, "usb_errors": _FAULT_WINDOW, "permission_denied": True,
        "kernel_driver_busy": True,
    }.items()},
}


def _nested(name: str, value) -> dict:
    """{"virtual.faults.x": v} as run config nests it: {"virtual": {"faults": {"x": v}}}."""
    *parents, leaf = name.split(".")
    setting = {leaf: value}
    for parent in reversed(parents):
        setting = {parent: setting}
    return setting


def test_the_simulation_only_list_covers_every_virtual_roaster_setting():
    from dataclasses import fields

    from daena_pipelines.device.virtual_r1 import Faults, VirtualR1Config

    listed = {name.split(".")[-1] for name in SIMULATION_ONLY if name.startswith("virtual.")}
    every = {f.name for f in fields(VirtualR1Config) if f.name not in ("faults", "thermal")} | {f.name for f in fields(Faults)}
    assert every - listed == set()


@pytest.mark.parametrize("name", sorted(SIMULATION_ONLY))
def test_a_simulation_only_setting_on_a_real_run_is_refused_naming_it(name):
    """simulate: false drives a real roaster, which never reads these: before, a fault set for a test was dropped
    without a word and the run roasted for real with nothing injected. Refused, naming the setting, before anything
    opens the roaster; the same setting with simulate: true is accepted."""
    from daena_pipelines.device.sidecar import SidecarConfig

    setting = _nested(name, SIMULATION_ONLY[name])
    with pytest.raises(ValueError, match=rf"only with simulate: true.*: {re.escape(name)}\."):
        SidecarConfig.from_dict({"simulate": False, **setting})
    assert SidecarConfig.from_dict({"simulate": True, **setting}).simulation_settings() == [name]


def test_a_changed_thermal_model_on_a_real_run_is_refused():
    from daena_pipelines.device.sidecar import SidecarConfig
    from daena_pipelines.device.thermal import ThermalParams
    from daena_pipelines.device.virtual_r1 import VirtualR1Config

    with pytest.raises(ValueError, match=r"simulate: true.*: virtual\.thermal\."):
        SidecarConfig.from_dict({"simulate": False, "virtual": VirtualR1Config(thermal=ThermalParams(ambient_c=30.0))})


def test_a_plain_real_config_is_accepted(monkeypatch):
    """A real run's own settings (serial, session details, limits, timings) pass; building the config opens nothing."""
    from daena_pipelines.device.driver import BULLET_R1
    from daena_pipelines.device.sidecar import SidecarConfig

    def no_roaster_here(*_):
        raise AssertionError("the config opened the roaster")

    monkeypatch.setattr(BULLET_R1, "open", no_roaster_here)
    cfg = SidecarConfig.from_dict({
        "simulate": False, "machine_id": "r1-kitchen", "roaster_serial": 4242, "beans": "Kenya Nyeri", "batch_weight_g": 250,
        "time_scale": 1.0, "seed": 0, "limits": {"max_bt_c": 230.0}, "reconnect_timeout_s": 20.0, "virtual": {},
    })
    assert (cfg.simulate, cfg.roaster_serial, cfg.limits.max_bt_c, cfg.batch_weight_g) == (False, "4242", 230.0, 250)


@pytest.mark.parametrize("name", ["virtual.faults.unplug_fle", "virtual.seeed", "virtual.operator.drop_bt", "limits.max_bt"])
def test_an_unknown_nested_setting_is_refused_naming_its_full_key(name):
    """A typo inside virtual, faults, operator or limits failed with Python's "unexpected keyword argument" (the bare
    field, no section); now it is refused like an unknown top-level setting, by its full key, before any settings
    object (let alone the roaster) is built."""
    from daena_pipelines.device.sidecar import SidecarConfig

    with pytest.raises(ValueError, match=rf"^unknown sidecar settings: \['{re.escape(name)}'\]$"):
        SidecarConfig.from_dict({"simulate": True, **_nested(name, 1.0)})


def test_a_virtual_seed_given_alone_drives_the_simulation(tmp_path):
    """With simulate: true, build_sidecar overwrote virtual.seed with the top-level seed (default 0): the roast came
    from seed 0 without a word. Now virtual.seed given alone is the seed of the virtual roaster, of the header and of
    a stepped run's recording id, the same as the top-level seed would be."""
    from daena_pipelines.device.sidecar import SidecarConfig, build_sidecar

    common = {"simulate": True, "time_scale": 0, "start_at": "2026-11-17T09:00:00+00:00",
              "recordings_dir": str(tmp_path / "recordings"), "landing_dir": str(tmp_path / "landing")}
    sidecar, device = build_sidecar(SidecarConfig.from_dict({**common, "virtual": {"seed": 7}}))
    top_level, _ = build_sidecar(SidecarConfig.from_dict({**common, "seed": 7}))
    assert (device.config.seed, sidecar.simulator["seed"]) == (7, 7)
    assert sidecar.recording_id == top_level.recording_id


@pytest.mark.parametrize("seeds, refused", [((5, 7), True), ((7, 7), False)])
def test_two_different_seeds_are_refused_naming_both(seeds, refused):
    """seed and virtual.seed both given: the same value is one seed; two different ones are refused, naming both,
    rather than one of them dropped (before: virtual.seed, silently)."""
    from daena_pipelines.device.sidecar import SidecarConfig

    config = {"simulate": True, "seed": seeds[0], "virtual": {"seed": seeds[1]}}
    if refused:
        with pytest.raises(ValueError, match=r"^seed \(5\) and virtual\.seed \(7\) differ"):
            SidecarConfig.from_dict(config)
    else:
        assert SidecarConfig.from_dict(config).simulation_seed == 7


# ----- the R2's frames ------------------------------------------------------------------------------------
def test_zero_length_frames_from_an_r2_mid_command_end_with_it_safe(sim_config, warehouse):
    """An R2 whose frames carried their CRC answers zero-length packets for 5 s while an approved SET_FAN 12 steps
    (preheating, commanded). Before, the driver's CRC check read the empty frame's type byte: IndexError, not an
    unusable frame. Every cycle raised, and so did the abort outside the loop (it expects only device errors): the
    process died with the R2 preheating at 14. Now an empty frame is an unusable one like any short frame."""
    from .test_fault_review import _fan_command_running
    from .test_faults import inject

    sidecar, device = _fan_command_running(sim_config, ROASTERS["r2"], warehouse)
    assert sidecar.driver.frames_carry_crc
    now = sidecar.clock.now()
    sidecar.cfg.stop_on, sidecar.cfg.max_duration_s = "duration", now - sidecar.t0 + 30
    inject(device, empty_replies=(now, now + 5.0))
    result = sidecar.run_started()
    assert device.heater == 0 and device.sidecar_state == State.COOLING
    assert result.error is None and footer(result)["end_reason"] == "duration"
    assert any(f.startswith("abort: lost control") for f in result.faults)  # 3 s without a usable frame, commanded
    assert result.exit["outcome"] == "already safe", result.exit


def test_a_stream_of_unusable_r2_frames_does_not_hold_a_poll_for_seconds(clock):
    """Zero-length packets at the R2's frame rate: no temperature frame comes, but every read returns one. Before,
    a poll read through 64 of them (4.6 s of roaster time) before giving up: in real time the loop stood still, the
    watchdog (2 s) took over from a loop that was only waiting, and no abort or lost-control check ran meanwhile.
    Now a poll waits through at most six frames (0.6 s at 10 Hz; 1.8 s if each came just inside its 0.3 s)."""
    from daena_pipelines.device import roaster as r
    from daena_pipelines.device.r2.driver import BulletR2
    from daena_pipelines.device.r2.virtual import plug_in_virtual_r2
    from daena_pipelines.device.virtual_r1 import Faults, VirtualR1Config

    _, backend = plug_in_virtual_r2(VirtualR1Config(faults=Faults(empty_replies=(2.0, 12.0))), clock)
    r2 = BulletR2.open(backend=backend)
    clock.sleep(1.0)
    assert r2.poll().state == State.OFF
    clock.sleep(1.5)  # into the fault
    outcomes = []
    while len(outcomes) < 6:  # frames queued before it, then two polls that may reuse the last reading, then none
        started = clock.now()
        try:
            r2.poll()
            outcomes.append("reading")
        except r.ReadTimeout:
            outcomes.append(round(clock.now() - started, 2))
        clock.sleep(0.1)
    waits = [outcome for outcome in outcomes if outcome != "reading"]
    assert len(waits) >= 3 and max(waits) <= 0.65, outcomes


def test_a_full_recordings_disk_does_not_switch_off_the_ceiling_trip(sim_config, warehouse):
    """The sidecar only observes (never commanded) a roast nobody drops; the recordings disk fills up as BT passes
    its ceiling. Before, the failing sample write ended each cycle before the ceilings were checked: no trip, and
    after three failing cycles the session ended with the roaster roasting at full heat. The cycle now checks the
    ceilings and acts first; the write's error still ends the session (the run fails at the footer)."""
    from dataclasses import replace

    from daena_pipelines.device.sidecar import build_sidecar

    virtual = ROASTERS["r1"].virtual()
    virtual.operator = type(virtual.operator)(drop_bt_c=400.0, heater_at_bt=())  # nobody drops, heater stays up
    sidecar, device = build_sidecar(sim_config(virtual=virtual, warehouse=warehouse, stop_on="duration",
                                               max_duration_s=3600))
    sidecar.start()
    assert run_until(sidecar, lambda s: s.charge_t is not None and s.clock.now() - s.t0 - s.charge_t > 120
                     and s.last_reading.channel_a_c > 195.0)  # past the turning point: the BT ceiling holds
    assert not sidecar.commanded and sidecar.abort is None
    sidecar.limits = replace(sidecar.limits, max_bt_c=190.0)  # BT is past it from the next status on ...
    sidecar.recorder._write = disk_full  # ... when the disk is full
    with pytest.raises(OSError, match="No space left on device"):
        sidecar.run_started()  # at the footer
    assert device.heater == 0 and device.sidecar_state == State.COOLING
    assert any(f.startswith("abort: safety trip: BT") for f in sidecar.faults)


def test_a_footer_the_full_disk_refuses_still_leaves_the_warehouse_closed(sim_config, warehouse):
    """The recordings disk is full when the session ends: the roaster is made safe, the footer cannot be written and
    the run fails. Before, the warehouse worker was never stopped, so nothing the exit reported reached the warehouse:
    the aborted command stayed EXECUTING and the session open, and the next sidecar on that roaster would close them
    as if this one had been killed. The worker is now stopped (its rows written) whatever the footer does."""
    sidecar, device = power_3_running(sim_config, ROASTERS["r1"], warehouse)
    sidecar.recorder._write = disk_full
    with pytest.raises(OSError, match="No space left on device"):
        sidecar.run_started()
    assert device.heater == 0 and device.sidecar_state == State.COOLING
    assert queue_rows(warehouse)["power-3"][2] == "ABORTED"
    import duckdb

    with duckdb.connect(warehouse) as con:
        ended_at, end_reason = con.execute("SELECT ended_at, end_reason FROM device.sidecar_sessions WHERE recording_id = ?",
                                           [sidecar.recording_id]).fetchone()
    assert ended_at is not None and end_reason == "error"


# ----- fourth review: an ABORT never waits, and a read counts from when it was made -------------------------
def _power_ramp_up(sim_config, warehouse):
    """A roasting roaster the sidecar took down to heater 3, then an approved SET_POWER 9 that has begun stepping up."""
    sidecar, device = power_3_running(sim_config, ROASTERS["r1"], warehouse)
    assert run_until(sidecar, lambda s: s.active is None and device.heater == 3)
    approve(warehouse, "power-9", "SET_POWER", 9)
    assert run_until(sidecar, lambda s: s.active is not None and s.active.command.proposal_id == "power-9")
    return sidecar, device


def test_an_approved_abort_does_not_wait_for_a_running_power_ramp(sim_config, warehouse):
    """The operator asks for an ABORT while an approved SET_POWER 9 steps the heater up. Before, an ABORT read while
    a command ran only joined the waiting list, behind it: the heater went on stepping up to 9, and only then was
    the roaster driven to 0. Now an approved ABORT read from the queue ends the running command at once."""
    sidecar, device = _power_ramp_up(sim_config, warehouse)
    start_heater = device.heater
    approve(warehouse, "abort", "ABORT")
    highest = []
    assert run_until(sidecar, lambda s: highest.append(device.heater) or queue_rows(warehouse)["abort"][2] == "COMPLETED",
                     limit_s=sidecar.clock.now() + 60)
    assert max(highest) <= start_heater + 1, highest  # at most the step already under way when the ABORT was approved
    rows = queue_rows(warehouse)
    assert rows["power-9"][2] == "ABORTED" and device.heater == 0 and device.sidecar_state == State.COOLING, rows


def test_an_abort_waiting_behind_a_command_runs_while_the_warehouse_is_out_of_reach(sim_config, warehouse, monkeypatch):
    """A SET_DRUM 8 and then an ABORT were approved and read; the warehouse is then held by another program. Before,
    the drum command at the head of the waiting list waited for the warehouse, and the ABORT behind it waited too."""
    from contextlib import contextmanager

    import duckdb

    from daena_pipelines.device.command_store import WarehouseIO

    sidecar, device = _power_ramp_up(sim_config, warehouse)
    approve(warehouse, "drum-8", "SET_DRUM", 8, approved_at="now() - INTERVAL 1 SECOND")
    approve(warehouse, "abort", "ABORT")
    assert run_until(sidecar, lambda s: {c.proposal_id for c in s.waiting} >= {"drum-8", "abort"} or s.abort is not None)

    @contextmanager
    def held_by_another_program(self):
        raise duckdb.IOException('IO Error: Could not set lock on file "w.duckdb": Conflicting lock is held')
        yield

    monkeypatch.setattr(WarehouseIO, "_connection", held_by_another_program)
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done, limit_s=sidecar.clock.now() + 60)
    assert device.heater == 0 and device.sidecar_state == State.COOLING and device.drum != 8


def test_approvals_read_before_a_stall_do_not_count_as_read_after_it(sim_config, warehouse):
    """Real time: an approved SET_FAN 12 steps; the roaster stalls (reads time out, the loop goes on without a status
    and so without looking at the queue); meanwhile the warehouse worker reads the queue once more, then another
    program takes the warehouse. When the roaster answers again the last read is 2.6 s old: past the 2 s rule. Before,
    the read was timed when the loop took its news, after the stall, and the fan stepped on for two more seconds."""
    from daena_pipelines.device.safety import SafetyLimits

    from .conftest import locked_retry
    from .test_faults import inject, start

    # lost_control_s above the stall: that abort is not what is tested here
    sidecar, device = start(sim_config, ROASTERS["r1"], warehouse, operator=False, time_scale=1.0,
                            queue_poll_interval_s=0.5, watchdog_timeout_s=30.0, limits=SafetyLimits(lost_control_s=4.5))
    approve(warehouse, "preheat", "PREHEAT", serial="4242")
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED"), limit_s=sidecar.clock.now() + 60)
    approve(warehouse, "fan-12", "SET_FAN", 12, serial="4242")
    assert run_until(sidecar, lambda s: s.active is not None and device.fan >= 2, limit_s=sidecar.clock.now() + 30)
    stall = sidecar.clock.now()
    inject(device, stall_reads=(stall, stall + 3.6))
    fan = device.fan
    assert run_until(sidecar, lambda s: s.clock.now() >= stall + 1.0)  # the worker has read the queue meanwhile
    with locked_retry(warehouse) as held:  # another program holds the warehouse: no read from here on
        assert run_until(sidecar, lambda s: s.clock.now() >= stall + 3.6)
        assert run_until(sidecar, lambda s: s.active is None, limit_s=sidecar.clock.now() + 10)
        assert device.fan == fan  # no step after the stall
        held.execute("SELECT 1")
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    fan_12 = [line for line in map(orjson.loads, result.path.read_bytes().splitlines())
              if line["type"] == "command" and line["proposal_id"] == "fan-12"][-1]
    assert fan_12["status"] == "ABORTED" and "approval not re-read for" in fan_12["error"], fan_12
    assert device.heater == 0 and device.sidecar_state == State.COOLING


def test_an_abort_approved_by_a_clock_ahead_of_this_one_still_runs(sim_config, warehouse):
    """The approval service's clock runs a minute ahead of this host's; the operator asks for an ABORT while the
    sidecar's preheat heats the roaster. Before, the ABORT was EXPIRED like any approval dated ahead of this host's
    clock (its age unknown) and the roaster went on preheating. Whatever its age, an ABORT only drives the roaster to
    heater 0 and cooling: it runs."""
    from .test_faults import start

    sidecar, device = start(sim_config, ROASTERS["r1"], warehouse, operator=False, stop_on="duration",
                            max_duration_s=3600, queue_poll_interval_s=1.0)
    approve(warehouse, "preheat", "PREHEAT", serial="4242")
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED") and device.heater > 0, limit_s=60)
    approve(warehouse, "abort", "ABORT", serial="4242", approved_at="now() + INTERVAL 1 MINUTE")
    assert run_until(sidecar, lambda s: queue_rows(warehouse)["abort"][0] != "APPROVED",
                     limit_s=sidecar.clock.now() + 60)
    assert run_until(sidecar, lambda s: s.abort is None or s.abort.done, limit_s=sidecar.clock.now() + 60)
    assert queue_rows(warehouse)["abort"][2:] == ("COMPLETED", None), queue_rows(warehouse)["abort"]
    assert device.heater == 0 and device.sidecar_state == State.COOLING
