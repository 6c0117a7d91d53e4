"""The deployment's Dagster instance (deploy/dagster.yaml) on a real PostgreSQL server, with the
daemon: a run killed with kill -9 while it holds the "duckdb" pool's only slot is marked failed,
its slot is freed, and the next run that needs the pool runs."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import yaml

from tests.scale.pg import PostgresServer

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def _wait(what: str, predicate, timeout_s: float, process: subprocess.Popen):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        assert process.poll() is None, f"{process.args[0]} exited while waiting for {what}"
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _instance_home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    settings = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text())
    assert settings["run_monitoring"]["enabled"] and settings["run_monitoring"]["free_slots_after_run_end_seconds"]
    # the deployment's file as it is, with the daemon's polling and dequeuing shortened so the test takes seconds,
    # and one slot in the pool, so that a run holding it blocks the next
    settings["run_monitoring"] |= {"poll_interval_seconds": 1, "free_slots_after_run_end_seconds": 2}
    settings["run_coordinator"]["config"] = {"dequeue_interval_seconds": 1}  # the queue's default: every 5 s
    settings["concurrency"]["pools"]["default_limit"] = 1
    settings["run_retries"]["enabled"] = False  # the killed run stays failed: the test checks the slot
    (home / "dagster.yaml").write_text(yaml.safe_dump(settings))
    return home


def _code_server(tmp_path: Path, env: dict) -> subprocess.Popen:
    """The code location's gRPC server, started here (as in deploy/compose.yaml) so that the daemon
    and the CLI connect to it instead of each starting one of their own."""
    port = PostgresServer.free_port()
    (tmp_path / "workspace.yaml").write_text(
        f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n      port: {port}\n      location_name: killable\n"
    )
    server = subprocess.Popen([str(BIN / "dagster"), "api", "grpc", "-m", "tests.scale.killable_location", "-h", "127.0.0.1", "-p", str(port)],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def listening():
        with socket.socket() as probe:
            return probe.connect_ex(("127.0.0.1", port)) == 0

    _wait("the code server", listening, 120, server)
    return server


def _launch(job: str, tmp_path: Path, env: dict) -> None:
    subprocess.run([str(BIN / "dagster"), "job", "launch", "-w", str(tmp_path / "workspace.yaml"), "-j", job],
                   cwd=tmp_path, env=env, check=True, capture_output=True)


def test_a_killed_run_frees_its_pool_slot_and_the_next_run_proceeds(postgres, tmp_path):
    postgres.create_database("dagster")
    home = _instance_home(tmp_path)
    env = os.environ | {
        "DAGSTER_HOME": str(home), "DAGSTER_PG_HOST": postgres.host, "DAGSTER_PG_PORT": str(postgres.port),
        "DAGSTER_PG_DB": "dagster", "DAGSTER_PG_USER": postgres.user, "DAGSTER_PG_PASSWORD": "unused-trust-auth",
        "DAENA_TEST_PID_FILE": str(tmp_path / "pids"),
        # the dagster CLIs run outside the clone, whose .env (written by `daena materialize`) would
        # replace DAGSTER_HOME with the project's instance; the killable location is imported from it
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    os.environ.update({k: env[k] for k in env if k.startswith("DAGSTER_PG_")})  # the test's own instance reads them
    instance = dg.DagsterInstance.from_config(str(home))
    assert type(instance.run_storage).__name__ == "PostgresRunStorage"
    server = _code_server(tmp_path, env)
    daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", str(tmp_path / "workspace.yaml")],
                              cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        _launch("hold_job", tmp_path, env)
        pids = _wait("the step to start", lambda: (tmp_path / "pids").exists() and (tmp_path / "pids").read_text(), 180, daemon)
        step_pid, worker_pid = map(int, pids.split())
        assert step_pid != worker_pid  # the multiprocess executor: the step in its own process
        held = instance.event_log_storage.get_concurrency_info("duckdb")
        assert held.slot_count == 1 and len(held.claimed_slots) == 1
        killed_run = held.claimed_slots[0].run_id

        for pid in (step_pid, worker_pid):
            os.kill(pid, signal.SIGKILL)
        _wait("the killed run to be marked failed",
              lambda: instance.get_run_by_id(killed_run).status == dg.DagsterRunStatus.FAILURE, 60, daemon)
        _wait("its pool slot to be freed",
              lambda: not instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots, 60, daemon)

        _launch("next_job", tmp_path, env)
        next_run = _wait("the next run to finish", lambda: next(
            (r for r in instance.get_runs(dg.RunsFilter(job_name="next_job")) if r.is_finished), None), 180, daemon)
        assert next_run.status == dg.DagsterRunStatus.SUCCESS
    finally:
        for process in (daemon, server):  # each in a process group of its own, with its children
            os.killpg(process.pid, signal.SIGTERM)
        for process in (daemon, server):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:  # seen once under xdist: the code server still draining gRPC calls after the test's end
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=30)
        instance.dispose()
