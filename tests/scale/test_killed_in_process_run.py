"""The embedded default (dagster_home/dagster.yaml, SQLite, no daemon): a run executed in process
and killed with kill -9 while its step holds the "duckdb" pool's slot does not block the next
start forever — `daena materialize` releases it first (runner.release_dead_runs)."""
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg

from daena_pipelines import runner
from tests.scale.killable_location import defs

ROOT = Path(__file__).resolve().parents[2]
HOLD = """
import dagster as dg
from daena_pipelines.runner import process_tags
from tests.scale.killable_location import defs
defs.resolve_job_def("hold_job").execute_in_process(instance=dg.DagsterInstance.get(), tags=process_tags())
"""


def test_a_killed_in_process_run_is_failed_and_its_slot_freed_on_the_next_start(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(ROOT / "dagster_home" / "dagster.yaml", home)  # the project's embedded instance settings
    env = os.environ | {"DAGSTER_HOME": str(home), "DAENA_TEST_PID_FILE": str(tmp_path / "pids")}
    holder = subprocess.Popen([sys.executable, "-c", HOLD], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (tmp_path / "pids").exists():
        assert holder.poll() is None and time.monotonic() < deadline, "the run never started its step"
        time.sleep(0.2)
    instance = dg.DagsterInstance.from_config(str(home))
    held = instance.event_log_storage.get_concurrency_info("duckdb")
    assert held.slot_count == 1 and len(held.claimed_slots) == 1
    killed_run = held.claimed_slots[0].run_id
    assert runner.release_dead_runs(instance) == []  # alive: nothing to release

    holder.send_signal(signal.SIGKILL)  # in process: the step dies with the run's process
    holder.wait()
    assert instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.STARTED  # nobody noticed
    assert runner.release_dead_runs(instance) == [killed_run]
    assert instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.FAILURE
    assert not instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots
    result = defs.resolve_job_def("next_job").execute_in_process(instance=instance, tags=runner.process_tags())
    assert result.success
    instance.dispose()
