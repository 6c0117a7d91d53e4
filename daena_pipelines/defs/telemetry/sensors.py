"""The landing-folder sensor: notices new or changed roast files and ingests only those."""

import hashlib
import json

import dagster as dg

from daena_pipelines import config
from daena_pipelines.defs.telemetry import jobs
from daena_pipelines.telemetry import ingest


def fingerprints() -> dict[str, str]:
    """path -> "size:mtime_ns" for every roast file in the landing folder (stat only, no reads)."""
    roasts, _others = ingest.discover(config.landing_dir())
    result = {}
    for path in roasts:
        stat = path.stat()
        result[str(path)] = f"{stat.st_size}:{stat.st_mtime_ns}"
    return result


def changed_files(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    return sorted(path for path, mark in current.items() if previous.get(path) != mark)


@dg.sensor(
    job=jobs.telemetry_ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs the telemetry ingest for roast files that are new or changed in DAENA_LANDING_DIR.",
)
def landing_folder_sensor(context: dg.SensorEvaluationContext):
    previous = json.loads(context.cursor) if context.cursor else {}
    current = fingerprints()
    changed = changed_files(previous, current)
    context.update_cursor(json.dumps(current))
    if not changed:
        return dg.SkipReason(f"no new or changed roast files among {len(current)} in {config.landing_dir()}")
    run_key = hashlib.sha256(json.dumps([(p, current[p]) for p in changed]).encode()).hexdigest()[:16]
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {"telemetry_ingest": {"config": {"paths": changed}}}},
        tags={"daena/changed_files": str(len(changed))},
    )
