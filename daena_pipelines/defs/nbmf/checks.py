"""Asset checks of the nbmf domain: the benchmark against its golden file, and the timing gate."""

import dagster as dg

from daena_pipelines.lib.golden_checks import golden_asset_check, outcomes_result
from daena_pipelines.lib.specs import key
from daena_pipelines.lib.warehouse import DUCKDB_POOL, WarehouseResource
from daena_pipelines.nbmf import contract
from daena_pipelines.nbmf.runs import HISTORY_SUITE
from daena_pipelines.regressions import history

nbmf_golden = golden_asset_check(
    asset=["nbmf", "results"], suite_file="nbmf/benchmark.golden.json", name="nbmf_golden", blocking=True
)


@dg.asset_check(
    asset=key(contract.RESULTS),
    name="nbmf_timing_gate",
    blocking=True,
    pool=DUCKDB_POOL,
    description=(
        "The latest run's NBMF timings (ratios to zstd-3 measured interleaved, CPU and wall clock) against the "
        "history of accepted runs: U test + per-key threshold over a window, and step detection "
        "(docs/regressions.md). Writes regressions.bench_verdicts and the history artifact."
    ),
)
def nbmf_timing_gate(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        run_id, outcomes = history.gate_latest(con, HISTORY_SUITE)
    return outcomes_result(outcomes, True, {"checked_run": dg.MetadataValue.text(str(run_id)),
                                            "history_artifact": dg.MetadataValue.path(str(history.artifact_dir()))})
