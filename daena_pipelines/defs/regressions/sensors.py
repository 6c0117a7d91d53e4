"""``regressions_sensor``: requests ``findings_job`` when the event log holds check results or
runs that ``regressions.findings`` has not read yet. It keeps no state of its own: how far the
findings have read is in the warehouse (``regressions.findings_watermarks``; the sensor moves it
only past records that yield no finding), and the run key (the positions the run will read up
to) keeps a tick from requesting the same run twice."""
import hashlib
import json

import dagster as dg

from daena_pipelines.db import WarehouseBusy
from daena_pipelines.defs.regressions.jobs import findings_job
from daena_pipelines.lib.findings_feed import unread
from daena_pipelines.lib.warehouse import WarehouseResource
from daena_pipelines.regressions.findings import read_watermarks, skip_to

NOT_STARTED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING]
SENSOR_LOCK_WAIT_S = 10.0  # a tick waits this long for a writer's lock, then skips (well inside the tick timeout)


@dg.sensor(
    name="regressions_sensor",
    job=findings_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Requests findings_job (regressions/findings) when golden check results or benchmark/eval runs "
    "arrived that regressions.findings has not read yet; its read positions are in the warehouse, not in a cursor.",
)
def regressions_sensor(context: dg.SensorEvaluationContext, duckdb: WarehouseResource):
    try:
        with duckdb.get_connection(wait_s=SENSOR_LOCK_WAIT_S) as con:
            watermarks = read_watermarks(con)
        evaluations, moved = unread(context.instance, context.repository_def.asset_graph.asset_check_keys, watermarks)
        if not evaluations:
            if moved:  # only records that yield no finding: read past them once, not at every tick
                with duckdb.get_connection(wait_s=SENSOR_LOCK_WAIT_S) as con:
                    skip_to(con, moved)
            return dg.SkipReason("regressions.findings is up to date: no new golden check results or watched materialisations")
    except WarehouseBusy as busy:
        return dg.SkipReason(f"warehouse busy, the next tick looks again: {busy}")
    waiting = context.instance.get_runs(dg.RunsFilter(job_name=findings_job.name, statuses=NOT_STARTED), limit=1)
    if waiting:  # it reads everything there is when it starts, these included
        return dg.SkipReason(f"{len(evaluations)} unread evaluations; findings run {waiting[0].run_id} is queued and will read them")
    up_to = json.dumps(moved, sort_keys=True)
    return dg.RunRequest(
        run_key=hashlib.sha256(up_to.encode()).hexdigest()[:16],
        tags={"daena/findings_unread": str(len(evaluations))},
    )
