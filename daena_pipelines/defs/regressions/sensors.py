"""``regressions_sensor``: turns the instance event log into ``regressions.findings``.

Streams, each read after its own cursor:
- the execution history of every asset check in the code location, keeping golden checks
  (those carrying the failures metadata): each failing golden value is a finding, resolved
  when a later evaluation passes it;
- finished runs (by update time) that planned the benchmark or eval assets: a planned
  materialisation that did not happen is a finding (metric ``materialization``), resolved by
  the next run that did materialise it — so a crashing benchmark is as visible as a slower one.
  (Dagster 1.13 emits no ASSET_FAILED_TO_MATERIALIZE for a failed step here, hence
  planned-versus-done; only non-deprecated instance APIs are used.)
"""
import datetime as dt
import json

import dagster as dg

from daena_pipelines.lib.golden_checks import to_check_evaluation
from daena_pipelines.regressions.findings import CheckEvaluation, record_evaluations
from daena_pipelines.db import WarehouseBusy
from daena_pipelines.lib.warehouse import WarehouseResource

BATCH = 200
SENSOR_LOCK_WAIT_S = 10.0  # a tick waits this long for a writer's lock, then skips (well inside the tick timeout)
WATCHED_ASSETS = [["nbmf", "results"], ["evals", "eval_runs"]]
MATERIALIZATION_CHECK = "materialization"
FINISHED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


def _check_evaluations(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, cursor: int | None
) -> tuple[list[CheckEvaluation], int | None]:
    """Evaluations of one check newer than ``cursor`` (an execution record id), oldest first."""
    history = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=BATCH)
    evaluations = []
    for record in sorted(history, key=lambda r: r.id):
        if cursor is not None and record.id <= cursor:
            continue
        if isinstance(record.evaluation, dg.AssetCheckEvaluation):
            at = dt.datetime.fromtimestamp(record.event.timestamp, dt.timezone.utc)
            evaluation = to_check_evaluation(record.evaluation, at, record.run_id)
            if evaluation is not None:
                evaluations.append(evaluation)
        else:  # planned: wait while its run goes on; a finished run never evaluated it (skipped)
            run = instance.get_run_by_id(record.run_id)
            if run is not None and not run.is_finished:
                break
        cursor = record.id
    return evaluations, cursor


def _asset_keys(instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType) -> set[dg.AssetKey]:
    records = instance.get_records_for_run(run_id, of_type=event_type, limit=10_000).records
    return {r.event_log_entry.dagster_event.asset_key for r in records if r.event_log_entry.dagster_event}


def _materialization_outcomes(
    instance: dg.DagsterInstance, updated_after: float | None
) -> tuple[list[CheckEvaluation], float | None]:
    """For runs finished since ``updated_after`` (a run update timestamp): each watched asset
    the run planned is either materialised (passed) or not (failed)."""
    watched = {dg.AssetKey(path) for path in WATCHED_ASSETS}
    runs = instance.get_run_records(
        dg.RunsFilter(
            statuses=FINISHED,
            updated_after=dt.datetime.fromtimestamp(updated_after, dt.timezone.utc) if updated_after else None,
        ),
        limit=BATCH,
        order_by="update_timestamp",
        ascending=True,
    )
    evaluations = []
    for run in runs:
        run_id = run.dagster_run.run_id
        planned = _asset_keys(instance, run_id, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED) & watched
        done = _asset_keys(instance, run_id, dg.DagsterEventType.ASSET_MATERIALIZATION) if planned else set()
        for key in sorted(planned, key=str):
            failure = {
                "metric": MATERIALIZATION_CHECK,
                "golden": "materialized",
                "actual": "not materialized",
                "change": f"run {run.dagster_run.status.value}",
                "rule": {"kind": "exact"},
                "note": f"run {run_id}",
            }
            evaluations.append(
                CheckEvaluation(key.to_user_string(), MATERIALIZATION_CHECK, key in done, run.update_timestamp, run_id,
                                [] if key in done else [failure])
            )
        updated_after = run.update_timestamp.timestamp()
    return evaluations, updated_after


@dg.sensor(
    name="regressions_sensor",
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Records failing and recovered golden values, and failed benchmark/eval materialisations, in regressions.findings.",
)
def regressions_sensor(context: dg.SensorEvaluationContext, duckdb: WarehouseResource):
    cursors = json.loads(context.cursor) if context.cursor else {}
    evaluations = []
    for check_key in sorted(context.repository_def.asset_graph.asset_check_keys, key=str):
        name = f"check:{check_key.to_user_string()}"
        found, cursors[name] = _check_evaluations(context.instance, check_key, cursors.get(name))
        evaluations += found
    found, cursors["runs_updated_after"] = _materialization_outcomes(context.instance, cursors.get("runs_updated_after"))
    evaluations += found
    if not evaluations:
        context.update_cursor(json.dumps(cursors, sort_keys=True))
        return dg.SkipReason("no new golden check evaluations or watched materialisations")
    try:
        with duckdb.get_connection(wait_s=SENSOR_LOCK_WAIT_S) as con:
            counts = record_evaluations(con, evaluations)
    except WarehouseBusy as busy:  # the cursor stays: the next tick records these evaluations
        return dg.SkipReason(f"warehouse busy, {len(evaluations)} evaluations left for the next tick: {busy}")
    context.update_cursor(json.dumps(cursors, sort_keys=True))
    return dg.SkipReason(f"{len(evaluations)} evaluations recorded: {counts}")
