"""The CI command: materialise the whole default asset graph (as `daena materialize` does, the
evaluations over every day so far) with its checks into the configured warehouse, print a summary,
exit 1 when a blocking check or the evals golden check fails, a check crashes or a run fails.

    python -m daena_pipelines.ci [--repetitions N]

Warehouse: DAENA_WAREHOUSE (default data/warehouse.duckdb); golden files: golden/ (or
DAENA_GOLDEN_DIR). Findings of the golden checks are written to regressions.findings.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys

import dagster as dg
import duckdb

from daena_pipelines.config import Settings
from daena_pipelines.lib.golden_checks import FAILURES_KEY
from daena_pipelines.nbmf.runs import HISTORY_SUITE
from daena_pipelines.regressions import contract as regressions, history
from daena_pipelines.regressions.gate import NO_HISTORY, GateRule
from daena_pipelines.regressions.findings import CheckEvaluation, record_evaluations
from daena_pipelines.regressions.golden import Outcome
from daena_pipelines.runner import check_evaluations, materialize_everything, session_days
from daena_pipelines.lib.metadata import markdown_table
from daena_pipelines.lib.specs import keys
from daena_pipelines.db import connect

# Golden checks that only warn in the asset graph (they speak of the bundled data, which a
# production warehouse need not hold) but that CI, running on the bundled data, gates on.
CI_GATING_CHECKS = {"eval_outcomes_golden"}
# timing gate -> the clock of its verdicts, and what else holds its keys without a history
TIMING_GATES = {"nbmf_timing_gate": ("cpu", "only nbmf_golden's x1.5 CPU rule held them"),
                "nbmf_wait_gate": ("wall", "nothing else holds wall-clock ratios")}
MAX_LISTED = 40  # failed values printed per check


def failed_values(evaluation: dg.AssetCheckEvaluation) -> list[dict]:
    failures = evaluation.metadata.get(FAILURES_KEY)
    return list(failures.value) if failures is not None else []


def step_errors(results: list[dg.ExecuteInProcessResult]) -> list[tuple[str, str]]:
    """(step, first line of the error) of every failed step of the runs: the innermost cause, i.e.
    the check's or asset's own exception, not Dagster's 'Error occurred while executing op' around it."""
    out = []
    for result in results:
        for event in result.all_events:
            if event.is_step_failure:
                error = event.step_failure_data.error
                while error.cause is not None:
                    error = error.cause
                lines = error.message.strip().splitlines()
                out.append((event.step_key, lines[0] if lines else error.cls_name))
    return out


def crash_failure(check: dg.AssetCheckKey, errors: list[tuple[str, str]]) -> dict:
    note = "; ".join(f"{step}: {message}" for step, message in errors) or "no evaluation and no failed step: skipped"
    return Outcome(f"{check.name}:evaluation", {}, "an evaluation", None, "crashed or skipped", {"kind": "exact"}, False, note).as_dict()


def failed_check(evaluation: dg.AssetCheckEvaluation) -> dict:
    """A failed check that has no failed values of its own (not a golden check), as one failure: its description
    says what is wrong and where (e.g. golden_cases_valid naming the case file that does not parse)."""
    return Outcome(f"{evaluation.check_name}:evaluation", {}, "passed", "failed", "failed", {"kind": "exact"}, False,
                   evaluation.description or "").as_dict()


def record_ci_findings(con: duckdb.DuckDBPyConnection, evaluations: list[dg.AssetCheckEvaluation],
                       crashed: list[dg.AssetCheckKey], errors: list[tuple[str, str]], now: dt.datetime) -> dict[str, int]:
    """regressions.findings for what CI decides on besides the golden values (findings_job, the last run, records
    those): a crashed check, and a failed check that fails CI (blocking or gating in CI). Any other evaluation
    resolves its check's findings: it evaluates again, and passes or only warns."""
    def verdict(ev: dg.AssetCheckEvaluation) -> CheckEvaluation:
        fails_ci = not ev.passed and (ev.blocking or ev.check_name in CI_GATING_CHECKS)
        return CheckEvaluation(ev.asset_key.to_user_string(), ev.check_name, not fails_ci, now, None,
                               [failed_check(ev)] if fails_ci else [])

    return record_evaluations(con, [
        CheckEvaluation(ck.asset_key.to_user_string(), ck.name, False, now, None, [crash_failure(ck, errors)])
        for ck in crashed
    ] + [verdict(ev) for ev in evaluations if FAILURES_KEY not in ev.metadata])


def unjudged_timings(con: duckdb.DuckDBPyConnection, evaluations: list[dg.AssetCheckEvaluation]) -> list[str]:
    """A line per timing gate whose checked run had keys without the history to judge them (a fresh
    clone without the carried artifact): a pass there recorded timings, it did not compare them."""
    gates = [ev for ev in evaluations if ev.check_name in TIMING_GATES and "checked_run" in ev.metadata]
    decided = history.verdicts(con, HISTORY_SUITE) if gates else {}  # the gates' evaluation made the table
    lines = []
    for ev in gates:
        run, (clock, fallback) = ev.metadata["checked_run"].value, TIMING_GATES[ev.check_name]
        mine = [v for (r, _, c), v in decided.items() if r == run and c == clock]
        if mine.count(NO_HISTORY):
            lines.append(
                f"{ev.check_name}: {mine.count(NO_HISTORY)} of {len(mine)} keys not judged ({NO_HISTORY}: fewer than "
                f"{GateRule().min_runs} earlier accepted runs in the warehouse and {ev.metadata['history_artifact'].value}); "
                f"{fallback}. Keep that folder between CI runs (docs/regressions.md, History)")
    return lines


def run_ci(repetitions: int | None = None) -> int:
    from daena_pipelines.definitions import defs  # imported here so --help stays fast

    quiet = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
    benchmark_ops = {"nbmf__results": {"config": {"repetitions": repetitions}}} if repetitions else None
    # every day evaluated, roasts or not: golden outcomes of sessions that are not on a partition day
    # fail as missing rows instead of leaving the evals golden check unrun
    results = materialize_everything(defs, dg.DagsterInstance.ephemeral(), quiet, benchmark_ops, every_day=True)
    success = all(result.success for result in results)
    graph = defs.resolve_asset_graph()
    targets = [key for key in keys(regressions.GUARDED) if graph.has(key)]  # those whose golden checks CI enforces
    for key in targets:
        partitions_def = graph.get(key).partitions_def
        if partitions_def is not None and not session_days(partitions_def):  # after the runs: the sessions exist now
            days = partitions_def.get_partition_keys()
            print(f"{key.to_user_string()}: no roast session on any of its partition days "
                  + (f"({days[0]}..{days[-1]}): its golden outcomes fail as missing rows" if days
                     else "(none up to yesterday): its checks have nothing to run on and count as crashed"))
    evaluations = check_evaluations(results)
    now = dt.datetime.now(dt.timezone.utc)
    # Every check of the graph runs in CI; one that produced no evaluation crashed (or its asset
    # failed): a blocking failure, recorded like a failed value and printed with the step's error
    errors = step_errors(results)
    evaluated = {(ev.asset_key, ev.check_name) for ev in evaluations}
    crashed = sorted((ck for ck in graph.asset_check_keys if (ck.asset_key, ck.name) not in evaluated), key=lambda ck: ck.to_user_string())
    with connect(Settings.from_env().warehouse) as con:
        counts = record_ci_findings(con, evaluations, crashed, errors, now)
        notices = unjudged_timings(con, evaluations)
    if any(counts.values()):
        print(f"regressions.findings, crashed or failed checks: {counts}")
    rows = [
        (ev.asset_key.to_user_string(), ev.check_name,
         "blocking" if ev.blocking else "gating in CI" if ev.check_name in CI_GATING_CHECKS else "warn",
         "passed" if ev.passed else "FAILED", len(failed_values(ev)))
        for ev in evaluations
    ] + [(ck.asset_key.to_user_string(), ck.name, "blocking in CI", "CRASHED", 1) for ck in crashed]
    print(markdown_table(["asset", "check", "kind", "result", "failed values"], rows))
    for ev in (ev for ev in evaluations if not ev.passed):
        print(f"\n{ev.check_name} ({ev.asset_key.to_user_string()}) failed:")
        # a value with nothing to compare (no golden value, or none measured) first: with one key per origin a
        # worse codec fails ~50 values, which would hide a deleted or never-promoted key past the listed ones
        listed = sorted(failed_values(ev), key=lambda f: f["golden"] is not None and f["actual"] is not None)
        for failure in listed[:MAX_LISTED]:
            print("  " + Outcome(**failure).describe())
        if len(listed) > MAX_LISTED:
            print(f"  ... and {len(listed) - MAX_LISTED} more (all in regressions.findings)")
        if not listed and ev.description:
            print(f"  {ev.description}")
    for ck in crashed:
        print(f"\n{ck.name} ({ck.asset_key.to_user_string()}) CRASHED (no evaluation; blocking):")
        print("  " + Outcome(**crash_failure(ck, errors)).describe())
    for line in notices:
        print(f"\n{line}")
    blocking_failed = [ev for ev in evaluations if (ev.blocking or ev.check_name in CI_GATING_CHECKS) and not ev.passed]
    if blocking_failed or crashed or not success:
        for step, message in errors:
            print(f"\nstep {step} failed: {message}")
        print(f"\nCI golden checks: FAILED (runs succeeded={success}, blocking failures={len(blocking_failed)}, crashed checks={len(crashed)})")
        return 1
    print("\nCI golden checks: passed")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repetitions", type=int, default=None, help="timing repetitions per record (default 7)")
    args = parser.parse_args(argv)
    return run_ci(args.repetitions)


if __name__ == "__main__":
    sys.exit(main())
