"""Asset checks of the evals domain; the golden outcome check is built from its golden file."""

import dagster as dg

from daena_pipelines.defs.evals.resources import NO_API_KEY
from daena_pipelines.evals import calibration, contract, judge, scoring
from daena_pipelines.lib.golden_checks import golden_asset_check
from daena_pipelines.lib.specs import key
from daena_pipelines.lib.warehouse import DUCKDB_POOL, WarehouseResource

GOLDEN_CASES, EVAL_RUNS, JUDGE_SCORES = key(contract.GOLDEN_CASES), key(contract.EVAL_RUNS), key(contract.JUDGE_SCORES)
JUDGE_AGREEMENT = key(contract.JUDGE_AGREEMENT)
DOCS = "docs/evals.md"


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
    if errors or not count:
        why += f". What to do: fix or add the case files in golden/cases/ ({DOCS}#golden-cases-goldencasesjson), then rematerialise evals/golden_cases"
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
        # rows a golden case file scored that has changed (or gone) since, or whose version is unknown (NULL: written
        # before evals migration 6): the nightly run rescores yesterday only
        stale = con.execute(
            """SELECT r.case_id, CASE WHEN g.case_id IS NULL THEN 'no longer in golden/cases'
                                      WHEN r.case_sha256 IS NULL THEN 'scored before case versions were recorded'
                                      ELSE 'file changed since' END,
                      min(r.partition_date), max(r.partition_date), count(*)
               FROM evals.eval_runs r LEFT JOIN evals.golden_cases g USING (case_id)
               WHERE r.case_id IS NOT NULL AND r.case_sha256 IS DISTINCT FROM g.content_sha256
               GROUP BY ALL ORDER BY ALL"""
        ).fetchall()
    why = f"sessions without an eval row: {missing}" if missing else f"{bad} rows with an unknown outcome" if bad else "complete"
    if missing or bad:
        why += f". What to do: rematerialise evals/eval_runs for the days of those sessions ({DOCS}#partitions-job-schedule-backfill)"
    metadata = dict(missing_sessions=len(missing), unknown_outcomes=bad, outdated_rows=sum(r[-1] for r in stale))
    if stale and not (missing or bad):  # valid rows, but not today's cases' verdicts: warn, do not block
        first, last = min(r[2] for r in stale), max(r[3] for r in stale)
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
            description=f"{metadata['outdated_rows']} rows were not scored against their golden case as it is now: "
            + "; ".join(f"{case} ({state}) on {lo}..{hi}, {n} rows" for case, state, lo, hi, n in stale)
            + f". What to do: rematerialise evals/eval_runs over {first}...{last} (a backfill; "
            f"{DOCS}#partitions-job-schedule-backfill), then evals/pass_at_k",
        )
    return _check(not missing and not bad, why, **metadata)


@dg.asset_check(
    asset=JUDGE_SCORES,
    pool=DUCKDB_POOL,
    description="Judged rows carry four scores in 0..100; every other row has no score and says why. Warns when rows "
    "are not judged, when replies came back invalid and none was judged on their day, or when every judged row was scored by a "
    "simulator (no real judge's verdict).",
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
        statuses = dict(con.execute("SELECT status, count(*) FROM evals.judge_scores GROUP BY ALL").fetchall())
        cached = con.execute("SELECT count(*) FROM evals.judge_scores WHERE from_cache").fetchone()[0]
        judged_by = dict(con.execute(
            "SELECT source, count(*) FROM evals.judge_scores WHERE status = 'judged' GROUP BY ALL ORDER BY ALL").fetchall())
        # where the simulated judgements came from: endpoint and days, for the warning below
        simulated_where = con.execute(
            "SELECT string_agg(DISTINCT endpoint, ', ' ORDER BY endpoint), min(partition_date), max(partition_date) "
            "FROM evals.judge_scores WHERE status = 'judged' AND source = 'simulator'").fetchone()
        reason = con.execute(
            "SELECT reason FROM evals.judge_scores WHERE status = 'not_judged' GROUP BY reason ORDER BY count(*) DESC LIMIT 1"
        ).fetchone()
        # the replies that came back unusable: which (session, case, day), why, and from which model and endpoint
        invalid = con.execute(
            "SELECT session_id || ' × ' || coalesce(case_id, 'no case') || ' on ' || partition_date FROM evals.judge_scores "
            "WHERE status = 'invalid_output' GROUP BY ALL ORDER BY min(partition_date), 1").fetchall()
        invalid_why, invalid_reasons, invalid_from, invalid_first, invalid_last = con.execute(
            "SELECT (SELECT reason FROM evals.judge_scores WHERE status = 'invalid_output' GROUP BY reason "
            "        ORDER BY count(*) DESC, reason LIMIT 1), count(DISTINCT reason), "
            "       string_agg(DISTINCT model || ' at ' || endpoint, ', ' ORDER BY model || ' at ' || endpoint), "
            "       min(partition_date), max(partition_date) "
            "FROM evals.judge_scores WHERE status = 'invalid_output'").fetchone()
        # a day's run whose every reply was unusable, whatever earlier days hold: the table spans all days
        unjudged_days = [str(d) for (d,) in con.execute(
            "SELECT partition_date FROM evals.judge_scores GROUP BY ALL HAVING count(*) FILTER (status = 'invalid_output') > 0 "
            "AND count(*) FILTER (status = 'judged') = 0 ORDER BY ALL").fetchall()]
    counts = {"bad_judged": bad_judged, "bad_unscored": bad_other, "statuses": dg.MetadataValue.json(statuses)}
    if bad_judged or bad_other:
        return _check(False, f"{bad_judged} judged rows with a missing/out-of-range score, {bad_other} unscored rows "
                      "without a reason. What to do: docs/evals.md", **counts)
    not_judged, total = statuses.get("not_judged", 0), sum(statuses.values())
    n_invalid = statuses.get("invalid_output", 0)
    # a long backfill can have hundreds: the first ten name where to look, the table holds the rest
    named = ", ".join(r[0] for r in invalid[:10]) + (f" and {len(invalid) - 10} more" if len(invalid) > 10 else "")
    why = f"most common of {invalid_reasons} reasons" if invalid_reasons > 1 else "reason"
    invalid_rows = (f"invalid_output on {n_invalid} of {total} rows ({named}; {why}: {invalid_why}; from {invalid_from})"
                    if n_invalid else "")
    invalid_named = f"; {invalid_rows}, not scored" if n_invalid else ""
    if not_judged:  # valid rows, but not a judgement: no green over it
        # the key is the fix only when it is what was missing; an API refusal, the spend cap, an expired batch need theirs
        remedy = "set ANTHROPIC_API_KEY (docs/evals.md)" if reason[0].startswith(NO_API_KEY) else (
            "fix what the reason says (docs/evals.md: the API's errors and the judge's retries)")
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=counts,
            description=f"{not_judged} of {total} rows not judged ({reason[0]}); judged {statuses.get('judged', 0)}"
            f"{invalid_named}. What to do: {remedy} and rematerialise evals/judge_scores",
        )
    reused = f"; {cached} of them reused from the cache (judged by an earlier run, judged_at says when)" if cached else ""
    metadata = {**counts, "from_cache": cached, "judged_by_source": dg.MetadataValue.json(judged_by)}
    if unjudged_days:
        # WARN like not_judged and the simulator case: the rows are well-formed (no score, a reason) but hold no
        # judgement; ERROR is kept for rows that break the table's contract (above)
        where = (f"none of {total} rows judged, every reply unusable" if not judged_by else
                 f"no row judged on {len(unjudged_days)} day(s) ({', '.join(unjudged_days[:10])}"
                 f"{' and more' if len(unjudged_days) > 10 else ''}), every reply there unusable")
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
            description=f"{where}: {invalid_rows}. "
            "What to do: fix what the reason says (the anthropic_judge resource's model, max_tokens or effort; "
            f"{DOCS}#lm-judge-evalsjudge_scores) and rematerialise evals/judge_scores for {invalid_first}...{invalid_last}",
        )
    if judged_by and set(judged_by) == {"simulator"}:  # valid scores, but no real judge gave any: no green over them
        endpoints, first, last = simulated_where
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
            description=f"all {judged_by['simulator']} judged rows (of {total}) were scored by a simulator, none by the "
            f"real judge: endpoint {endpoints}, days {first}..{last}{reused}{invalid_named}. What to do: judge with the "
            "official API (set ANTHROPIC_API_KEY, leave ANTHROPIC_BASE_URL and the resource's base_url unset; "
            f"{DOCS}#lm-judge-evalsjudge_scores) and rematerialise evals/judge_scores for those days",
        )
    # a green check must not read as the real judge's verdict on the rows a stand-in scored
    simulated = (f"; {judged_by['simulator']} judged by a simulator (a non-official endpoint such as the tests' "
                 "local server), not the real judge") if "simulator" in judged_by else ""
    return _check(True, f"all {total} rows valid: {statuses}{reused}{simulated}{invalid_named}", **metadata)


@dg.asset_check(
    asset=JUDGE_AGREEMENT,
    pool=DUCKDB_POOL,
    description=f"WARN when the judge agrees with the human labels or the gates less than documented "
    f"(Spearman >= {calibration.THRESHOLDS['spearman']}, kappa >= {calibration.THRESHOLDS['kappa']}, "
    f"gate agreement >= {calibration.THRESHOLDS['gate_agreement']}, with >= {calibration.MIN_PAIRS} pairs).",
)
def judge_agreement_ok(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        low = con.execute(
            "SELECT source, model, session_source, comparison, dimension, n_pairs, spearman, kappa, agreement_rate "
            "FROM evals.judge_agreement WHERE status = 'below_threshold' ORDER BY ALL"
        ).fetchall()
        compared = con.execute("SELECT count(*) FILTER (WHERE status <> 'too_few_pairs'), count(*) "
                               "FROM evals.judge_agreement").fetchone()
    described = "; ".join(
        f"{src}/{model} on {session_source} roasts {comp} {dim}: n={n}, spearman={rho if rho is None else round(rho, 2)}, "
        f"kappa={k if k is None else round(k, 2)}, agreement={a if a is None else round(a, 2)}"
        for src, model, session_source, comp, dim, n, rho, k, a in low
    )
    metadata = {"below_threshold": len(low), "compared": compared[0], "too_few_pairs": compared[1] - compared[0]}
    if not compared[0]:  # nothing compared: the judge's agreement is unknown, not good
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=metadata,
            description=f"compared 0 ({compared[1]} comparisons, each with fewer than {calibration.MIN_PAIRS} judged pairs): "
            "no judge run has enough labelled pairs, so its agreement with the labels and the gates is unknown. "
            "What to do: judge the labelled sessions (ANTHROPIC_API_KEY, docs/evals.md#validating-the-judge-evalsjudge_agreement) "
            "and rematerialise evals/judge_scores, then evals/judge_agreement",
        )
    why = described or f"{compared[0]} comparisons at or above the thresholds"
    return dg.AssetCheckResult(passed=not low, severity=dg.AssetCheckSeverity.WARN, description=why, metadata=metadata)


# The outcome of every bundled sample session against its golden case. It warns rather than
# blocks: a production warehouse need not hold the bundled sessions. CI, which runs on the
# bundled data, treats a failure as red (daena_pipelines/ci.py).
eval_outcomes_golden = golden_asset_check(
    asset=["evals", "eval_runs"], suite_file="evals/outcomes.golden.json", name="eval_outcomes_golden", blocking=False
)
