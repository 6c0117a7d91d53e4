"""Asset checks that compare a table with a golden file, and their link to regressions.findings."""

import datetime as dt

import dagster as dg

from daena_pipelines.regressions.findings import CheckEvaluation
from daena_pipelines.regressions.golden import Outcome, evaluate_file, rule_text
from daena_pipelines.lib.metadata import preview_table
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import DUCKDB_POOL, WarehouseResource

FAILURES_KEY = "golden_failures"  # metadata key the sensor and the CI command read
PROMOTE = ("a regression: fix it; an intended change: review and promote the new values with `daena promote-golden` "
           "(docs/regressions.md#promotion-deliberate-reviewed)")


def golden_asset_check(*, asset: list[str], suite_file: str, name: str, blocking: bool) -> dg.AssetChecksDefinition:
    """A check of ``asset`` against ``golden/<suite_file>`` (read when the check runs)."""

    @dg.asset_check(
        asset=dg.AssetKey(asset),
        name=name,
        blocking=blocking,
        pool=DUCKDB_POOL,
        description=f"Compares the latest values with golden/{suite_file}, each by its own rule"
        + (" (blocking: a failure stops downstream assets and fails the run)." if blocking else "."),
    )
    def _check(duckdb: WarehouseResource, daena_settings: DaenaSettings) -> dg.AssetCheckResult:
        path = daena_settings.get().golden_dir / suite_file
        with duckdb.get_connection() as con:
            outcomes, run = evaluate_file(con, path)  # an unreadable file is a named failure, not a crash
        metadata = {"golden_file": dg.MetadataValue.path(str(path)), "checked_run": dg.MetadataValue.text(str(run))}
        return outcomes_result(outcomes, blocking, metadata)

    return _check


def outcomes_result(
    outcomes: list[Outcome], blocking: bool, metadata: dict, check_name: str | None = None, what_to_do: str = PROMOTE,
    unjudged: str = "",
) -> dg.AssetCheckResult:
    """A check result from outcomes, with the failed ones under ``FAILURES_KEY`` for the findings
    (``check_name`` when one function evaluates several checks). A passed outcome whose change is
    ``unjudged`` had nothing to be compared with: the summary counts it apart, never as holding."""
    failed = [o for o in outcomes if not o.passed]
    not_judged = sum(o.passed and o.change == unjudged for o in outcomes) if unjudged else 0
    columns = ["metric", "golden", "actual", "change", "rule", "note"]
    table = [(o.metric, o.golden, o.actual, o.change, rule_text(o.rule), o.note) for o in failed or outcomes[:15]]
    summary = (
        f"{len(failed)} of {len(outcomes)} values failed: " + "; ".join(o.describe() for o in failed[:5])
        + f". What to do: {what_to_do}"
        if failed
        else f"{not_judged} of {len(outcomes)} values not judged ({unjudged}), the other {len(outcomes) - not_judged} hold"
        if not_judged
        else f"all {len(outcomes)} values hold"
    )
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=not failed,
        severity=dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN,
        description=summary,
        metadata={
            **metadata,
            "checked": len(outcomes),
            "failed": len(failed),
            ("failures" if failed else "sample"): preview_table(columns, table),
            FAILURES_KEY: dg.MetadataValue.json([o.as_dict() for o in failed]),
        },
    )


def to_check_evaluation(evaluation: dg.AssetCheckEvaluation, at: dt.datetime, run_id: str | None) -> CheckEvaluation | None:
    """The findings view of a golden check's evaluation; None for checks that are not golden checks."""
    failures = evaluation.metadata.get(FAILURES_KEY)
    if failures is None:
        return None
    return CheckEvaluation(
        asset_key=evaluation.asset_key.to_user_string(),
        check_name=evaluation.check_name,
        passed=evaluation.passed,
        at=at,
        run_id=run_id,
        failures=list(failures.value),
    )
