"""Assets of the evals domain: thin wrappers over golden, scoring, judge and tables."""
import warnings
from collections import Counter
from datetime import timedelta

import dagster as dg

from daena_pipelines.commands import contract as commands
from daena_pipelines.defs.evals.partitions import daily_partitions
from daena_pipelines.defs.evals.resources import AnthropicJudgeResource
from daena_pipelines.evals import calibration, contract, golden, judge, judging, tables
from daena_pipelines.lib.metadata import column_schema, query_table, table_metadata
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.specs import asset_defaults, key, keys
from daena_pipelines.lib.warehouse import WarehouseResource
from daena_pipelines.regressions import contract as regressions
from daena_pipelines.telemetry import contract as telemetry

# backfill_policy is beta in Dagster 1.13: its warning would print at every definitions load.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)

# The freshness promise of the daily evals: eval_nightly_schedule evaluates yesterday at 02:30 UTC,
# so a run between 02:30 and 04:30 UTC each day keeps them fresh; later, the UI shows them overdue
# (also when the schedule is off and nobody ran them since).
NIGHTLY_FRESHNESS = dg.FreshnessPolicy.cron(deadline_cron="30 4 * * *", lower_bound_delta=timedelta(hours=2))
# Single-run backfills: a range of days is one run.
PARTITIONED = dict(partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run(),
                   freshness_policy=NIGHTLY_FRESHNESS)


def _run_days(context: dg.AssetExecutionContext) -> list[str]:
    """The run's partition keys up to the last partition (yesterday). Dagster passes a range tagged past
    it (a script's tags; the CLI and the UI refuse one) through whole: today's unfinished day and
    later ones are left out, not scored under a partition_date no partition shows."""
    last = daily_partitions.get_last_partition_key()
    keys = [k for k in context.partition_keys if last is not None and k <= last]
    if not keys:
        raise dg.Failure(f"the run's partition range {context.partition_key_range} holds no day of the evals "
                         f"partitions (they end at {last}): nothing to evaluate yet")
    return keys


def _days(context: dg.AssetExecutionContext):
    """First and last day of the run's partition range, and the UTC window they cover."""
    keys = _run_days(context)
    start = daily_partitions.time_window_for_partition_key(keys[0]).start
    end = daily_partitions.time_window_for_partition_key(keys[-1]).end
    return start.date(), (end - timedelta(days=1)).date(), start, end


NO_ROASTS = "no roasts on this day: nothing to evaluate (done, with nothing)"


def _per_day_metadata(context: dg.AssetExecutionContext, con, table: str, preview_columns: str, tally: str,
                      tally_sql: str | None = None) -> None:
    """Each partition of the run gets its own counts (rows, sessions, rows by the ``tally`` column, or by
    ``tally_sql`` under its name) and preview, or a note when the day had no roasts: one run over a range
    must not show the range's totals on every day."""
    for day in _run_days(context):
        rows, sessions = con.execute(
            f"SELECT count(*), count(DISTINCT session_id) FROM {table} WHERE partition_date = ?", [day]).fetchone()
        metadata = {"dagster/row_count": dg.MetadataValue.int(rows), "sessions": dg.MetadataValue.int(sessions)}
        if rows:
            metadata[f"rows_by_{tally}"] = dg.MetadataValue.json(dict(con.execute(
                f"SELECT {tally_sql or tally}, count(*) FROM {table} WHERE partition_date = ? GROUP BY ALL ORDER BY ALL",
                [day]).fetchall()))
            metadata["preview"] = query_table(
                con, f"SELECT {preview_columns} FROM {table} WHERE partition_date = ? ORDER BY ALL LIMIT 20", [day])
        else:
            metadata["note"] = dg.MetadataValue.text(NO_ROASTS)
        context.add_asset_metadata(metadata, partition_key=day)


def _table_definition(con, table: str) -> dict:
    """What every partition of a run shares: the table and its columns."""
    return {"dagster/column_schema": column_schema(con, table), "dagster/table_name": dg.MetadataValue.text(table)}


@dg.asset(
    key=key(contract.GOLDEN_CASES),
    deps=[key(regressions.GOLDEN)],
    description="Golden roast cases from golden/cases/*.json (reviewed like code); unusable files are "
    "listed in evals.golden_case_errors, never dropped silently.",
    **asset_defaults("evals", table=contract.GOLDEN_CASES),
)
def golden_cases(
    context: dg.AssetExecutionContext, duckdb: WarehouseResource, daena_settings: DaenaSettings
) -> dg.MaterializeResult:
    loaded, errors = golden.load_cases(daena_settings.get().golden_dir / "cases")
    for file, error in errors:
        context.log.error(error)
    with duckdb.get_connection() as con:
        tables.write_golden_cases(con, loaded, errors)
        metadata = table_metadata(con, "evals.golden_cases", "SELECT case_id, expectation, bean, target_fcs_s, "
                                  "target_drop_s, target_dtr_pct, trials_required, pass_k FROM evals.golden_cases")
    return dg.MaterializeResult(metadata={**metadata, "invalid_files": dg.MetadataValue.json(dict(errors))})


@dg.asset(
    key=key(contract.EVAL_RUNS),
    deps=keys([contract.GOLDEN_CASES, telemetry.SESSIONS, telemetry.ROAST_METRICS, commands.PROPOSALS]),
    description="Each session roasted on the partition's day scored against every golden case it matches: "
    "per-gate pass/fail and an outcome PASS | WARN | FAIL | NEEDS_REVIEW (docs/evals.md).",
    **asset_defaults("evals", table=contract.EVAL_RUNS),
    **PARTITIONED,
)
def eval_runs(context: dg.AssetExecutionContext, duckdb: WarehouseResource) -> dg.MaterializeResult:
    first, last, start, end = _days(context)
    with duckdb.get_connection() as con:
        try:
            cases = tables.read_golden_cases(con)
        except LookupError as exc:
            raise dg.Failure(str(exc)) from exc
        sessions = tables.read_sessions(con, start, end)
        proposals = tables.read_proposals(con, [s["session_id"] for s in sessions])
        rows = tables.eval_run_rows(sessions, cases, proposals, tables.read_case_versions(con))
        tables.replace_partitions(
            con, "evals.eval_runs", first, last, tables.EVAL_RUN_COLUMNS,
            [[r[c] for c in tables.EVAL_RUN_COLUMNS] for r in rows],
        )
        # outcomes of simulated and real roasts counted apart and named: a day's tally never passes one off as the other
        _per_day_metadata(context, con, "evals.eval_runs", "partition_date, session_id, session_source, case_id, outcome, reason",
                          "outcome", tally_sql="outcome || ' (' || coalesce(session_source, 'unknown') || ' roast)'")
        metadata = _table_definition(con, "evals.eval_runs")
    if proposals is None:
        context.log.warning("commands.proposals is absent or empty: the command-deviation gate is not applicable")
    return dg.MaterializeResult(metadata={
        **metadata,
        "run_days": dg.MetadataValue.text(f"{first}..{last} (this run; each day's counts are its own)"),
        "commands_available": proposals is not None,
    })


@dg.asset(
    key=key(contract.PASS_AT_K),
    deps=[key(contract.EVAL_RUNS)],
    description="pass@1 and pass@k per golden case and session source (simulated trials never pooled with a "
    "real roaster's) over all its evaluated trials (unbiased estimator 1 - C(n-c,k)/C(n,k)); NEEDS_REVIEW "
    "trials are counted apart, not as failures.",
    **asset_defaults("evals", table=contract.PASS_AT_K),
)
def pass_at_k(duckdb: WarehouseResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        tables.refresh_pass_at_k(con)
        metadata = table_metadata(con, "evals.pass_at_k")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=key(contract.JUDGE_SCORES),
    deps=keys([contract.EVAL_RUNS, telemetry.SESSIONS, telemetry.POINTS, commands.PROPOSALS]),
    description="LM-judge scores 0-100 (planClarity, physicsPlausibility, constraintRespect, safetyScore) per "
    "evaluated session and sample, cached by (model, prompt version, endpoint, source, input hash); rows say "
    "not_judged with the reason when there is no key or the API is unreachable, not_exercised when there is "
    "nothing to judge.",
    **asset_defaults("evals", table=contract.JUDGE_SCORES, kinds={"duckdb", "python", "anthropic"}),
    **PARTITIONED,
)
def judge_scores(
    context: dg.AssetExecutionContext, duckdb: WarehouseResource, anthropic_judge: AnthropicJudgeResource
) -> dg.MaterializeResult:
    first, last, _, _ = _days(context)
    settings = anthropic_judge.settings()
    try:
        client, no_client_reason = anthropic_judge.client()
    except judge.InsecureEndpoint as exc:
        raise dg.Failure(str(exc)) from exc
    rows = judging.judge_days(duckdb.get_connection, settings, client, no_client_reason, first, last)
    with duckdb.get_connection() as con:
        # a judgement reused from an earlier run is counted and shown as such, never as a new one
        _per_day_metadata(context, con, "evals.judge_scores", "partition_date, session_id, case_id, sample_index, source, "
                          "status, from_cache, judged_at, plan_clarity, physics_plausibility, constraint_respect, "
                          "safety_score, reason", "status",
                          tally_sql="CASE WHEN from_cache THEN status || ' (from cache)' ELSE status END")
        metadata = _table_definition(con, "evals.judge_scores")
    for r in rows:
        if r["status"] not in ("judged", "not_exercised"):
            context.log.warning(f"{r['session_id']} / {r['case_id']}: {r['status']}: {r['reason']}")
    return dg.MaterializeResult(metadata={
        **metadata,
        "model": settings.model,
        "prompt_version": judge.PROMPT_VERSION,
        "endpoint": settings.endpoint,
        "source": settings.source,
        "run_by_source": dg.MetadataValue.json(judging.run_summary(rows)),  # API use of this run, all its days
    })



@dg.asset(
    key=key(contract.JUDGE_AGREEMENT),
    deps=keys([contract.JUDGE_SCORES, contract.EVAL_RUNS]),
    description="The judge validated: per source, endpoint and model, and per session source (simulated and real roasts "
    "never pooled), agreement with the human-labelled calibration "
    "set (golden/judge/calibration.json) per dimension (Spearman, Cohen's kappa on score bands) and judge versus "
    "gates; docs/evals.md gives the thresholds.",
    **asset_defaults("evals", table=contract.JUDGE_AGREEMENT),
)
def judge_agreement(duckdb: WarehouseResource, daena_settings: DaenaSettings) -> dg.MaterializeResult:
    labels_file = daena_settings.get().golden_dir / "judge" / "calibration.json"
    try:
        header, labels = calibration.load_labels(labels_file)
    except (OSError, ValueError) as exc:
        raise dg.Failure(f"calibration labels unusable: {exc}") from exc
    with duckdb.get_connection() as con:
        rows = tables.refresh_judge_agreement(con, labels, labels_file.name)
        metadata = table_metadata(
            con, "evals.judge_agreement",
            "SELECT source, model, session_source, comparison, dimension, n_pairs, round(spearman, 3) AS spearman, "
            "round(kappa, 3) AS kappa, round(agreement_rate, 3) AS agreement_rate, status "
            "FROM evals.judge_agreement ORDER BY ALL",
        )
    return dg.MaterializeResult(metadata={
        **metadata,
        "labels": len(labels),
        "labelled_by": header["labelled_by"],
        "statuses": dg.MetadataValue.json(dict(Counter(r["status"] for r in rows))),
    })
