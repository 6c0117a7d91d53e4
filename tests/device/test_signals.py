"""Signals to the real sidecar child process, launched by ``sidecar_job``'s own asset: the test
materialises ``device/sidecar_recording`` through Dagster (PipesSubprocessClient starts
``python -m daena_pipelines.device.sidecar_process``), catches the child's Popen and signals it.
The final heater/state asserted are those the virtual R1 reported in the recording's last sample."""
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import dagster as dg
import dagster._core.pipes.subprocess as pipes_subprocess
import duckdb
import orjson
import pytest

from daena_pipelines.defs.device.assets import SidecarRunConfig, device_command_tables, sidecar_recording
from daena_pipelines.device.roaster import State
from daena_pipelines.device.sidecar import VIRTUAL_ROASTER_SUFFIX
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import WarehouseResource

from .conftest import approve, table_row

DAGSTER_TERMINATION_WINDOW_S = 20.0  # PipesSubprocessClient waits this long after forwarding SIGINT


class Child:
    """One ``sidecar_recording`` materialisation running in a thread; ``process`` is its sidecar child."""

    def __init__(self, case: str, tmp_path: Path, monkeypatch, own_group: bool = False, **settings):
        """``own_group``: the child leads its own process group (as the foreground job of a terminal), which
        ``send_group`` signals whole: the sidecar and its warehouse worker at once."""
        self.case = case
        monkeypatch.setenv("DAENA_DATA_DIR", str(tmp_path / "data"))
        self.landing = tmp_path / "landing"
        self.recordings = tmp_path / "data" / "device" / "recordings"
        self.warehouse = str(tmp_path / "w.duckdb")
        started = []

        class CapturingPopen(subprocess.Popen):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs, **({"process_group": 0} if own_group else {}))
                started.append(self)

        monkeypatch.setattr(pipes_subprocess, "Popen", CapturingPopen)
        run_config = SidecarRunConfig(simulate=True, seed=5, landing_dir=str(self.landing), queue_poll_interval_s=0.5,
                                      **{"execute_commands": True, **settings})
        self.result = None

        def materialize():
            self.result = dg.materialize(
                [device_command_tables, sidecar_recording],
                resources={"duckdb": WarehouseResource(database=self.warehouse), "daena_settings": DaenaSettings(),
                           "device_pipes_client": dg.PipesSubprocessClient()},
                run_config=dg.RunConfig({"device__sidecar_recording": run_config}), raise_on_error=False)

        self.thread = threading.Thread(target=materialize)
        self.thread.start()
        deadline = time.monotonic() + 60
        while not started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "the sidecar child never started"
            time.sleep(0.02)
        self.process = started[0]

    def lines(self) -> list[dict]:
        files = list(self.recordings.glob("*.sidecar.jsonl")) + list(self.landing.glob("*.sidecar.jsonl"))
        if not files:
            return []
        return [orjson.loads(line) for line in files[0].read_bytes().splitlines() if line.endswith(b"}")]

    def wait_for(self, condition, timeout_s: float = 60.0) -> list[dict]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            lines = self.lines()
            if condition(lines):
                return lines
            assert self.process.poll() is None, "the sidecar exited early"
            time.sleep(0.05)
        raise AssertionError(f"timed out; last lines {self.lines()[-3:]}")

    def session_id(self) -> str:
        return self.wait_for(lambda lines: lines)[0]["recording_id"]

    def send(self, signum) -> float:
        sent = time.monotonic()
        self.process.send_signal(signum)
        return sent

    def send_group(self, signum) -> None:
        os.killpg(self.process.pid, signum)

    def finish(self, timeout_s: float = DAGSTER_TERMINATION_WINDOW_S, run_succeeds: bool = True) -> tuple[int, list[dict]]:
        try:
            code = self.process.wait(timeout=timeout_s)
        finally:
            if self.process.poll() is None:
                self.process.kill()
            self.thread.join()
        assert self.result.success is run_succeeds, "sidecar_recording did not materialise" if run_succeeds else "the run succeeded"
        # the virtual roaster's memory, kept for a rescue by the worker (test_kill9), goes with a session that ended
        assert not list(self.recordings.glob(f"*{VIRTUAL_ROASTER_SUFFIX}")), "the roaster's memory outlived its session"
        lines = self.lines()
        footer = lines[-1]
        table_row(self.case, last_sample(lines), footer["lost_polls"], footer, footer["commands"])
        return code, lines


def last_sample(lines) -> dict:
    return [line for line in lines if line["type"] == "sample" and line.get("ok", True)][-1]


def statuses(warehouse) -> dict:
    with duckdb.connect(warehouse) as con:
        return dict(con.execute("SELECT proposal_id, status FROM device.command_executions").fetchall())


def heating_by_command(child) -> list[dict]:
    """Approve PREHEAT for the child's session and wait until the roaster heats at a high level."""
    approve(child.warehouse, "preheat", "PREHEAT", serial="4242", session=child.session_id())
    return child.wait_for(lambda lines: any(l["type"] == "sample" and l.get("st") == State.PREHEATING and l.get("h", 0) >= 8
                                            for l in lines))


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_mid_heat_makes_the_commanded_roaster_safe(tmp_path, monkeypatch, signum):
    child = Child(f"{signum.name} to the child mid-heat (commanded)", tmp_path, monkeypatch, time_scale=5.0, operator=False)
    heating_by_command(child)
    sent = child.send(signum)
    code, lines = child.finish()
    took = time.monotonic() - sent
    footer, sample = lines[-1], last_sample(lines)
    assert code == 0 and footer["type"] == "footer" and footer["end_reason"] == f"terminated ({signum.name})"
    assert (sample["h"], sample["st"]) == (0, State.COOLING)
    assert footer["exit"]["outcome"] == "made safe: heater 0 and cooling confirmed by status"
    assert took < DAGSTER_TERMINATION_WINDOW_S
    assert statuses(child.warehouse) == {"preheat": "COMPLETED"}


def test_sigint_right_after_an_abort_request_lets_the_abort_finish(tmp_path, monkeypatch):
    child = Child("SIGINT once the abort requested by SIGUSR1 began", tmp_path, monkeypatch, time_scale=5.0, operator=False)
    heating_by_command(child)
    child.send(signal.SIGUSR1)
    child.wait_for(lambda lines: any(l["type"] == "fault" and l["kind"] == "abort" for l in lines))  # under way
    child.send(signal.SIGINT)
    code, lines = child.finish()
    sample = last_sample(lines)
    assert code == 0 and lines[-1]["end_reason"] == "terminated (SIGINT)"
    assert (sample["h"], sample["st"]) == (0, State.COOLING)
    assert any(l["type"] == "fault" and l["kind"] == "abort" and "SIGUSR1" in l["message"] for l in lines)


def test_stop_during_an_unplug_ends_inside_the_termination_window(tmp_path, monkeypatch):
    """Real time: the window that matters is Dagster's, in wall-clock seconds. The cable is pulled once the recording
    shows the commanded heat (virtual fault ``unplug_file``). It was pulled at a device second (6, then 8), which
    raced the child's start: the virtual roaster's clock runs from before the machine_id claim, and the approval
    goes test -> warehouse -> the worker process the child spawns. Under four busy loops (load 9-17) that took longer: the session
    began 4.4 s into the device clock, the unplug came at session second 3.6 before the preheat was read, and the
    sidecar, which had never commanded the roaster, gave up after 30 s (4 of 5 runs failed "the sidecar exited early")."""
    exit_timeout_s = 4.0
    cable = tmp_path / "pull-the-cable"
    child = Child("SIGINT during an unplug (real time)", tmp_path, monkeypatch, time_scale=1.0, exit_timeout_s=exit_timeout_s,
                  operator=False, unplug_file=str(cable))
    heating_by_command(child)
    cable.touch()
    child.wait_for(lambda lines: any(l["type"] == "fault" and l["kind"] == "disconnect" for l in lines))
    sent = child.send(signal.SIGINT)
    code, lines = child.finish(run_succeeds=False)  # the commanded roaster was not confirmed safe: the run fails
    took = time.monotonic() - sent
    footer, sample = lines[-1], last_sample(lines)
    assert code == 2 and footer["end_reason"] == "terminated (SIGINT)"
    assert footer["exit"]["outcome"] == f"NOT confirmed safe within {exit_timeout_s:g} s (roaster not reachable)"
    # and the warehouse says so too, not only the footer and the exit code
    assert session_end(child, child.session_id()) == [("terminated (SIGINT)", footer["exit"]["outcome"])]
    assert sample["st"] == State.PREHEATING and sample["h"] >= 8  # unplugged for good: the roaster keeps its last levels
    # tried to reconnect for exit_timeout_s of the session's own (real) clock, gave up at a cycle right after it
    # (a cycle is 0.1 s; the rest of the second for a loaded machine), and the process ended inside Dagster's window
    faults = {l["kind"]: l["t"] for l in lines if l["type"] == "fault"}
    # (the recording rounds fault times to 0.01 s: 1.6 and 5.6 may stand for 1.604 and 5.604, whose difference is 4.0)
    assert exit_timeout_s - 0.01 <= faults["exit_unsafe"] - faults["exit"] < exit_timeout_s + 1.0
    assert exit_timeout_s <= took < DAGSTER_TERMINATION_WINDOW_S


def test_stop_signal_leaves_a_roaster_it_never_commanded_untouched(tmp_path, monkeypatch):
    child = Child("SIGTERM, roaster never commanded", tmp_path, monkeypatch, time_scale=5.0)  # the simulated operator preheats at 2 s
    child.wait_for(lambda lines: any(l["type"] == "sample" and l.get("st") == State.PREHEATING and l.get("h", 0) >= 8
                                     for l in lines))
    child.send(signal.SIGTERM)
    code, lines = child.finish()
    sample = last_sample(lines)
    assert code == 0 and lines[-1]["end_reason"] == "terminated (SIGTERM)"
    assert sample["st"] == State.PREHEATING and sample["h"] >= 8  # the operator's roast goes on
    assert lines[-1]["exit"]["outcome"] == "untouched: the sidecar never commanded this roaster"
    assert not [l for l in lines if l["type"] == "fault" and l["kind"] == "abort_step"]


def session_end(child, session) -> list[tuple]:
    with duckdb.connect(child.warehouse) as con:
        return con.execute(f"SELECT end_reason, exit_outcome FROM device.sidecar_sessions WHERE recording_id = '{session}'").fetchall()


def test_the_terminal_closed_makes_the_commanded_roaster_safe_and_closes_its_rows(tmp_path, monkeypatch):
    """The terminal that runs ``dagster dev`` is closed: SIGHUP reaches the foreground process group, the sidecar and
    its warehouse worker at once. Before, both died of it at once (their default action, exit -1): no exit procedure,
    the commanded roaster left preheating at heater 9, the run failed, and nothing closed the session row."""
    child = Child("SIGHUP to the child's process group mid-heat (commanded)", tmp_path, monkeypatch, own_group=True,
                  time_scale=5.0, operator=False)
    heating_by_command(child)
    session = child.session_id()
    child.send_group(signal.SIGHUP)
    code, lines = child.finish()
    footer, sample = lines[-1], last_sample(lines)
    assert code == 0 and footer["type"] == "footer" and footer["end_reason"] == "terminated (SIGHUP)"
    assert (sample["h"], sample["st"]) == (0, State.COOLING)
    assert footer["exit"]["outcome"] == "made safe: heater 0 and cooling confirmed by status"
    assert statuses(child.warehouse) == {"preheat": "COMPLETED"}
    # the worker outlived the signal and wrote the exit's rows, the roaster's end state included
    assert session_end(child, session) == [("terminated (SIGHUP)", "made safe: heater 0 and cooling confirmed by status")]


def test_ctrl_z_pauses_nothing_and_ctrl_backslash_ends_through_the_exit(tmp_path, monkeypatch):
    """Ctrl-Z in the terminal running ``dagster dev`` sends SIGTSTP to the foreground process group. Before, it stopped
    the sidecar (and its watchdog, the same process) and its warehouse worker until someone typed ``fg``: the roaster it
    had commanded preheated on unwatched, and an ABORT approved meanwhile never ran (heater 9, preheating). Ctrl-\\
    then (SIGQUIT to the group) killed both at once (exit -3) with no exit procedure."""
    child = Child("SIGTSTP (Ctrl-Z) to the child's process group mid-heat, an approved ABORT, then SIGQUIT", tmp_path,
                  monkeypatch, own_group=True, time_scale=5.0, operator=False)
    heating_by_command(child)
    session = child.session_id()
    child.send_group(signal.SIGTSTP)
    try:
        approve(child.warehouse, "abort", "ABORT", serial="4242", session=session)
        child.wait_for(lambda lines: any(l["type"] == "sample" and l.get("st") == State.COOLING and l.get("h") == 0
                                         for l in lines))
    finally:
        child.send_group(signal.SIGCONT)  # before the fix: let the stopped job go on, so that it can end
    child.send_group(signal.SIGQUIT)
    code, lines = child.finish()
    assert code == 0 and lines[-1]["end_reason"] == "terminated (SIGQUIT)"
    assert (last_sample(lines)["h"], last_sample(lines)["st"]) == (0, State.COOLING)
    assert statuses(child.warehouse) == {"preheat": "COMPLETED", "abort": "COMPLETED"}
    assert session_end(child, session) == [("terminated (SIGQUIT)", lines[-1]["exit"]["outcome"])]
