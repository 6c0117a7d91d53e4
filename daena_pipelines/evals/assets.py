"""Dagster assets and checks of the evals domain: thin wrappers over golden, scoring, judge and tables."""
from collections import Counter
from datetime import timedelta

import dagster as dg

from daena_pipelines import config
from daena_pipelines.commands.definitions import PROPOSALS
from daena_pipelines.evals import golden, judge, judging, scoring, tables
from daena_pipelines.evals.resources import AnthropicJudgeResource
from daena_pipelines.table_metadata import table_metadata
from daena_pipelines.telemetry.assets import POINTS, ROAST_METRICS, SESSIONS
from daena_pipelines.warehouse import DUCKDB_POOL, WarehouseResource

# Partition D holds the sessions roasted on day D (UTC). Single-run backfills: a range is one run.
daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-11-01", timezone="UTC")
COMMON = dict(group_name="evals", owners=["team:roasting-data"], pool=DUCKDB_POOL)
PARTITIONED = dict(partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run())

GOLDEN_CASES = dg.AssetKey(["evals", "golden_cases"])
EVAL_RUNS = dg.AssetKey(["evals", "eval_runs"])


def _days(context: dg.AssetExecutionContext):
    """First and last day of the run's partition range, and the UTC window they cover."""
    window = context.partition_time_window
    return window.start.date(), (window.end - timedelta(days=1)).date(), window.start, window.end


@dg.asset(
    key=["evals", "golden_cases"],
    kinds={"duckdb", "python"},
    description="Golden roast cases from golden/cases/*.json (reviewed like code); unusable files are "
    "listed in evals.golden_case_errors, never dropped silently.",
    **COMMON,
)
def golden_cases(context: dg.AssetExecutionContext, duckdb: WarehouseResource) -> dg.MaterializeResult:
    loaded, errors = golden.load_cases(config.GOLDEN_DIR / "cases")
    for file, error in errors:
        context.log.error(error)
    with duckdb.get_connection() as con:
        tables.ensure_schema(con)
        tables.write_golden_cases(con, loaded, errors)
        metadata = table_metadata(con, "evals.golden_cases", "SELECT case_id, expectation, bean, target_fcs_s, "
                                  "target_drop_s, target_dtr_pct, trials_required, pass_k FROM evals.golden_cases")
    return dg.MaterializeResult(metadata={**metadata, "invalid_files": dg.MetadataValue.json(dict(errors))})


@dg.asset(
    key=["evals", "eval_runs"],
    deps=[GOLDEN_CASES, SESSIONS, ROAST_METRICS, PROPOSALS],
    kinds={"duckdb", "python"},
    description="Each session roasted on the partition's day scored against every golden case it matches: "
    "per-gate pass/fail and an outcome PASS | WARN | FAIL | NEEDS_REVIEW (docs/evals.md).",
    **COMMON,
    **PARTITIONED,
)
def eval_runs(context: dg.AssetExecutionContext, duckdb: WarehouseResource) -> dg.MaterializeResult:
    first, last, start, end = _days(context)
    with duckdb.get_connection() as con:
        try:
            cases = tables.read_golden_cases(con)
        except LookupError as exc:
            raise dg.Failure(str(exc)) from exc
        tables.ensure_schema(con)
        sessions = tables.read_sessions(con, start, end)
        proposals = tables.read_proposals(con, [s["session_id"] for s in sessions])
        rows = tables.eval_run_rows(sessions, cases, proposals)
        tables.replace_partitions(
            con, "evals.eval_runs", first, last, tables.EVAL_RUN_COLUMNS,
            [[r[c] for c in tables.EVAL_RUN_COLUMNS] for r in rows],
        )
        metadata = table_metadata(
            con, "evals.eval_runs",
            f"SELECT partition_date, session_id, case_id, outcome, reason FROM evals.eval_runs "
            f"WHERE partition_date BETWEEN '{first}' AND '{last}' ORDER BY ALL",
        )
    outcomes = Counter(r["outcome"] for r in rows)
    if proposals is None:
        context.log.warning("commands.proposals is absent: the command-deviation gate is not applicable")
    return dg.MaterializeResult(metadata={
        **metadata,
        "days": dg.MetadataValue.text(f"{first}..{last}"),
        "sessions": len(sessions),
        "rows_written": len(rows),
        "outcomes": dg.MetadataValue.json(dict(outcomes)),
        "commands_available": proposals is not None,
    })


@dg.asset(
    key=["evals", "pass_at_k"],
    deps=[EVAL_RUNS],
    kinds={"duckdb", "python"},
    description="pass@1 and pass@k per golden case over all its evaluated trials (unbiased estimator "
    "1 - C(n-c,k)/C(n,k)); NEEDS_REVIEW trials are counted apart, not as failures.",
    **COMMON,
)
def pass_at_k(duckdb: WarehouseResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        tables.ensure_schema(con)
        tables.refresh_pass_at_k(con)
        metadata = table_metadata(con, "evals.pass_at_k")
    return dg.MaterializeResult(metadata=metadata)


@dg.asset(
    key=["evals", "judge_scores"],
    deps=[EVAL_RUNS, SESSIONS, POINTS, PROPOSALS],
    kinds={"duckdb", "python", "anthropic"},
    description="LM-judge scores 0-100 (planClarity, physicsPlausibility, constraintRespect, safetyScore) per "
    "evaluated session and sample, cached by (model, prompt version, endpoint, source, input hash); rows say "
    "not_judged with the reason when there is no key or the API is unreachable, not_exercised when there is "
    "nothing to judge.",
    **COMMON,
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
        metadata = table_metadata(
            con, "evals.judge_scores",
            f"SELECT partition_date, session_id, case_id, sample_index, source, status, plan_clarity, "
            f"physics_plausibility, constraint_respect, safety_score, reason FROM evals.judge_scores "
            f"WHERE partition_date BETWEEN '{first}' AND '{last}' ORDER BY ALL",
        )
    for r in rows:
        if r["status"] not in ("judged", "not_exercised"):
            context.log.warning(f"{r['session_id']} / {r['case_id']}: {r['status']}: {r['reason']}")
    return dg.MaterializeResult(metadata={
        **metadata,
        "model": settings.model,
        "prompt_version": judge.PROMPT_VERSION,
        "endpoint": settings.endpoint,
        "source": settings.source,
        "by_source": dg.MetadataValue.json(judging.run_summary(rows)),
    })


def _check(passed: bool, description: str, **metadata) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=passed, description=description, metadata=metadata)


@dg.asset_check(
    asset=GOLDEN_CASES, blocking=True, pool=DUCKDB_POOL, description="Every golden case file parsed and validated."
)
def golden_cases_valid(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        errors = con.execute("SELECT file, error FROM evals.golden_case_errors ORDER BY file").fetchall()
        count = con.execute("SELECT count(*) FROM evals.golden_cases").fetchone()[0]
    why = "; ".join(e for _, e in errors) or ("no golden cases" if not count else f"{count} cases valid")
    return _check(not errors and count > 0, why, cases=count, invalid_files=len(errors))


@dg.asset_check(
    asset=EVAL_RUNS,
    blocking=True,
    pool=DUCKDB_POOL,
    description="On every evaluated day, each telemetry session has an eval row, and outcomes are known values.",
)
def eval_runs_complete(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        missing = [r[0] for r in con.execute(
            """SELECT s.session_id FROM telemetry.sessions s
               WHERE CAST(timezone('UTC', s.roasted_at) AS DATE) IN (SELECT DISTINCT partition_date FROM evals.eval_runs)
               AND s.session_id NOT IN (SELECT session_id FROM evals.eval_runs) ORDER BY 1"""
        ).fetchall()]
        bad = con.execute(
            "SELECT count(*) FROM evals.eval_runs WHERE outcome NOT IN (SELECT unnest(?))", [list(scoring.OUTCOMES)]
        ).fetchone()[0]
    why = f"sessions without an eval row: {missing}" if missing else f"{bad} rows with an unknown outcome" if bad else "complete"
    return _check(not missing and not bad, why, missing_sessions=len(missing), unknown_outcomes=bad)


@dg.asset_check(
    asset=dg.AssetKey(["evals", "judge_scores"]),
    pool=DUCKDB_POOL,
    description="Judged rows carry four scores in 0..100; every other row has no score and says why.",
)
def judge_scores_valid(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    scores = list(judge.SCORE_COLUMNS.values())
    in_range = " AND ".join(f"{c} BETWEEN 0 AND 100" for c in scores)
    no_score = " AND ".join(f"{c} IS NULL" for c in scores)
    with duckdb.get_connection() as con:
        bad_judged, bad_other = con.execute(
            f"""SELECT count(*) FILTER (WHERE status = 'judged' AND NOT coalesce({in_range}, false)),
                       count(*) FILTER (WHERE status <> 'judged' AND NOT ({no_score} AND reason IS NOT NULL))
                FROM evals.judge_scores"""
        ).fetchone()
    return _check(
        bad_judged == 0 and bad_other == 0,
        f"{bad_judged} judged rows with a missing/out-of-range score, {bad_other} unscored rows without a reason",
        bad_judged=bad_judged, bad_unscored=bad_other,
    )
