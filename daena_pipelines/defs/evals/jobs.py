"""Jobs of the evals domain."""
import dagster as dg

from daena_pipelines.defs.evals.partitions import daily_partitions

eval_job = dg.define_asset_job(
    "eval_job",
    selection=dg.AssetSelection.groups("evals"),
    partitions_def=daily_partitions,
    description="Golden cases, eval runs, pass@k and LM-judge scores for one day of roasts (or a range).",
)
