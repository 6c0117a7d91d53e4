"""Dagster definitions of the evals domain: assets, checks, the eval job and its nightly schedule."""
import dagster as dg

from daena_pipelines.evals import assets
from daena_pipelines.evals.resources import AnthropicJudgeResource
from daena_pipelines.regressions.checks import golden_asset_check

eval_job = dg.define_asset_job(
    "eval_job",
    selection=dg.AssetSelection.groups("evals"),
    partitions_def=assets.daily_partitions,
    description="Golden cases, eval runs, pass@k and LM-judge scores for one day of roasts (or a range).",
)

# Daily partitions: at 02:30 UTC the schedule runs the last complete day, i.e. yesterday.
eval_nightly_schedule = dg.build_schedule_from_partitioned_job(
    eval_job, name="eval_nightly_schedule", hour_of_day=2, minute_of_hour=30
)

defs = dg.Definitions(
    assets=[assets.golden_cases, assets.eval_runs, assets.pass_at_k, assets.judge_scores],
    asset_checks=[
        assets.golden_cases_valid,
        assets.eval_runs_complete,
        assets.judge_scores_valid,
        # The outcome of every bundled sample session against its golden case. It warns rather
        # than blocks: a production warehouse need not hold the bundled sessions. CI, which runs
        # on the bundled data, treats a failure as red (regressions/ci.py).
        golden_asset_check(
            asset=["evals", "eval_runs"], suite_file="evals/outcomes.golden.json", name="eval_outcomes_golden", blocking=False
        ),
    ],
    jobs=[eval_job],
    schedules=[eval_nightly_schedule],
    resources={"anthropic_judge": AnthropicJudgeResource()},
)
