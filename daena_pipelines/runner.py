"""Materialise the whole asset graph in dependency order, without a server.

Partitioned assets (the daily evaluations) cannot share a run with unpartitioned ones, so the
graph runs in four steps: `daena_default_job` (everything not downstream of a partitioned
asset), one `eval_job` run over every day from the first partition to yesterday (when the
warehouse has roast sessions; days without roasts get empty partitions), then
`daena_downstream_job` (what depends on the evaluations, e.g. the NBMF benchmark), and last
`findings_job` (regressions.findings from the check results of those runs). Asset checks run
with their assets.
"""
from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import dagster as dg

from daena_pipelines.config import Settings
from daena_pipelines.db import connect
from daena_pipelines.lake import is_ducklake

DEFAULT_JOB = "daena_default_job"
PARTITIONED_JOB = "eval_job"
DOWNSTREAM_JOB = "daena_downstream_job"
FINDINGS_JOB = "findings_job"
PID_TAG, HOST_TAG = "daena/pid", "daena/host"
# The UI lists a job's runs by this tag (repository@code location, as `dg dev` and `dagster dev
# -w workspace.yaml` name them); in-process runs lack it unless given, and then show under no job.
REPOSITORY_TAG = ".dagster/repository"
LOCATION, REPOSITORY = "daena_pipelines", "__repository__"
REPOSITORY_LABEL = f"{REPOSITORY}@{LOCATION}"


def process_tags() -> dict[str, str]:
    """Tags naming the process that executes a run in process, so a later start can tell that it
    died, and the code location the UI shows the run under."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname(), REPOSITORY_TAG: REPOSITORY_LABEL}


def execute(job: dg.JobDefinition, instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteInProcessResult:
    """``job.execute_in_process`` recording the run as one of the code location's job runs: the
    Overview timeline shows only runs with a repository origin (the UI's useRunsForTimeline drops
    the others), and ``execute_in_process`` sets none."""
    with _runs_created_with_repository_origin(instance, job.name):
        return job.execute_in_process(instance=instance, **kwargs)


@contextmanager
def _runs_created_with_repository_origin(instance: dg.DagsterInstance, job_name: str) -> Iterator[None]:
    """The one use of Dagster internals in the project: runs the instance creates meanwhile carry
    this code location's origin for ``job_name``.

    Checked against dagster 1.13.27: no public API sets a run's origin. ``execute_in_process``,
    ``execute_job`` and ``materialize`` take none; ``DagsterInstance.create_run_for_job`` (not public,
    called by ``execute_in_process``) takes ``remote_job_origin``, and the origin classes exist only
    in ``dagster._core.remote_origin``. So the instance's run factory gets the origin for the
    duration of the run; tests/test_runner.py fails if a Dagster upgrade breaks this."""
    from dagster._core.remote_origin import RegisteredCodeLocationOrigin, RemoteRepositoryOrigin

    origin = RemoteRepositoryOrigin(RegisteredCodeLocationOrigin(LOCATION), REPOSITORY).get_job_origin(job_name)
    instance.create_run_for_job = partial(type(instance).create_run_for_job, instance, remote_job_origin=origin)
    try:
        yield
    finally:
        del instance.create_run_for_job


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Free the pool slots of runs whose process is gone, before new runs wait on them.

    An in-process run killed with kill -9 stays STARTED with its step's slot claimed, and the next
    run would wait on "blocked by limit for pool duckdb" forever: no daemon watches in-process runs
    (a deployment's daemon does, deploy/dagster.yaml). A run that this host executed in a process
    that no longer exists is marked failed; the slots of every ended run are freed."""
    released = []
    for run_id in instance.event_log_storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            pid, host = run.tags.get(PID_TAG), run.tags.get(HOST_TAG)
            if host != socket.gethostname() or pid is None or _alive(int(pid)):
                continue  # running, or not ours to judge
            instance.report_engine_event(f"the process {pid} executing this run is gone (killed?): run failed, pool slots freed", run)
            instance.report_run_failed(run)
        instance.event_log_storage.free_concurrency_slots_for_run(run_id)
        released.append(run_id)
    return released


def session_days(partitions_def: dg.PartitionsDefinition) -> list[str]:
    """Partition keys (UTC days) on which the warehouse has roast sessions."""
    path = Settings.from_env().warehouse
    if not is_ducklake(path) and not path.exists():
        return []
    with connect(path, read_only=True) as con:
        if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = 'telemetry' AND table_name = 'sessions'").fetchone()[0]:
            return []
        days = {
            d for (d,) in con.execute(
                "SELECT DISTINCT strftime(roasted_at AT TIME ZONE 'UTC', '%Y-%m-%d') FROM telemetry.sessions WHERE roasted_at IS NOT NULL"
            ).fetchall()
        }
    return [key for key in partitions_def.get_partition_keys() if key in days]


def materialize_everything(
    defs: dg.Definitions,
    instance: dg.DagsterInstance,
    run_config: dict | None = None,
    downstream_ops: dict | None = None,
    every_day: bool = False,
) -> list[dg.ExecuteInProcessResult]:
    """`run_config` applies to every run (e.g. loggers); `downstream_ops` adds op config to the last.
    `every_day`: evaluate every day so far even when none has a roast session (`daena ci`: its
    golden outcomes must then fail as missing rows, not go unchecked)."""
    common = run_config or {}
    release_dead_runs(instance)
    tags = process_tags()
    results = [execute(defs.resolve_job_def(DEFAULT_JOB), instance, run_config=common, tags=tags, raise_on_error=False)]
    partitioned = defs.resolve_job_def(PARTITIONED_JOB)
    # One run over every day so far (the assets' single-run backfill policy), so checks see every
    # day, and days without roasts show as evaluated with nothing rather than as missing work.
    days = partitioned.partitions_def.get_partition_keys() if every_day or session_days(partitioned.partitions_def) else []
    if days:
        days_range = {"dagster/asset_partition_range_start": days[0], "dagster/asset_partition_range_end": days[-1]}
        results.append(execute(partitioned, instance, run_config=common, tags=tags | days_range, raise_on_error=False))
    downstream = {**common, "ops": downstream_ops} if downstream_ops else common
    results.append(execute(defs.resolve_job_def(DOWNSTREAM_JOB), instance, run_config=downstream, tags=tags, raise_on_error=False))
    # last: regressions.findings reads the check results of the runs above, all finished now
    results.append(execute(defs.resolve_job_def(FINDINGS_JOB), instance, run_config=common, tags=tags, raise_on_error=False))
    return results


def check_evaluations(results: list[dg.ExecuteInProcessResult]) -> list[dg.AssetCheckEvaluation]:
    return [evaluation for result in results for evaluation in result.get_asset_check_evaluations()]
