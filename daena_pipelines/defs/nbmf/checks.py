"""Asset checks of the nbmf domain: the benchmark against its golden file, and the timing gate."""

import json

import dagster as dg

from daena_pipelines.lib.checks import rows_result
from daena_pipelines.lib.golden_checks import golden_asset_check, outcomes_result
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.specs import key
from daena_pipelines.lib.warehouse import DUCKDB_POOL, WarehouseResource
from daena_pipelines.nbmf import contract
from daena_pipelines.nbmf.runs import HISTORY_SUITE
from daena_pipelines.regressions import history

nbmf_golden = golden_asset_check(
    asset=["nbmf", "results"], suite_file="nbmf/benchmark.golden.json", name="nbmf_golden", blocking=True
)

ACCEPT_OR_FIX = ("a slowdown: fix it; an intended step: accept the run with `python -m daena_pipelines.regressions.accept "
                 "<run_id>` (docs/regressions.md#what-the-gate-compares)")
GATE_DOC = "paired ratios to the orjson + zstd + SHA-256 bound (semantic text: the text rule + that bound; semantic series: the channels on their grids + that bound), measured back to back per record and repetition) against the history of accepted runs (docs/regressions.md)"


@dg.multi_asset_check(
    name="nbmf_timing_gates",
    specs=[
        dg.AssetCheckSpec(
            "nbmf_timing_gate", asset=key(contract.RESULTS), blocking=True,
            description=f"The latest run's NBMF CPU timings ({GATE_DOC}). Blocking.",
        ),
        dg.AssetCheckSpec(
            "nbmf_wait_gate", asset=key(contract.RESULTS), blocking=False,
            description=f"The latest run's NBMF wall-clock timings, where waits show ({GATE_DOC}). Warns: under a "
            "changing machine load wall ratios of long calls move by themselves (measured false alarms in the doc).",
        ),
    ],
    pool=DUCKDB_POOL,
)
def nbmf_timing_gates(duckdb: WarehouseResource, daena_settings: DaenaSettings):
    folder = daena_settings.get().bench_history_dir
    with duckdb.get_connection() as con:
        run_id, outcomes = history.gate_latest(con, HISTORY_SUITE, folder=folder)
    metadata = {"checked_run": dg.MetadataValue.text(str(run_id)), "history_artifact": dg.MetadataValue.path(str(folder))}
    for name, clock, blocking in (("nbmf_timing_gate", "cpu", True), ("nbmf_wait_gate", "wall", False)):
        mine = [o for o in outcomes if o.key.get("clock", clock) == clock]  # a missing-samples outcome goes to both
        yield outcomes_result(mine, blocking, metadata, check_name=name, what_to_do=ACCEPT_OR_FIX, unjudged=history.NOT_JUDGED)


@dg.asset_check(
    asset=key(contract.RESULTS), pool=DUCKDB_POOL,
    description="The latest run meets every NBMF target (docs/nbmf.md). Warns: a target unmet is a goal not reached, "
    "not a regression; the golden check and the gates guard against getting worse.",
)
def nbmf_targets_met(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    with duckdb.get_connection() as con:
        latest = con.execute("SELECT run_id, targets FROM nbmf.runs ORDER BY run_id DESC LIMIT 1").fetchone()
    if latest is None:
        return dg.AssetCheckResult(passed=False, severity=dg.AssetCheckSeverity.WARN, description="no benchmark run in nbmf.runs")
    run_id, targets = latest[0], json.loads(latest[1] or "[]")
    # origin: what the value was measured on (absent in runs from before nbmf migration 4)
    unmet = [{"target": t["target"], "reached": t["reached"], "goal": t["goal"], "origin": t.get("origin", "unrecorded")}
             for t in targets if not t["met"]]
    counts = {"checked_run": dg.MetadataValue.text(run_id), "targets": len(targets), "unmet": len(unmet)}
    return rows_result(unmet, f"all {len(targets)} targets met", f"target unmet (of {len(targets)})",
                       dg.AssetCheckSeverity.WARN, "docs/nbmf.md#benchmark-method", counts)
