"""Jobs of the evals domain."""
import dagster as dg

# Partitioned by day: Dagster takes the partitions from the selected assets (evals' daily_partitions);
# passing partitions_def as well is deprecated as redundant.
eval_job = dg.define_asset_job(
    "eval_job",
    selection=dg.AssetSelection.groups("evals"),
    description="Golden cases, eval runs, pass@k and LM-judge scores for one day of roasts (or a range).",
)
