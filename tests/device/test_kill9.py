"""kill -9 of the real sidecar child mid-command (``sidecar_job``'s asset through Pipes, as in
test_signals). Nothing in the child runs: no exit procedure, no footer. What must still hold: the
roaster it commanded is made safe by its warehouse worker (another process, which survives it), the
recording up to the kill is on disk and readable, nothing the child started keeps running, and what
the dead child left open in the warehouse (its running command, its session) is closed.
A child that only records (no warehouse, so no worker) has a watcher process for the same rescue.

The roaster's end state is the virtual roaster's own: the simulated child keeps it in a file beside
the recording (as a real Bullet keeps its state without its host), which the worker picks up and
drives through the driver and pyusb, and which holds what the roaster shows after."""
import multiprocessing
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from daena_pipelines.device.command_store import DIED, WarehouseIO, _after_sidecar_died
from daena_pipelines.device.roaster import SAFE_STATES, State
from daena_pipelines.device.sidecar import VIRTUAL_ROASTER_SUFFIX, SidecarConfig, build_sidecar
from daena_pipelines.device.virtual_r1 import OperatorPlan, VirtualR1Config, pick_up
from daena_pipelines.telemetry.sidecar import parse_sidecar

from .conftest import approve, locked_retry
from .test_signals import Child, heating_by_command, last_sample


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def _alive(pid: int) -> bool:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z"


def _rows(warehouse: str, sql: str) -> list[tuple]:
    with locked_retry(warehouse) as con:  # the child's warehouse process holds the file for a moment
        return con.execute(sql).fetchall()


def _killed_mid_command(child) -> tuple[str, list[int]]:
    """Preheat by command, approve a fan ramp, SIGKILL the child while the ramp runs; wait for its worker to end.
    Returns the recording id and the worker's pid(s)."""
    heating_by_command(child)  # the preheat came through the warehouse worker: it runs
    workers = _children(child.process.pid)
    assert workers, "the sidecar runs its warehouse worker as a child process"
    session = child.session_id()
    approve(child.warehouse, "fan-12", "SET_FAN", 12, serial="4242", session=session)
    # mid-command by the recording (the child writes it without a lock): its first fan step is in, nine
    # are to come. Watching the warehouse's EXECUTING row instead lost the race under load: the test's own
    # reads held the file, the row landed late, and the ramp had COMPLETED when the kill came.
    child.wait_for(lambda lines: any(l["type"] == "sample" and 2 < l.get("f", 0) < 12 for l in lines))
    _kill(child, workers)
    return session, workers


def _kill(child, workers: list[int]) -> None:
    """SIGKILL the child; wait for its warehouse worker to end."""
    child.process.send_signal(signal.SIGKILL)
    assert child.process.wait(timeout=10) == -signal.SIGKILL
    child.thread.join()
    assert not child.result.success  # the run fails: the child died

    # nothing the child started keeps running (its warehouse worker polled the queue forever); it looks for its
    # sidecar every 0.5 s, makes the roaster safe (12 s at most), then writes what it left open (the deadline is
    # room for a loaded machine, not a promise)
    deadline = time.monotonic() + 60
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in workers), "the killed sidecar's warehouse worker is still running"


def _roaster_after(child):
    """The virtual roaster as it is now (its memory beside the recording, its clock caught up)."""
    memory = list(child.recordings.glob(f"*{VIRTUAL_ROASTER_SUFFIX}"))
    assert len(memory) == 1, "the simulated child keeps its roaster's state beside the recording"
    roaster = pick_up(str(memory[0]))
    roaster.advance()
    return roaster


def test_kill_9_mid_command_the_worker_makes_the_roaster_safe(tmp_path, monkeypatch):
    # real time: the fan ramp 2 -> 12 takes ten steps 0.5 s apart, 5 s of wall clock for the kill to land in (at
    # time_scale 5 it was 1 s, which a loaded machine's test process could miss between reading and killing)
    child = Child("kill -9 of the child mid-command", tmp_path, monkeypatch, time_scale=1.0, operator=False)
    session, _ = _killed_mid_command(child)

    # the roaster: heater 0 in a safe state (before: left preheating at heater >= 8, nobody to make it safe)
    roaster = _roaster_after(child)
    assert roaster.heater == 0 and roaster.state in SAFE_STATES, (roaster.heater, roaster.state)
    assert roaster.state == State.COOLING  # walked preheat -> charge -> roasting -> cooling by PRS, as the exit does

    # the recording up to the kill: in the recordings folder (never landed), readable, no footer
    left = list(child.recordings.glob("*.sidecar.jsonl"))
    assert len(left) == 1 and not list(child.landing.glob("*.sidecar.jsonl"))
    lines = [orjson.loads(line) for line in left[0].read_bytes().splitlines() if line.endswith(b"}")]
    assert lines[-1]["type"] != "footer"
    assert parse_sidecar(left[0].read_bytes(), str(left[0])).settings["complete"] is False
    last = [line for line in lines if line["type"] == "sample" and line.get("ok", True)][-1]
    assert last["st"] == State.PREHEATING and last["h"] > 0  # the recording ends where the kill came: heating

    # the warehouse: the dead child's running command FAILED (not EXECUTING forever), its session ended
    execution = _rows(child.warehouse, "SELECT e.status, e.error, q.status FROM device.command_executions e "
                                       "JOIN device.command_queue q USING (proposal_id) WHERE proposal_id = 'fan-12'")
    assert execution[0][0] == "FAILED" and "killed or crashed" in execution[0][1] and execution[0][2] == "FAILED"
    assert "the warehouse worker made the roaster safe: heater 0 and cooling confirmed by status" in execution[0][1]
    ended = _rows(child.warehouse, f"SELECT ended_at, end_reason, exit_outcome FROM device.sidecar_sessions WHERE recording_id = '{session}'")
    assert ended[0][0] is not None and "ended without its exit procedure" in ended[0][1]
    assert ended[0][2] == "the warehouse worker made the roaster safe: heater 0 and cooling confirmed by status"
    assert _rows(child.warehouse, "SELECT status FROM device.command_executions WHERE proposal_id = 'preheat'") == [("COMPLETED",)]


def test_kill_9_with_exit_policy_leave_roaster_as_is_leaves_it_heating(tmp_path, monkeypatch):
    """The opt-in policy holds for the worker too: nobody touches the roaster, and the session says so."""
    child = Child("kill -9, leave_roaster_as_is", tmp_path, monkeypatch, time_scale=1.0, operator=False,
                  exit_policy="leave_roaster_as_is")
    session, _ = _killed_mid_command(child)
    assert not list(child.recordings.glob(f"*{VIRTUAL_ROASTER_SUFFIX}"))  # no rescue planned: nothing kept for one
    last = [line for line in child.lines() if line["type"] == "sample" and line.get("ok", True)][-1]
    assert last["st"] == State.PREHEATING and last["h"] > 0
    ended = _rows(child.warehouse, f"SELECT exit_outcome FROM device.sidecar_sessions WHERE recording_id = '{session}'")
    assert ended[0][0] == "the roaster keeps what it was last sent (exit_policy leave_roaster_as_is)"


def test_kill_9_of_a_sidecar_that_never_commanded_leaves_the_roaster_alone(tmp_path, monkeypatch):
    """Someone roasting at the panel with the sidecar only recording: the worker must not switch their heater off."""
    child = Child("kill -9, never commanded", tmp_path, monkeypatch, time_scale=1.0, operator=True)
    session = child.session_id()
    lines = child.wait_for(lambda lines: any(l["type"] == "sample" and l.get("st") == State.PREHEATING and l.get("h", 0) > 0
                                             for l in lines))
    _kill(child, _children(child.process.pid))
    roaster = _roaster_after(child)
    assert roaster.state in (State.PREHEATING, State.CHARGE) and roaster.heater > 0  # the operator's preheat goes on
    ended = _rows(child.warehouse, f"SELECT exit_outcome FROM device.sidecar_sessions WHERE recording_id = '{session}'")
    assert ended[0][0] == "the sidecar never commanded the roaster: left as it is"


def test_kill_9_of_an_r2_sidecar_the_worker_makes_the_r2_safe(tmp_path, monkeypatch):
    """The R2 through the real child: the worker reopens it by its USB serial string (the open resets it) and
    walks it to heater 0 and cooling as for the R1."""
    child = Child("kill -9 of the R2 child, commanded", tmp_path, monkeypatch, time_scale=1.0, operator=False, model="r2")
    session = child.session_id()
    approve(child.warehouse, "preheat", "PREHEAT", serial="R2V-004242", session=session)
    child.wait_for(lambda lines: any(l["type"] == "sample" and l.get("st") == State.PREHEATING and l.get("h", 0) >= 8
                                     for l in lines))
    _kill(child, _children(child.process.pid))
    roaster = _roaster_after(child)
    assert roaster.heater == 0 and roaster.state == roaster.COOLING, (roaster.heater, roaster.state)
    ended = _rows(child.warehouse, f"SELECT exit_outcome FROM device.sidecar_sessions WHERE recording_id = '{session}'")
    assert ended[0][0] == "the warehouse worker made the roaster safe: heater 0 and cooling confirmed by status"


def test_sessions_left_open_by_a_sidecar_that_died_with_its_worker_are_closed_by_the_next(sim_config, warehouse):
    """Power loss or the whole container killed: the worker died too, so nobody closed the rows. The next
    sidecar that claims the roaster (no other sidecar can be driving it then) closes them."""
    with locked_retry(warehouse) as con:
        for recording_id, serial in (("dead-4242", "4242"), ("live-5151", "5151")):
            con.execute("INSERT INTO device.sidecar_sessions (recording_id, machine_id, roaster_serial, model, source,"
                        " started_at) VALUES (?, 'r1', ?, 'Aillio Bullet R1', 'real', now() - INTERVAL 1 HOUR)",
                        [recording_id, serial])
            con.execute("INSERT INTO device.command_queue (proposal_id, machine_id, session_id, roaster_serial, command_type,"
                        " target_value, status, approved_at, source) VALUES (?, 'r1', ?, ?, 'SET_FAN', 5, 'EXECUTING',"
                        " now() - INTERVAL 1 HOUR, 'test')", [f"fan-{serial}", recording_id, serial])
            con.execute("INSERT INTO device.command_executions (execution_id, proposal_id, machine_id, recording_id,"
                        " command_type, status, started_at, source) VALUES (?, ?, 'r1', ?, 'SET_FAN', 'EXECUTING',"
                        " now() - INTERVAL 1 HOUR, 'real')", [f"x-{serial}", f"fan-{serial}", recording_id])
    sidecar, _ = build_sidecar(sim_config(warehouse=warehouse, roaster_serial="4242", stop_on="duration", max_duration_s=3))
    sidecar.run()
    rows = _rows(warehouse, "SELECT s.recording_id, s.end_reason || '; ' || s.exit_outcome, e.status, e.error, q.status FROM device.sidecar_sessions s"
                            " JOIN device.command_executions e USING (recording_id) JOIN device.command_queue q"
                            " USING (proposal_id) ORDER BY 1")
    dead, live = rows
    assert dead[0] == "dead-4242" and "ended without its exit procedure" in dead[1] and sidecar.recording_id in dead[1]
    assert dead[2:] == ("FAILED", dead[3], "FAILED") and "killed or crashed" in dead[3]
    assert live == ("live-5151", None, "EXECUTING", None, "EXECUTING")  # another roaster's session: not ours to judge


def test_approvals_taken_by_a_killed_sidecar_without_a_report_do_not_stay_approved(warehouse):
    """Killed after its worker handed an approval out and before any report of it reached the warehouse (it may
    have sent the first step: the report was still in its feeder thread): the queue row is closed FAILED saying so
    (before: APPROVED for ever, reading as still to run). One approved after the hand-out stays APPROVED."""
    approve(warehouse, "preheat", "PREHEAT", session="killed")
    io = WarehouseIO(warehouse, "r1", "killed", keep_connection=False)
    assert [command.proposal_id for command in io.cycle(read=True)] == ["preheat"]
    approve(warehouse, "fan-5", "SET_FAN", 5, session="killed")
    commanded = threading.Event()
    commanded.set()
    _after_sidecar_died(io, queue.Queue(), None, commanded)
    rows = dict((row[0], row[1:]) for row in _rows(
        warehouse, "SELECT proposal_id, status, closed_at IS NOT NULL, closed_reason FROM device.command_queue"))
    status, closed, reason = rows["preheat"]
    assert (status, closed) == ("FAILED", True) and "before a report of it reached the warehouse (it may have sent steps)" in reason
    assert "exit_policy leave_roaster_as_is" in reason  # what became of the roaster
    assert rows["fan-5"] == ("APPROVED", False, None)


def test_a_warehouse_held_by_another_process_is_waited_for_not_given_up(warehouse):
    """The worker of a killed sidecar writes what it left open even while another process holds the warehouse
    for a while (a Dagster run writing): before, it tried once, and the running command's row was lost."""
    io = WarehouseIO(warehouse, "r1", "killed-rec", keep_connection=False)
    io.add("session", {"recording_id": "killed-rec", "machine_id": "r1", "roaster_serial": "4242", "source": "simulator",
                       "started_at": datetime.now(UTC)})
    io.add("execution", {"execution_id": "x-fan", "proposal_id": "fan", "machine_id": "r1", "recording_id": "killed-rec",
                         "command_type": "SET_FAN", "target_value": 12.0, "status": "EXECUTING",
                         "started_at": datetime.now(UTC), "source": "simulator"})
    locker = subprocess.Popen([sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
                               "print('locked', flush=True); time.sleep(7)", warehouse], stdout=subprocess.PIPE, text=True)
    try:
        assert locker.stdout.readline().strip() == "locked"
        commanded = threading.Event()
        commanded.set()
        _after_sidecar_died(io, queue.Queue(), None, commanded)  # exit_policy leave_roaster_as_is: no rescue
    finally:
        locker.kill()
        locker.wait()
    assert _rows(warehouse, "SELECT status, error FROM device.command_executions WHERE execution_id = 'x-fan'") == [
        ("FAILED", f"sidecar {DIED}, during execution; {LEFT_AS_IS}")]
    assert _rows(warehouse, "SELECT end_reason, exit_outcome FROM device.sidecar_sessions WHERE recording_id = 'killed-rec'") == [
        (DIED, LEFT_AS_IS)]


LEFT_AS_IS = "the roaster keeps what it was last sent (exit_policy leave_roaster_as_is)"


# ----- a sidecar that only records (execute_commands: false): no warehouse worker, its watcher instead -----------
def _spawned(pid: int) -> list[int]:
    """The multiprocessing children ``pid`` spawned (its warehouse worker or watcher; not its resource tracker)."""
    return [child for child in _children(pid) if b"spawn_main" in Path(f"/proc/{child}/cmdline").read_bytes()]


def _recording_only(case: str, tmp_path, monkeypatch, **settings) -> Child:
    """A record-only child whose simulated operator preheats at the panel (time_scale 1: the abort after SIGUSR1
    walks preheat -> charge -> roasting -> cooling over seconds of wall clock, for the kill to land in)."""
    child = Child(case, tmp_path, monkeypatch, time_scale=1.0, operator=True, execute_commands=False, **settings)
    child.wait_for(lambda lines: any(l["type"] == "sample" and l.get("st") == State.PREHEATING and l.get("h", 0) > 0
                                     for l in lines))
    return child


def _aborting(child) -> list[dict]:
    """SIGUSR1 (operator abort): wait until its first step went out (the sidecar has commanded the roaster)."""
    child.send(signal.SIGUSR1)
    return child.wait_for(lambda lines: any(l["type"] == "fault" and l["kind"] == "abort_step" for l in lines))


def _watcher_said(child) -> tuple[dict, object]:
    """The recording the killed child left: its last line (the watcher's) and what the telemetry reader makes of it."""
    left = list(child.recordings.glob("*.sidecar.jsonl"))
    assert len(left) == 1 and not list(child.landing.glob("*.sidecar.jsonl"))
    session = parse_sidecar(left[0].read_bytes(), str(left[0]))
    return child.lines()[-1], session


def test_kill_9_of_a_recording_only_sidecar_during_an_operator_abort_its_watcher_makes_the_roaster_safe(tmp_path, monkeypatch, capfd):
    """No warehouse, so no worker: before, a kill -9 during the abort an operator asked for left the roaster where the
    abort had got to (preheating or roasting, heater on). The watcher finishes it: heater 0, cooling."""
    child = _recording_only("kill -9 of a recording-only child during an operator abort", tmp_path, monkeypatch)
    watchers = _spawned(child.process.pid)
    assert len(watchers) == 1, "a recording-only sidecar on a running clock runs its watcher"
    _aborting(child)
    _kill(child, watchers)
    samples = [l for l in child.lines() if l["type"] == "sample" and l.get("ok", True)]
    assert not (samples[-1]["h"] == 0 and samples[-1]["st"] in SAFE_STATES), "the kill came after the abort was done"

    roaster = _roaster_after(child)
    assert roaster.heater == 0 and roaster.state in SAFE_STATES, (roaster.heater, roaster.state)
    assert roaster.state == State.COOLING
    last, session = _watcher_said(child)
    assert last["type"] == "fault" and last["kind"] == "watcher"
    assert last["message"] == (f"sidecar {DIED}: the sidecar's watcher made the roaster safe: heater 0 and cooling "
                               "confirmed by status")
    assert session.settings["complete"] is False and session.settings["faults"][-1] == last
    assert last["message"] in capfd.readouterr().err  # the run's log (the child's stderr, which the watcher shares)


def test_kill_9_of_a_recording_only_sidecar_that_never_commanded_leaves_the_roaster_alone(tmp_path, monkeypatch):
    """The operator's preheat goes on: the watcher touches no roaster its sidecar never commanded."""
    child = _recording_only("kill -9 of a recording-only child, never commanded", tmp_path, monkeypatch)
    _kill(child, _spawned(child.process.pid))
    roaster = _roaster_after(child)
    assert roaster.state in (State.PREHEATING, State.CHARGE) and roaster.heater > 0
    last, _ = _watcher_said(child)
    assert last["kind"] == "watcher" and last["message"] == f"sidecar {DIED}: the sidecar never commanded the roaster: left as it is"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_recording_only_sidecar_ending_normally_takes_its_watcher_with_it(tmp_path, monkeypatch, signum):
    """Stopped during the operator's abort: the exit procedure finishes the abort, the watcher ends with the sidecar
    (before the child's exit, never touching the roaster) and the roaster's memory goes (Child.finish)."""
    child = _recording_only(f"{signum.name} to a recording-only child during an operator abort", tmp_path, monkeypatch)
    watchers = _spawned(child.process.pid)
    assert len(watchers) == 1
    _aborting(child)
    child.send(signum)
    code, lines = child.finish()
    assert code == 0 and lines[-1]["end_reason"] == f"terminated ({signum.name})"
    assert not any(_alive(pid) for pid in watchers), "the watcher outlived its sidecar"
    assert lines[-1]["exit"]["outcome"] == "made safe: heater 0 and cooling confirmed by status"
    assert (last_sample(lines)["h"], last_sample(lines)["st"]) == (0, State.COOLING)
    assert not [l for l in lines if l["type"] == "fault" and l["kind"] == "watcher"]


def test_a_recording_only_sidecar_leaving_the_roaster_as_is_has_no_watcher(tmp_path, monkeypatch):
    """exit_policy leave_roaster_as_is: nothing may touch the roaster after a kill, so no watcher runs (nor is the
    roaster's memory kept for one); the abort is left where it had got to."""
    child = _recording_only("kill -9 of a recording-only child, leave_roaster_as_is", tmp_path, monkeypatch,
                            exit_policy="leave_roaster_as_is")
    assert not _spawned(child.process.pid)
    _aborting(child)
    _kill(child, [])
    assert not list(child.recordings.glob(f"*{VIRTUAL_ROASTER_SUFFIX}"))
    sample = last_sample(child.lines())
    assert sample["h"] > 0 and sample["st"] not in SAFE_STATES
    assert child.lines()[-1]["type"] != "fault" or child.lines()[-1]["kind"] != "watcher"


def _finish_while_the_watchdog_drives(recordings: str, said: str) -> None:
    """A recording-only sidecar (spawned by the test) whose loop stalls mid-abort: its watchdog takes over, the
    roaster's status reads time out for 8 s (so the watchdog's abort is still under way), and ``finish`` begins
    meanwhile, as when the exit's deadline passes. Writes ``said`` (the watcher's pid) once ``finish`` waits for the
    watchdog; the test kills this process there."""
    cfg = SidecarConfig(simulate=True, time_scale=1.0, seed=5, recordings_dir=recordings, landing_dir=recordings + "-landed",
                        virtual=VirtualR1Config(operator=OperatorPlan(start_preheat_at_s=0.5)))
    sidecar, device = build_sidecar(cfg, progress=lambda message: None)
    sidecar.start()

    def step_until(condition) -> None:
        deadline = time.monotonic() + 60
        while not condition():
            assert time.monotonic() < deadline
            sidecar.step()
            sidecar.clock.sleep(sidecar.next_tick - sidecar.clock.now())

    step_until(lambda: device.state == device.PREHEATING and device.heater > 0)
    sidecar.request_abort("operator signal (SIGUSR1)")
    step_until(lambda: sidecar.commanded)  # its first step (heater down, which a preheat ignores) went out
    now = device.clock.now()
    device.config = replace(device.config, faults=replace(device.config.faults, stall_reads=(now, now + 8.0)))
    deadline = time.monotonic() + 30
    while not sidecar.driving_safe:  # the loop stalls (no step): the watchdog takes over
        assert time.monotonic() < deadline
        time.sleep(0.05)
    stop = sidecar.watchdog.stop

    def stop_and_say() -> None:
        Path(said).write_text(str(watcher_pid))
        stop()

    watcher_pid = sidecar.watcher.process.pid
    sidecar.watchdog.stop = stop_and_say
    sidecar.finish()


def test_a_sidecar_killed_while_finish_waits_for_its_watchdogs_abort_is_still_rescued(tmp_path):
    """finish ended the watcher first thing, and only then waited for the watchdog, whose abort can still be under way
    (the loop stalled during the exit and the exit's deadline passed): killed there, the roaster was left preheating,
    its abort half done. The watcher now ends after the watchdog: it makes the roaster safe."""
    recordings, said = str(tmp_path / "recordings"), tmp_path / "watcher.pid"
    host = multiprocessing.get_context("spawn").Process(target=_finish_while_the_watchdog_drives, args=(recordings, str(said)))
    host.start()
    deadline = time.monotonic() + 90
    while not said.exists() and host.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert said.exists(), f"the host ended first (exit code {host.exitcode})"
    host.kill()
    host.join(10)
    memory = next(Path(recordings).glob(f"*{VIRTUAL_ROASTER_SUFFIX}"))
    at_kill = pick_up(str(memory))
    assert at_kill.heater > 0 and at_kill.state not in SAFE_STATES, "the watchdog's abort was done before the kill"
    watcher = int(said.read_text())
    deadline = time.monotonic() + 60
    while _alive(watcher) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(watcher)

    roaster = pick_up(str(memory))
    roaster.advance()
    assert (roaster.heater, roaster.state) == (0, State.COOLING), (roaster.heater, roaster.state)


def _ignoring_stop_signals(pid: int, timeout_s: float = 30.0) -> None:
    """Wait until a spawned worker or watcher has set its signals up (it starts in ~0.3 s)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        ignored = next(l for l in Path(f"/proc/{pid}/status").read_text().splitlines() if l.startswith("SigIgn:"))
        if int(ignored.split()[1], 16) >> (signal.SIGINT - 1) & 1:
            return
        time.sleep(0.05)
    raise AssertionError(f"process {pid} never set its signals up")


def test_the_operators_abort_sent_to_the_whole_process_group_leaves_the_watcher_to_rescue(tmp_path, monkeypatch):
    """kill -USR1 -<pgid> reaches the watcher too; SIGUSR1's (and SIGUSR2's) default action ended it, so a kill -9
    during that very abort left the roaster where the abort had got to."""
    child = _recording_only("the operator's abort to the whole process group, then kill -9", tmp_path, monkeypatch, own_group=True)
    watchers = _spawned(child.process.pid)
    _ignoring_stop_signals(watchers[0])
    os.kill(watchers[0], signal.SIGUSR2)  # first crack, as a group signal delivers it there
    child.send_group(signal.SIGUSR1)
    child.wait_for(lambda lines: any(l["type"] == "fault" and l["kind"] == "abort_step" for l in lines))
    watcher_alive = _alive(watchers[0])
    _kill(child, watchers)  # (before the assert: a failing test must not leave the child running)
    assert watcher_alive, "the operator's signals ended the watcher"
    roaster = _roaster_after(child)
    assert roaster.heater == 0 and roaster.state == State.COOLING, (roaster.heater, roaster.state)


@pytest.mark.parametrize("survivor", ["watcher", "warehouse worker"])
def test_a_worker_or_watcher_that_ends_while_its_sidecar_runs_is_said(tmp_path, monkeypatch, survivor):
    """Killed on its own (the OOM killer's pick, a stray kill): from then on a kill -9 of the sidecar would go
    unrescued, which the sidecar says at once, in its recording and on stderr; the session goes on."""
    case = f"the {survivor} killed while its sidecar runs"
    child = (_recording_only(case, tmp_path, monkeypatch) if survivor == "watcher"
             else Child(case, tmp_path, monkeypatch, time_scale=1.0, operator=True))
    try:
        deadline = time.monotonic() + 30
        while not (spawned := _spawned(child.process.pid)) and time.monotonic() < deadline:
            time.sleep(0.05)  # (the worker starts once the session has)
        assert len(spawned) == 1
        child.wait_for(lambda lines: any(l["type"] == "sample" for l in lines))  # a session under way
        os.kill(spawned[0], signal.SIGKILL)
        said = child.wait_for(lambda lines: any(l["type"] == "fault" and l["kind"] == "survivor_gone" for l in lines), timeout_s=30)
    finally:
        child.send(signal.SIGINT)  # (also when the test fails: no child left running)
    code, lines = child.finish()  # the run still lands its recording (without the worker, rows only there)
    gone = [l for l in said if l["type"] == "fault" and l["kind"] == "survivor_gone"]
    assert len([l for l in lines if l["type"] == "fault" and l["kind"] == "survivor_gone"]) == 1  # said once
    who = {"watcher": "the sidecar's watcher", "warehouse worker": "the warehouse worker"}[survivor]
    assert gone[0]["message"].startswith(f"{who} has ended: should this sidecar be killed now, nothing would")
    assert lines[-1]["end_reason"] == "terminated (SIGINT)"
