"""``regressions_sensor``: turns golden-check evaluations in the instance event log into findings.

It reads ASSET_CHECK_EVALUATION events after its cursor (the last storage id it handled), keeps
the golden checks (those carrying the failures metadata) and updates ``regressions.findings``,
so a regression stays visible in the warehouse after the run that found it.
"""

import datetime as dt

import dagster as dg

from daena_pipelines.regressions.checks import to_check_evaluation
from daena_pipelines.regressions.findings import record_evaluations
from daena_pipelines.warehouse import WarehouseResource

BATCH = 200


@dg.sensor(
    name="regressions_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records failing and recovered golden values (benchmark and eval checks) in regressions.findings.",
)
def regressions_sensor(context: dg.SensorEvaluationContext, duckdb: WarehouseResource):
    cursor = int(context.cursor) if context.cursor else None
    records = context.instance.get_event_records(
        dg.EventRecordsFilter(event_type=dg.DagsterEventType.ASSET_CHECK_EVALUATION, after_cursor=cursor),
        limit=BATCH,
        ascending=True,
    )
    if not records:
        return dg.SkipReason("no new check evaluations")
    evaluations = []
    for record in records:
        entry = record.event_log_entry
        at = dt.datetime.fromtimestamp(entry.timestamp, dt.timezone.utc)
        evaluation = to_check_evaluation(entry.dagster_event.event_specific_data, at, entry.run_id)
        if evaluation is not None:
            evaluations.append(evaluation)
    context.update_cursor(str(records[-1].storage_id))
    if not evaluations:
        return dg.SkipReason(f"{len(records)} check evaluations, none from golden checks")
    with duckdb.get_connection() as con:
        counts = record_evaluations(con, evaluations)
    return dg.SkipReason(f"{len(evaluations)} golden check evaluations recorded: {counts}")
