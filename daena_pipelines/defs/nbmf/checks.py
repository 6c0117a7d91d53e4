"""Asset checks of the nbmf domain: the benchmark against its golden files."""

from daena_pipelines.lib.golden_checks import golden_asset_check

nbmf_golden = golden_asset_check(
    asset=["nbmf", "results"], suite_file="nbmf/benchmark.golden.json", name="nbmf_golden", blocking=True
)
nbmf_latency_vs_previous_run = golden_asset_check(
    asset=["nbmf", "results"], suite_file="nbmf/latency_between_runs.golden.json", name="nbmf_latency_vs_previous_run",
    blocking=False,
)
