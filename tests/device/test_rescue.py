"""The warehouse worker's rescue (``rescue.make_safe``) on its own: a virtual roaster left heating by a
process that no longer runs, remembered in a file, picked up here, driven through the model's driver
and pyusb. The whole path through a real killed child is test_kill9.py; here, each model and the
ways it cannot work. End states are the roaster's own, read back from its memory. Last, that memory
goes with a session that ended by its exit procedure, also when the exit failed, or the start."""
from __future__ import annotations

import errno
import multiprocessing
import multiprocessing.context
import os
import signal
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from daena_pipelines.device.clock import ScaledClock
from daena_pipelines.device.command_store import CommandBridge, MachineBusy, WarehouseIO, _after_sidecar_died, claim_machine
from daena_pipelines.device.driver import BulletR1
from daena_pipelines.device.models import MODELS
from daena_pipelines.device.r2.virtual import usb_serial
from daena_pipelines.device.rescue import WORKER, RescuePlan, after_death, make_safe
from daena_pipelines.device.safety import SafetyLimits
from daena_pipelines.device.sidecar import VIRTUAL_ROASTER_SUFFIX, build_sidecar
from daena_pipelines.device.virtual_r1 import Faults, VirtualR1Config, pick_up
from daena_pipelines.device.watcher import Watcher

TIME_SCALE = 20.0  # the roaster's clock runs 20x: a rescue of ~10 device seconds takes half a second


def _left_roasting(tmp_path, model: str, faults: Faults = Faults()) -> tuple[str, str, object]:
    """A virtual roaster roasting at full heater, as a killed sidecar left it: (memory file, serial, model limits)."""
    driver_model, plug_in = MODELS[model]
    device, _ = plug_in(VirtualR1Config(faults=faults), ScaledClock(TIME_SCALE))
    for _ in range(3):  # off -> preheating -> charge -> roasting (beans in), at the panel
        device.press_prs()
    device.heater = device.HEATER_RANGE[1]
    memory = str(tmp_path / "roaster.pickle")
    device.remember_in(memory)
    serial = usb_serial(device.config) if model == "r2" else str(device.config.serial)
    return memory, serial, driver_model


def _plan(model: str, serial: str, memory: str, timeout_s: float = 30.0) -> RescuePlan:
    return RescuePlan(model, serial, SafetyLimits(), poll_interval_s=0.5, reconnect_interval_s=1.0, timeout_s=timeout_s,
                      virtual_memory=memory)


def _set_and_die(flag) -> None:
    """A sidecar killed inside its mark that it commands the roaster: marked, and any lock the flag takes for that
    still held."""
    lock = getattr(flag, "_cond", None)
    if lock is None:
        flag.set()
    else:  # a multiprocessing Event: Event.set's own steps, killed before it leaves its `with self._cond`
        lock.acquire()
        flag._flag.acquire(False)
        flag._flag.release()
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.parametrize("survivor", ["warehouse worker", "watcher"])
def test_a_sidecar_killed_while_it_marked_the_roaster_commanded_is_still_rescued(tmp_path, survivor):
    # the survivor reads the flag first: with a multiprocessing Event (a lock to set, a lock to read) a sidecar
    # killed inside set() left the lock taken, the read waited for ever and the roaster kept roasting
    memory, serial, _ = _left_roasting(tmp_path, "r1")
    plan = _plan("r1", serial, memory)
    sidecar_side = (CommandBridge(str(tmp_path / "w.duckdb"), "m", "rec", 1.0) if survivor == "warehouse worker"
                    else Watcher(plan, tmp_path / "rec.sidecar.jsonl", 0.0, 1.0))
    sidecar = multiprocessing.get_context("spawn").Process(target=_set_and_die, args=(sidecar_side._commanded,))
    sidecar.start()
    sidecar.join(30)
    assert sidecar.exitcode == -signal.SIGKILL

    outcome = []
    rescue = threading.Thread(target=lambda: outcome.append(after_death(plan, sidecar_side._commanded, WORKER)), daemon=True)
    rescue.start()
    rescue.join(30)
    assert not rescue.is_alive(), "the survivor waited for ever on the dead sidecar's lock"
    after = pick_up(memory)
    assert after.heater == 0 and after.state == after.COOLING, (outcome, after.heater, after.state)


@pytest.mark.parametrize("model", ["r1", "r2"])
def test_a_roaster_left_roasting_is_driven_to_heater_0_and_cooling(tmp_path, model):
    memory, serial, _ = _left_roasting(tmp_path, model)
    before = pick_up(memory)
    assert before.state == before.ROASTING and before.heater == before.HEATER_RANGE[1]

    outcome = make_safe(_plan(model, serial, memory))

    after = pick_up(memory)  # what the roaster shows now
    assert after.heater == 0 and after.state == after.COOLING, (after.heater, after.state)
    assert outcome.startswith("the warehouse worker made the roaster safe: heater 0 and cooling confirmed by status")


def test_a_roaster_already_safe_gets_no_command(tmp_path):
    memory, serial, _ = _left_roasting(tmp_path, "r1")
    device = pick_up(memory)
    device.press_prs()  # roasting -> cooling at the panel: heater 0, fan up
    device.remember(force=True)

    outcome = make_safe(_plan("r1", serial, memory))

    after = pick_up(memory)
    assert "made the roaster safe" in outcome
    assert after.state == after.COOLING and after.heater == 0  # no PRS pressed: it would have ended the cooling


def test_an_unplugged_roaster_is_reported_not_made_safe(tmp_path):
    memory, serial, _ = _left_roasting(tmp_path, "r1", Faults(disconnect_at_s=0.0))  # the cable went with the host
    outcome = make_safe(_plan("r1", serial, memory))
    assert "could not reopen the roaster" in outcome and "NOT made safe" in outcome and "check it at its panel" in outcome
    after = pick_up(memory)
    assert after.heater == after.HEATER_RANGE[1]  # nothing could reach it: still heating, and said so


@pytest.mark.parametrize("model", ["r1", "r2"])
@pytest.mark.parametrize("faults", [
    Faults(disconnect_at_s=0.0, reconnect_after_s=5.0),  # unplugged at the kill, plugged back in 5 s later
    Faults(unplug_on="command_write", reconnect_after_s=3.0),  # unplugged by the rescue's first command, back 3 s later
], ids=["unplugged_at_the_kill", "unplugged_mid_rescue"])
def test_a_roaster_plugged_back_in_before_the_deadline_is_made_safe(tmp_path, model, faults):
    """As the sidecar's exit reconnects within exit_timeout_s, so does the rescue (before: it gave up at once,
    "could not reopen" / "the roaster is gone", and left the roaster roasting at full heater)."""
    memory, serial, _ = _left_roasting(tmp_path, model, faults)
    outcome = make_safe(_plan(model, serial, memory))
    after = pick_up(memory)
    assert after.heater == 0 and after.state == after.COOLING, (after.heater, after.state, outcome)
    assert outcome.startswith("the warehouse worker made the roaster safe: heater 0 and cooling confirmed by status")


def test_a_roaster_unplugged_mid_rescue_and_not_back_is_reported_gone(tmp_path):
    memory, serial, _ = _left_roasting(tmp_path, "r1", Faults(unplug_on="command_write"))
    outcome = make_safe(_plan("r1", serial, memory))
    assert outcome.startswith("the roaster is gone (") and "could NOT make it safe, check it at its panel" in outcome
    assert pick_up(memory).heater > 0  # one step down at most: the write that found it gone


def test_another_roaster_on_the_bus_is_never_touched(tmp_path):
    """Only the serial the sidecar had open is opened: a different one is refused, not driven."""
    memory, _, _ = _left_roasting(tmp_path, "r1")
    outcome = make_safe(_plan("r1", "9999", memory))
    assert "could not reopen the roaster" in outcome and "NOT made safe" in outcome
    assert pick_up(memory).heater == 9


def test_the_rescue_ends_at_its_deadline_saying_what_it_saw(tmp_path):
    """Not confirmed safe in time (here: a deadline shorter than the confirmation): it says so, with the last status."""
    memory, serial, _ = _left_roasting(tmp_path, "r1")
    outcome = make_safe(_plan("r1", serial, memory, timeout_s=0.6))
    assert outcome.startswith("the warehouse worker could NOT confirm the roaster safe within 0.6 s (heater ")
    assert outcome.endswith("check it at its panel")


def test_a_rescue_that_breaks_says_so_and_returns(tmp_path, monkeypatch):
    """An error the rescue did not foresee (here: the driver's poll raising a bug) ends it with a line saying the
    roaster was NOT made safe, instead of killing the worker before it closes the dead session's rows."""
    memory, serial, _ = _left_roasting(tmp_path, "r1")
    monkeypatch.setattr(BulletR1, "poll", lambda self: 1 / 0)
    outcome = make_safe(_plan("r1", serial, memory))
    assert outcome == ("the warehouse worker failed while making the roaster safe (ZeroDivisionError: division by zero): "
                       "NOT made safe, check it at its panel")


def _memory_files(cfg) -> list:
    return list(Path(cfg.recordings_dir).glob(f"*{VIRTUAL_ROASTER_SUFFIX}"))


def test_the_roasters_memory_goes_with_a_session_whose_footer_failed(sim_config, warehouse):
    """The exit ran (no rescue to come) but the recording could not take its footer (disk full): the memory of a
    simulated roaster on a running clock is removed all the same (before: left beside the recording)."""
    cfg = sim_config(time_scale=50.0, start_at=None, max_duration_s=5.0, warehouse=warehouse)
    sidecar, _ = build_sidecar(cfg)
    sidecar.start()
    assert len(_memory_files(cfg)) == 1  # kept while the session runs

    def disk_full(footer):
        raise OSError(errno.ENOSPC, "No space left on device")

    sidecar.recorder.close = disk_full
    with pytest.raises(OSError, match="No space left"):
        sidecar.run_started()
    assert _memory_files(cfg) == []
    assert list(Path(cfg.recordings_dir).glob("*.sidecar.jsonl"))  # the recording stays, for what it holds


@pytest.mark.parametrize("survivor", ["warehouse worker", "watcher"])
def test_the_roasters_memory_goes_with_a_failed_start(sim_config, warehouse, monkeypatch, survivor):
    """The start fails after the memory was written: the OS refuses the process that would survive a kill (the
    warehouse worker, or a recording-only sidecar's watcher). The start says why, and the memory goes (before, a
    watcher that never started was 'ended': AssertionError 'can only join a started process', the memory left)."""
    cfg = sim_config(time_scale=50.0, start_at=None, warehouse=warehouse if survivor == "warehouse worker" else None)
    sidecar, _ = build_sidecar(cfg)

    def no_process(process_obj):
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(multiprocessing.context.SpawnProcess, "_Popen", staticmethod(no_process))
    with pytest.raises(OSError, match="Resource temporarily unavailable"):
        sidecar.start()
    assert _memory_files(cfg) == []
    assert sidecar.watcher is None


def test_no_other_sidecar_can_claim_the_machine_during_the_rescue(tmp_path, warehouse):
    """The worker renews the lease each cycle, which stops during a rescue (up to exit_timeout_s, longer than the
    shortest lease): it holds the lease for the rescue first, so a sidecar started meanwhile is refused (before: it
    took the lapsed lease, read the machine's approvals, and could take the roaster between two reopenings)."""
    memory, serial, _ = _left_roasting(tmp_path, "r1", Faults(disconnect_at_s=0.0))  # a rescue that runs to its deadline
    claim_machine(warehouse, "r1", "killed", "r1", "simulator", lease_s=0.2)
    io = WarehouseIO(warehouse, "r1", "killed", keep_connection=False, lease_s=0.2)
    commanded = threading.Event()
    commanded.set()
    worker = threading.Thread(target=_after_sidecar_died,
                              args=(io, queue.Queue(), _plan("r1", serial, memory, timeout_s=40.0), commanded))
    worker.start()  # 40 device s at 20x: 2 s of rescue
    time.sleep(1.0)  # the lease given at the start has lapsed
    try:
        with pytest.raises(MachineBusy, match=f"session killed, host .*, pid {os.getpid()};"):
            claim_machine(warehouse, "r1", "second", "r1", "simulator", lease_s=10.0)
    finally:
        worker.join()
    assert claim_machine(warehouse, "r1", "second", "r1", "simulator", lease_s=10.0) is None  # released at its end


def test_a_locked_warehouse_does_not_hold_up_the_rescue(warehouse):
    """Holding the lease comes before the rescue: while another process holds the warehouse it is tried once
    and given up (the lease may lapse; the roaster comes first). Before, it waited 5 s for the lock."""
    locker = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('locked', flush=True); time.sleep(30)", warehouse], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        began = time.monotonic()
        WarehouseIO(warehouse, "r1", "killed", keep_connection=False, lease_s=10.0).hold_lease_for(12.0)
        assert time.monotonic() - began < 2.0
    finally:
        locker.kill()
        locker.wait()


def test_a_worker_without_a_lease_still_rescues_and_closes(tmp_path, warehouse):
    """A warehouse worker holding no machine lease (lease_s None) has none to hold for the rescue: it rescues the
    roaster and closes the rows all the same (before: the lease's length plus the rescue's was added to None,
    and the TypeError ended the worker with the roaster heating and the rows open)."""
    memory, serial, _ = _left_roasting(tmp_path, "r1")
    io = WarehouseIO(warehouse, "r1", "killed", keep_connection=False)
    commanded = threading.Event()
    commanded.set()
    _after_sidecar_died(io, queue.Queue(), _plan("r1", serial, memory), commanded)
    after = pick_up(memory)
    assert after.heater == 0 and after.state == after.COOLING
