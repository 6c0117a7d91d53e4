"""Dagster definitions of the nbmf domain: the benchmark asset, its golden checks and job."""
import dagster as dg

from daena_pipelines.nbmf.assets import nbmf_results
from daena_pipelines.regressions.checks import golden_asset_check

golden_checks = [
    golden_asset_check(asset=["nbmf", "results"], suite_file="nbmf/benchmark.golden.json", name="nbmf_golden", blocking=True),
    golden_asset_check(
        asset=["nbmf", "results"], suite_file="nbmf/latency_between_runs.golden.json", name="nbmf_latency_vs_previous_run", blocking=False
    ),
]

nbmf_benchmark_job = dg.define_asset_job(
    "nbmf_benchmark", selection=dg.AssetSelection.assets(nbmf_results), description="The NBMF benchmark and its golden checks."
)

defs = dg.Definitions(assets=[nbmf_results], asset_checks=golden_checks, jobs=[nbmf_benchmark_job])
