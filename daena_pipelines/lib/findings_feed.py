"""What ``regressions.findings`` has not read yet from the Dagster event log, after the warehouse's
watermarks (``regressions.findings_watermarks``):

- the execution history of every asset check, keeping golden checks (those carrying the failures
  metadata): each failing golden value is a finding, resolved when a later evaluation passes it;
- the ends of runs (success, failure, cancel events, by storage id): a benchmark or eval asset a
  run planned but did not materialise is a finding (metric ``materialization``), resolved by the
  next run that did materialise it — so a crashing benchmark is as visible as a slower one.
  (Dagster 1.13 emits no ASSET_FAILED_TO_MATERIALIZE for a failed step here, hence
  planned-versus-done.)

The check stream stops at the first execution of a run still going on, and goes on from there
next time. Only non-deprecated instance APIs are used.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

import dagster as dg

from daena_pipelines.lib.golden_checks import to_check_evaluation
from daena_pipelines.lib.specs import keys
from daena_pipelines.regressions import contract as regressions
from daena_pipelines.regressions.findings import CheckEvaluation

BATCH = 200  # records read per stream at a time
RUN_ENDS = (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.RUN_CANCELED)
MATERIALIZATION_CHECK = "materialization"


def _check_evaluations(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, after: int | None
) -> tuple[list[CheckEvaluation], int | None]:
    """Evaluations of one check newer than ``after`` (an execution record id), oldest first."""
    history = instance.event_log_storage.get_asset_check_execution_history(check_key, limit=BATCH)
    evaluations = []
    for record in sorted(history, key=lambda r: r.id):
        if after is not None and record.id <= after:
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
        after = record.id
    return evaluations, after


def _asset_keys(instance: dg.DagsterInstance, run_id: str, event_type: dg.DagsterEventType) -> set[dg.AssetKey]:
    records = instance.get_records_for_run(run_id, of_type=event_type, limit=10_000).records
    return {r.event_log_entry.dagster_event.asset_key for r in records if r.event_log_entry.dagster_event}


def _materialization_outcomes(
    instance: dg.DagsterInstance, watched: set[dg.AssetKey], after: int | None
) -> tuple[list[CheckEvaluation], int | None]:
    """For each run that ended after storage id ``after`` and planned a ``watched`` asset: was it materialised?"""
    ends, horizon = [], None
    for event_type in RUN_ENDS:
        records = instance.fetch_run_status_changes(
            dg.RunStatusChangeRecordsFilter(event_type, after_storage_id=after), limit=BATCH, ascending=True
        ).records
        ends += records
        if len(records) == BATCH:  # more of this kind beyond: read only up to here this time
            horizon = min(horizon or records[-1].storage_id, records[-1].storage_id)
    evaluations = []
    for record in sorted((r for r in ends if horizon is None or r.storage_id <= horizon), key=lambda r: r.storage_id):
        planned = _asset_keys(instance, record.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED) & watched
        done = _asset_keys(instance, record.run_id, dg.DagsterEventType.ASSET_MATERIALIZATION) if planned else set()
        at = dt.datetime.fromtimestamp(record.timestamp, dt.timezone.utc)
        status = "run " + record.event_log_entry.dagster_event.event_type.name.removeprefix("RUN_").lower()
        for asset_key in sorted(planned, key=str):
            failure = {"metric": MATERIALIZATION_CHECK, "golden": "materialized", "actual": "not materialized",
                       "change": status, "rule": {"kind": "exact"}, "note": f"run {record.run_id}"}
            evaluations.append(CheckEvaluation(asset_key.to_user_string(), MATERIALIZATION_CHECK, asset_key in done, at,
                                               record.run_id, [] if asset_key in done else [failure]))
        after = record.storage_id
    return evaluations, after


def unread(
    instance: dg.DagsterInstance, check_keys: Iterable[dg.AssetCheckKey], watermarks: dict[str, int]
) -> tuple[list[CheckEvaluation], dict[str, int]]:
    """The evaluations after ``watermarks`` and the streams' new positions (those that moved).
    Positions are storage ids of one instance's event log, so a stream is named with the
    instance's run storage id: `daena ci` on an ephemeral instance reads its own log from the start."""
    instance_id = instance.run_storage.get_run_storage_id()
    streams = [(f"check:{k.to_user_string()}@{instance_id}", _check_evaluations, k) for k in sorted(check_keys, key=str)]
    streams.append((f"runs@{instance_id}", _materialization_outcomes, set(keys(regressions.GUARDED))))
    evaluations, moved = [], {}
    for stream, read, subject in streams:
        found, position = read(instance, subject, watermarks.get(stream))
        evaluations += found
        if position is not None and position != watermarks.get(stream):
            moved[stream] = position
    return evaluations, moved
