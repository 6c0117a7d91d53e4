"""The CI command: materialise the benchmark assets (and what they need) with their golden
checks into the configured warehouse, print a summary, exit 1 when a blocking check fails.

    python -m daena_pipelines.regressions.ci [--repetitions N] [--asset nbmf/results ...]

Warehouse: DAENA_WAREHOUSE (default data/warehouse.duckdb); golden files: golden/ (or
DAENA_GOLDEN_DIR). Findings of the golden checks are written to regressions.findings.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys

import dagster as dg

from daena_pipelines import config
from daena_pipelines.regressions.checks import FAILURES_KEY, to_check_evaluation
from daena_pipelines.regressions.findings import record_evaluations
from daena_pipelines.regressions.golden import Outcome
from daena_pipelines.table_metadata import markdown_table
from daena_pipelines.warehouse import connect

# Assets whose golden checks CI enforces; ones not defined (yet) in the code location are left out.
CI_ASSETS = [["nbmf", "results"], ["evals", "eval_runs"]]
CI_JOB = "ci_golden_checks"
MAX_LISTED = 40  # failed values printed per check


BENCHMARK = dg.AssetKey(["nbmf", "results"])


def ci_job_definitions(
    defs: dg.Definitions, assets: list[list[str]]
) -> tuple[dg.Definitions, list[dg.AssetKey], list[dg.AssetKey]]:
    """The code location plus a job of ``assets`` and everything upstream that can be materialised."""
    graph = defs.resolve_asset_graph()
    targets = [key for key in map(dg.AssetKey, assets) if graph.has(key) and graph.get(key).is_materializable]
    upstream = dg.AssetSelection.assets(*targets).upstream().resolve(graph)
    runnable = [k for k in upstream if graph.get(k).is_materializable]
    job = dg.define_asset_job(CI_JOB, selection=dg.AssetSelection.assets(*runnable))
    return dg.Definitions.merge(defs, dg.Definitions(jobs=[job])), targets, runnable


def failed_values(evaluation: dg.AssetCheckEvaluation) -> list[dict]:
    failures = evaluation.metadata.get(FAILURES_KEY)
    return list(failures.value) if failures is not None else []


def run_ci(repetitions: int | None = None, assets: list[list[str]] | None = None) -> int:
    from daena_pipelines.definitions import defs  # imported here so --help stays fast

    merged, targets, runnable = ci_job_definitions(defs, assets or CI_ASSETS)
    if not targets:
        print(f"none of {assets or CI_ASSETS} is defined in the code location: nothing to check")
        return 1
    run_config = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    if repetitions and BENCHMARK in runnable:
        run_config["ops"] = {"nbmf__results": {"config": {"repetitions": repetitions}}}
    result = merged.resolve_job_def(CI_JOB).execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), run_config=run_config, raise_on_error=False
    )
    evaluations = result.get_asset_check_evaluations()
    now = dt.datetime.now(dt.timezone.utc)
    golden = [e for e in (to_check_evaluation(ev, now, result.run_id) for ev in evaluations) if e is not None]
    if golden:
        with connect(config.warehouse_path()) as con:
            counts = record_evaluations(con, golden)
        print(f"regressions.findings: {counts}")
    rows = [
        (ev.asset_key.to_user_string(), ev.check_name, "blocking" if ev.blocking else "warn",
         "passed" if ev.passed else "FAILED", len(failed_values(ev)))
        for ev in evaluations
    ]
    print(markdown_table(["asset", "check", "kind", "result", "failed values"], rows))
    for ev in (ev for ev in evaluations if not ev.passed):
        print(f"\n{ev.check_name} ({ev.asset_key.to_user_string()}) failed:")
        listed = failed_values(ev)
        for failure in listed[:MAX_LISTED]:
            print("  " + Outcome(**failure).describe())
        if len(listed) > MAX_LISTED:
            print(f"  ... and {len(listed) - MAX_LISTED} more (all in regressions.findings)")
        if not listed:
            print(f"  {ev.description}")
    blocking_failed = [ev for ev in evaluations if ev.blocking and not ev.passed]
    checked = {ev.asset_key for ev in evaluations}
    unchecked = [k.to_user_string() for k in targets if k not in checked]
    if unchecked:
        print(f"\nno check evaluation for {unchecked} (asset failed or was skipped)")
    if blocking_failed or unchecked or not result.success:
        print(f"\nCI golden checks: FAILED (run success={result.success}, blocking failures={len(blocking_failed)})")
        return 1
    print("\nCI golden checks: passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=None, help="timing repetitions per record (default 7)")
    parser.add_argument("--asset", action="append", default=None, help="only this asset key, e.g. nbmf/results (repeatable)")
    args = parser.parse_args(argv)
    return run_ci(args.repetitions, [a.split("/") for a in args.asset] if args.asset else None)


if __name__ == "__main__":
    sys.exit(main())
