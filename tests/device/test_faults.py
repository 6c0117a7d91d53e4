"""Fault injection: every case of issue #8 ends with the roaster safe or untouched, a footer, and
every command closed. Each test asserts the roaster's final heater/state as the virtual twin has
it, the recording's footer (end reason, exit outcome), lost samples and the command statuses.
Parametrised by the ``roaster`` fixture (conftest.ROASTERS), so another model's twin plugs in."""
import threading

import duckdb
import orjson
import pytest

from daena_pipelines.device.roaster import SAFE_STATES, State, WrongRoaster
from daena_pipelines.device.sidecar import build_sidecar
from daena_pipelines.device.virtual_r1 import Faults, VirtualR1Config

from .conftest import approve, queue_rows, run_until, table_row


def start(sim_config, roaster, warehouse=None, operator=True, **overrides):
    sidecar, device = build_sidecar(sim_config(model=roaster.model, virtual=roaster.virtual(operator), warehouse=warehouse,
                                               **overrides))
    sidecar.start()
    return sidecar, device


def inject(device, **faults):
    """Switch faults on from now (device times are absolute)."""
    device.config.faults = Faults(**{**device.config.faults.__dict__, **faults})


def roasting_for(seconds):
    return lambda s: s.charge_t is not None and s.clock.now() - s.t0 - s.charge_t >= seconds


def take_control(sidecar, warehouse, roaster):
    """The sidecar executes one approved command: from now on it answers for the roaster."""
    approve(warehouse, "take-control", "SET_FAN", 3, serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED"))
    assert sidecar.commanded


def controlling(sim_config, roaster, warehouse, **overrides):
    """A sidecar that has taken control of a roaster roasting for a minute: (sidecar, device, now)."""
    sidecar, device = start(sim_config, roaster, warehouse, **overrides)
    assert run_until(sidecar, roasting_for(60))
    take_control(sidecar, warehouse, roaster)
    return sidecar, device, sidecar.clock.now()


def footer(result) -> dict:
    return orjson.loads(result.path.read_bytes().splitlines()[-1])


def writes(device, since=0.0):
    return [data for t, data in device.wire_log if t >= since and len(data) >= 4]


def safe(device) -> bool:
    return device.heater == 0 and State(device.sidecar_state) in SAFE_STATES


def record(case, device, result, statuses):
    model = orjson.loads(result.path.read_bytes().splitlines()[0])["model"]  # the header's roaster model
    table_row(case, {"h": device.heater, "st": device.sidecar_state, "model": model}, result.lost_polls, footer(result),
              statuses)


# ----- stale approvals ---------------------------------------------------------------------------
def test_stale_approvals_are_closed_expired_and_never_run(roaster, sim_config, warehouse):
    approve(warehouse, "preheat-30-days-old", "PREHEAT", serial=roaster.serial, approved_at="now() - INTERVAL 30 DAY")
    approve(warehouse, "sessionless-before-start", "PREHEAT", serial=roaster.serial, approved_at="now() - INTERVAL 20 SECOND")
    approve(warehouse, "explicit-expiry-passed", "PREHEAT", serial=roaster.serial,
            expires_at="now() - INTERVAL 1 SECOND")
    sidecar, device = start(sim_config, roaster, warehouse, operator=False)  # nobody at the panel
    approve(warehouse, "other-roaster", "PREHEAT", serial="31337", machine=roaster.model)
    approve(warehouse, "no-serial", "PREHEAT", serial=None, machine=roaster.model)
    assert run_until(sidecar, lambda s: sum(s.command_statuses.values()) == 5, limit_s=120)
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    rows = queue_rows(warehouse)
    assert {k: v[0] for k, v in rows.items()} == {
        "preheat-30-days-old": "EXPIRED", "sessionless-before-start": "EXPIRED", "explicit-expiry-passed": "EXPIRED",
        "other-roaster": "FAILED", "no-serial": "FAILED"}
    assert "approval expired at" in rows["preheat-30-days-old"][1]
    assert "before this session started" in rows["sessionless-before-start"][1]
    assert "approved for roaster serial 31337" in rows["other-roaster"][3]
    assert rows["preheat-30-days-old"][2] is None  # never executed: no execution row
    assert writes(device) == [] and device.heater == 0 and device.sidecar_state == State.OFF  # untouched
    assert result.command_statuses == {"EXPIRED": 3, "FAILED": 2}
    assert footer(result)["end_reason"] == "operator stop" and result.exit["outcome"].startswith("untouched")
    record("stale approvals (30-day-old, session-less before start, past expiry, other serial)", device, result,
              result.command_statuses)


def test_fresh_approval_runs_and_the_exit_makes_the_commanded_roaster_safe(roaster, sim_config, warehouse):
    sidecar, device = start(sim_config, roaster, warehouse, operator=False)
    approve(warehouse, "preheat-now", "PREHEAT", serial=roaster.serial)  # session-less, approved during the session
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED"), limit_s=120)
    assert device.sidecar_state == State.PREHEATING and device.heater > 0
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert safe(device) and device.sidecar_state == State.COOLING
    assert result.exit["outcome"] == "made safe: heater 0 and cooling confirmed by status"
    assert queue_rows(warehouse)["preheat-now"][0] == "COMPLETED"


# ----- abort is a process ------------------------------------------------------------------------
def test_abort_after_a_10_s_stall_while_controlling_completes(roaster, sim_config, warehouse):
    sidecar, device, now = controlling(sim_config, roaster, warehouse)
    inject(device, stall_reads=(now, now + 10.0))
    approve(warehouse, "abort-now", "ABORT", serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done)
    assert sidecar.abort.reason.startswith("lost control")  # 3 s without status while controlling
    assert sidecar.clock.now() >= now + 10.0 and sidecar.abort.reachable_s < 2.0  # the stall did not count
    result = sidecar.run_started()
    assert safe(device)
    statuses = {k: v[0] for k, v in queue_rows(warehouse).items()}
    assert statuses["take-control"] == "COMPLETED"
    # read once the lost-control abort had confirmed the roaster safe: an ABORT always runs, and confirms it again
    assert statuses["abort-now"] == "COMPLETED"
    # 10 s stalled: ~100 polls; reopened after 5 s, so the next reconnect second can add one or two
    assert footer(result)["end_reason"] == "cool_end" and 95 <= result.lost_polls <= 110
    steps = [f for f in result.faults if f.startswith("abort_step")]
    assert steps and all("heater" in f for f in steps)  # every step recorded
    record("abort after a 10 s stall while controlling", device, result, statuses)


def test_abort_signal_during_an_8_s_unplug_completes_after_replug(roaster, sim_config, warehouse):
    sidecar, device, now = controlling(sim_config, roaster, warehouse)
    inject(device, disconnect_at_s=now, reconnect_after_s=8.0)
    assert run_until(sidecar, lambda s: s.driver is None)
    sidecar.request_abort("operator signal (SIGUSR1)")
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done)
    assert sidecar.clock.now() >= now + 8.0 and sidecar.abort.reachable_s < 2.0
    result = sidecar.run_started()
    assert safe(device) and result.abort_latency_s > 8.0
    # the abort process starts with the first status after the replug
    assert [f.split(":")[0] for f in result.faults][:3] == ["disconnect", "reconnected", "abort"]
    assert footer(result)["end_reason"] == "cool_end" and 75 <= result.lost_polls <= 95
    record("abort signal during an 8 s unplug", device, result, result.command_statuses)


# ----- exceptions --------------------------------------------------------------------------------
def test_nan_and_out_of_range_targets_are_refused_before_anything_is_sent(roaster, sim_config, warehouse):
    sidecar, device = start(sim_config, roaster, warehouse)
    assert run_until(sidecar, roasting_for(60))
    since = sidecar.clock.now()
    approve(warehouse, "nan-power", "SET_POWER", float("nan"), serial=roaster.serial)
    approve(warehouse, "inf-fan", "SET_FAN", float("inf"), serial=roaster.serial)
    approve(warehouse, "power-99", "SET_POWER", 99, serial=roaster.serial)
    assert run_until(sidecar, lambda s: sum(s.command_statuses.values()) == 3)
    assert writes(device, since) == []
    result = sidecar.run_started()
    rows = queue_rows(warehouse)
    assert {k: (v[2], v[3].split(":")[0]) for k, v in rows.items()} == {
        k: ("FAILED", "refused by local limits") for k in ("nan-power", "inf-fan", "power-99")}
    assert "target nan is not a whole level" in rows["nan-power"][3]
    assert footer(result)["end_reason"] == "cool_end" and result.lost_polls == 0
    assert safe(device) and result.exit["outcome"].startswith("untouched")
    record("NaN / inf / out-of-range targets", device, result, result.command_statuses)


def test_usb_write_timeout_while_sending_a_command(roaster, sim_config, warehouse):
    sidecar, device = start(sim_config, roaster, warehouse)
    assert run_until(sidecar, roasting_for(60))
    approve(warehouse, "power-5", "SET_POWER", 5, serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.active is not None)
    now = sidecar.clock.now()
    inject(device, command_write_timeouts=(now, now + 1.5))
    assert run_until(sidecar, lambda s: s.command_statuses)
    assert any(f.startswith("send_failed") for f in sidecar.faults)
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    rows = queue_rows(warehouse)
    assert rows["power-5"][2] in ("COMPLETED", "FAILED")  # retried after the timeouts, or failed with a reason
    assert safe(device) and device.sidecar_state == State.COOLING  # commanded: the exit made it safe
    assert footer(result)["end_reason"] == "operator stop" and footer(result)["exit"]["outcome"].startswith("made safe")
    record("USB write timeout while sending a command", device, result, result.command_statuses)


def test_usb_error_without_special_meaning_is_a_lost_poll_not_a_crash(roaster, sim_config, warehouse):
    sidecar, device, now = controlling(sim_config, roaster, warehouse)
    inject(device, usb_errors=(now, now + 5.0))  # longer than lost_control_s: the abort trips
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done)
    result = sidecar.run_started()
    assert any(f.startswith("usb_error") for f in result.faults) and sidecar.abort.reason.startswith("lost control")
    assert safe(device) and footer(result)["end_reason"] == "cool_end" and 45 <= result.lost_polls <= 55
    record("USB errno the driver maps to its generic error (5 s) while controlling", device, result,
              result.command_statuses)


def test_an_exception_in_every_cycle_still_ends_safe_with_a_footer(roaster, sim_config, warehouse):
    sidecar, device = start(sim_config, roaster, warehouse)
    assert run_until(sidecar, roasting_for(60))
    take_control(sidecar, warehouse, roaster)
    approve(warehouse, "power-3", "SET_POWER", 3, serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.active is not None and device.heater < 9)

    def broken(*args):
        raise OSError(28, "No space left on device")

    sidecar._record = broken  # every cycle now raises before it can send anything
    result = sidecar.run_started()
    assert safe(device) and device.sidecar_state == State.COOLING
    assert footer(result)["end_reason"] == "error" and "No space left on device" in result.error
    assert any(f.startswith("drive_safe: poll loop failing: heater 0") for f in result.faults)
    assert result.exit["outcome"] == "made safe outside the poll loop: heater 0 and cooling confirmed by status"
    rows = queue_rows(warehouse)
    assert rows["power-3"][2] == "ABORTED"  # not left EXECUTING
    record("exception in every poll cycle (e.g. disk full) mid-command", device, result,
              {k: v[2] for k, v in rows.items()})


# ----- disconnects -------------------------------------------------------------------------------
def test_4_s_unplug_while_controlling_trips_the_lost_control_abort(roaster, sim_config, warehouse):
    sidecar, device, now = controlling(sim_config, roaster, warehouse)
    inject(device, disconnect_at_s=now, reconnect_after_s=4.0)
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done)
    assert sidecar.abort.reason.startswith("lost control: no valid status for 3.")
    result = sidecar.run_started()
    assert safe(device) and footer(result)["end_reason"] == "cool_end" and 38 <= result.lost_polls <= 52
    record("4 s unplug while controlling", device, result, result.command_statuses)


def test_permanent_unplug_counts_every_lost_poll_and_ends_within_the_window(roaster, sim_config, warehouse):
    sidecar, device, now = controlling(sim_config, roaster, warehouse, reconnect_timeout_s=10.0)
    inject(device, disconnect_at_s=now)
    result = sidecar.run_started()
    assert footer(result)["end_reason"] == "disconnected" and 99 <= result.lost_polls <= 102
    assert sidecar.clock.now() - now < 10.0 + 0.5
    assert result.exit["outcome"] == "roaster gone: nothing can be sent"
    # the roaster itself keeps its last settings: with USB gone nothing can reach it
    assert device.sidecar_state == State.ROASTING
    record("permanent unplug while controlling", device, result, result.command_statuses)


# ----- warehouse I/O off the poll loop -----------------------------------------------------------
def test_the_poll_loop_never_opens_the_warehouse(roaster, sim_config, warehouse, monkeypatch):
    threads = []
    real_connect = duckdb.connect

    def connect(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return real_connect(*args, **kwargs)

    sidecar, device = start(sim_config, roaster, warehouse)
    monkeypatch.setattr(duckdb, "connect", connect)
    assert run_until(sidecar, roasting_for(30))
    monkeypatch.setattr(duckdb, "connect", real_connect)
    take_control(sidecar, warehouse, roaster)
    monkeypatch.setattr(duckdb, "connect", connect)
    result = sidecar.run_started()
    assert set(threads) <= {"sidecar-warehouse"}, threads
    assert queue_rows(warehouse)["take-control"][2] == "COMPLETED" and result.lost_polls == 0


# ----- the right roaster -------------------------------------------------------------------------
def test_roaster_chosen_by_serial_among_several(clock):
    """Two virtual R1s on one bus (two R2s: test_r2_driver)."""
    from daena_pipelines.device.driver import BulletR1
    from daena_pipelines.device.virtual_r1 import VirtualBus, plug_in_virtual_r1

    _, first_backend = plug_in_virtual_r1(VirtualR1Config(serial=4242), clock)
    _, second_backend = plug_in_virtual_r1(VirtualR1Config(serial=5151), clock)
    bus = VirtualBus(first_backend, second_backend)
    with pytest.raises(WrongRoaster, match="2 Bullet R1s are on USB; set roaster_serial"):
        BulletR1.open(None, backend=bus)
    with pytest.raises(WrongRoaster, match="No Bullet R1 with serial 9999 on USB"):
        BulletR1.open("9999", backend=bus)
    chosen = BulletR1.open("5151", backend=bus)
    assert chosen.info.serial == "5151" and not first_backend.claimed and second_backend.claimed


def test_proposal_for_another_serial_is_never_sent(roaster, sim_config, warehouse):
    sidecar, device = start(sim_config, roaster, warehouse, roaster_serial=roaster.serial)
    assert run_until(sidecar, roasting_for(60))
    since = sidecar.clock.now()
    approve(warehouse, "fan-other-roaster", "SET_FAN", 5, serial="5151", machine=roaster.model)
    assert run_until(sidecar, lambda s: s.command_statuses)
    assert writes(device, since) == []
    result = sidecar.run_started()
    row = queue_rows(warehouse)["fan-other-roaster"]
    assert row[2] == "FAILED" and f"this roaster is serial {roaster.serial}" in row[3]
    assert safe(device) and footer(result)["end_reason"] == "cool_end"
    record("proposal names another roaster's serial", device, result, result.command_statuses)


# ----- the watchdog ------------------------------------------------------------------------------
def test_watchdog_makes_the_roaster_safe_when_the_poll_loop_hangs(roaster, sim_config, warehouse):
    import time

    sidecar, device = start(sim_config, roaster, warehouse, operator=False, time_scale=10.0, queue_poll_interval_s=0.5,
                            watchdog_timeout_s=0.5)
    approve(warehouse, "preheat", "PREHEAT", serial=roaster.serial)
    assert run_until(sidecar, lambda s: device.sidecar_state == State.PREHEATING and device.heater >= 8, limit_s=600)
    stuck = sidecar.recorder.sample

    def hangs_once(*args):
        # e.g. the recordings disk stalls until the watchdog has made the roaster safe. A fixed 1.5 s (three of its
        # timeouts) needed its thread to wake and confirm within that: on a loaded machine the loop could resume first
        sidecar.recorder.sample = stuck
        deadline = time.monotonic() + 60
        while not any(f.startswith("drive_safe: watchdog: heater 0") for f in sidecar.faults) and time.monotonic() < deadline:
            time.sleep(0.01)
        return stuck(*args)

    sidecar.recorder.sample = hangs_once
    result = sidecar.run_started()
    assert safe(device) and device.sidecar_state == State.COOLING
    assert footer(result)["end_reason"] == "watchdog"
    assert any(f.startswith("watchdog: poll loop silent") for f in result.faults)
    assert any(f.startswith("drive_safe: watchdog: heater 0 and cooling confirmed") for f in result.faults)
    record("poll loop hangs until the watchdog made the roaster safe", device, result, result.command_statuses)


def test_a_stalled_warehouse_in_stepped_time_ends_the_session_safe_with_an_error(roaster, sim_config, warehouse, monkeypatch):
    """A stepped run waits for each warehouse cycle. A cycle slower than the wait raised queue.Empty on every later
    look at the queue, and the process died with SIGABRT (DuckDB still in the cycle at exit). Now: the message
    says so, the exit makes the commanded roaster safe without the warehouse, and the exit code is 1."""
    from daena_pipelines.device import sidecar as sidecar_module
    from daena_pipelines.device.command_store import WarehouseIO
    from daena_pipelines.device.sidecar_process import exit_code

    sidecar, device, _ = controlling(sim_config, roaster, warehouse)
    assert not safe(device)
    stalled = threading.Event()
    monkeypatch.setattr(sidecar_module, "STEPPED_SYNC_TIMEOUT_S", 0.2)
    monkeypatch.setattr(WarehouseIO, "cycle", lambda io, read: stalled.wait(10.0) and [])
    try:
        result = sidecar.run_started()
    finally:
        stalled.set()
    assert safe(device)
    assert footer(result)["end_reason"] == "error"
    assert "did not finish a cycle within 0.2 s" in result.error and exit_code(result) == 1
    assert result.exit["outcome"] == "made safe: heater 0 and cooling confirmed by status"


STUCK_IN_DUCKDB = """
import sys, duckdb
from daena_pipelines.device import sidecar as sidecar_module
from daena_pipelines.device.command_store import WarehouseIO
from daena_pipelines.device.sidecar import SidecarConfig, build_sidecar
from daena_pipelines.device.sidecar_process import exit_code, leave
from daena_pipelines.device.virtual_r1 import OperatorPlan, VirtualR1Config

folder, warehouse = sys.argv[1], sys.argv[2]
sidecar_module.STEPPED_SYNC_TIMEOUT_S = 0.5
# a cycle stuck inside DuckDB (a query of minutes), as on a lake four other writers were creating
WarehouseIO.cycle = lambda io, read: duckdb.connect().execute(
    "SELECT count(*) FROM range(10000000000) t(i) WHERE i % 7 = 3").fetchall() and []
cfg = SidecarConfig(simulate=True, time_scale=0, seed=7, start_at="2026-11-17T09:00:00+00:00", warehouse=warehouse,
                    recordings_dir=folder + "/rec", landing_dir=folder + "/land", stop_on="duration", max_duration_s=60,
                    virtual=VirtualR1Config(operator=OperatorPlan()))
sidecar, device = build_sidecar(cfg)
result = sidecar.run()
print("heater", device.heater, result.error.splitlines()[-1], flush=True)
leave(exit_code(result))
"""


def test_a_sidecar_process_whose_warehouse_is_stuck_in_duckdb_exits_1_not_sigabrt(tmp_path, warehouse):
    """Before, interpreter shutdown met the warehouse thread inside DuckDB: 'terminate called without an active
    exception', exit -6 (SIGABRT). Now the process leaves with its own code and message, the recording landed."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", STUCK_IN_DUCKDB, str(tmp_path), warehouse],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    assert "heater 0 TimeoutError: the warehouse did not finish a cycle within 0.5 s" in done.stdout
    assert len(list((tmp_path / "land").glob("*.sidecar.jsonl"))) == 1
