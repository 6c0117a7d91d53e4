"""The landing-folder sensor: notices new or changed roast files and ingests only those."""

import hashlib
import json
import time
from pathlib import Path
from stat import S_ISDIR

import dagster as dg

from daena_pipelines.db import WarehouseBusy, connect, table_exists
from daena_pipelines.defs.telemetry import jobs
from daena_pipelines.lake import LakeNotCreated, is_ducklake
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import WarehouseResource
from daena_pipelines.telemetry import ingest

RUN_KEY_TAG = "dagster/run_key"  # the tag Dagster gives a sensor's run: its RunRequest's run_key


def fingerprints(folders: list[Path], previous: tuple[dict[str, str], dict[str, str]] = ({}, {})) -> tuple[dict[str, str], dict[str, str]]:
    """(roast files, files that are no roasts by their content): path -> "size:mtime_ns".

    Stat only, except for a file whose name allows a roast only by its content (``.json``, no
    suffix: RoasTime's own folder): that one is read (its head, and all of it only when the head
    fits) when it is new or its size or mtime changed since `previous`, this pair of the last
    tick; otherwise the last tick's verdict stands. Hidden folders are not walked."""
    before_roasts, before_others = previous
    roasts, others = {}, {}
    for folder in folders:
        for path in ingest.walk(folder):
            form = ingest.format_by_name(path)
            if form is None and not path.is_dir():  # a folder `walk` yields is one it could not list
                continue
            try:
                stat = path.stat()
            except OSError:  # gone since the folder was listed
                continue
            name, mark = str(path), f"{stat.st_size}:{stat.st_mtime_ns}"
            if S_ISDIR(stat.st_mode):  # a folder `walk` could not list: a run records it as unreadable
                roasts[name] = mark
            elif form.looks_like is not None and before_roasts.get(name) != mark and (
                    before_others.get(name) == mark or not ingest.content_matches(path, form)):
                others[name] = mark
            else:
                roasts[name] = mark
    return roasts, others


def load_cursor(cursor: str | None) -> tuple[tuple[dict[str, str], dict[str, str]], dict[str, list]]:
    """(the pair `fingerprints` returned on the last tick, the files requested and not yet seen
    ingested: path -> [mark, requested at (epoch s), run key]); a cursor written before files were
    told apart by content holds the roast files alone."""
    value = json.loads(cursor) if cursor else {}
    if isinstance(value.get("roasts"), dict):
        return (value["roasts"], value.get("not_roasts", {})), value.get("requested", {})
    return (value, {}), {}


# How long a requested file may wait (queued behind other runs, or being ingested) before a tick
# that still finds it missing from the warehouse requests it again, if its run has ended.
RETRY_AFTER_S = 15 * 60


def unfinished_run_keys(instance: dg.DagsterInstance, run_keys: set[str]) -> set[str]:
    """The run keys among `run_keys` whose ingest run is still queued or running."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=jobs.telemetry_ingest_job.name, tags={RUN_KEY_TAG: sorted(run_keys)}))
    return {run.tags[RUN_KEY_TAG] for run in runs if not run.is_finished}


def not_yet_ingested(paths: list[str], warehouse: str) -> list[str]:
    """The files whose content is not the one last ingested from that path (as the ingest decides), so
    a first tick after `daena materialize` requests nothing. Raises WarehouseBusy while a run writes.
    With no paths it opens nothing: an idle tick (most of them) neither waits for a writing run's lock
    nor holds a read lock that makes the next writer wait."""
    if not paths or (not is_ducklake(warehouse) and not Path(warehouse).exists()):
        return paths
    try:
        with connect(warehouse, read_only=True) as con:
            if not table_exists(con, "telemetry.source_files"):
                return paths
            seen = set(con.execute(ingest.LATEST_CONTENT).fetchall())
    except LakeNotCreated:  # a new deployment: its first run creates the lake
        return paths
    return [p for p in paths if not _seen(p, seen)]


def _seen(path: str, seen: set[tuple[str, str]]) -> bool:
    """Whether the ingest recorded this content at this path: by its SHA-256, or by the size and mtime
    it records for a file it did not read (too large, unreadable). A file that cannot be read here
    counts as not seen: its run records why. Hashed in blocks, and not at all beyond the ingest's
    size limit: the tick held a new file of any size in memory whole."""
    name = ingest.storable(path)
    if (name, ingest.stat_marker(path)) in seen:
        return True
    try:
        file, size = ingest.open_regular(path)  # a named pipe would block the tick
        with file:
            return size <= ingest.MAX_FILE_BYTES and (name, hashlib.file_digest(file, "sha256").hexdigest()) in seen
    except OSError:
        return False


def changed_files(previous: dict[str, str], current: dict[str, str]) -> list[str]:
    return sorted(path for path, mark in current.items() if previous.get(path) != mark)


@dg.sensor(
    job=jobs.telemetry_ingest_job,
    minimum_interval_seconds=30,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Runs the telemetry ingest for roast files that are new or changed in DAENA_LANDING_DIR.",
)
def landing_folder_sensor(context: dg.SensorEvaluationContext, duckdb: WarehouseResource, daena_settings: DaenaSettings):
    previous, requested = load_cursor(context.cursor)
    folders = daena_settings.get().landing_dirs
    current, not_roasts = fingerprints(folders, previous)
    now = time.time()
    new = changed_files(previous[0], current)
    # files requested before, unchanged since, whose run had time to ingest them and has ended: if the
    # warehouse still lacks them that run failed or was lost (the cursor moved on), so they are requested
    # again; a run still queued or running (its step waiting for the duckdb pool's slot) is not doubled
    overdue = [p for p, (mark, at, *_) in requested.items() if current.get(p) == mark and p not in new and now - at >= RETRY_AFTER_S]
    keys = {key for p in overdue for key in requested[p][2:]}
    running = unfinished_run_keys(context.instance, keys) if keys else set()
    due = sorted(p for p in overdue if not running.intersection(requested[p][2:]))
    try:
        changed = not_yet_ingested(new + due, duckdb.target())
    except WarehouseBusy:
        return dg.SkipReason("the warehouse is being written; looking again on the next tick")
    waiting = {p: v for p, v in requested.items() if current.get(p) == v[0] and p not in new and p not in due}
    retried = [p for p in changed if p in due]
    # a retry of the same files must not reuse the run key of the run that did not ingest them
    run_key = hashlib.sha256(json.dumps([(p, current[p]) for p in changed] + ([now] if retried else [])).encode()).hexdigest()[:16]
    context.update_cursor(json.dumps({"roasts": current, "not_roasts": not_roasts,
                                      "requested": waiting | {p: [current[p], now, run_key] for p in changed}}))
    if not changed:
        missing = ingest.missing_landing(folders[0])
        return dg.SkipReason(f"no new or changed roast files among {len(current)} in {', '.join(map(str, folders))}"
                             + (f"; {missing}" if missing else ""))
    if retried:
        context.log.info(f"requesting again {len(retried)} files an earlier run did not ingest, e.g. {retried[0]}")
    return dg.RunRequest(
        run_key=run_key,
        run_config={"ops": {"telemetry_ingest": {"config": {"paths": changed}}}},
        tags={"daena/changed_files": str(len(changed))},
    )
