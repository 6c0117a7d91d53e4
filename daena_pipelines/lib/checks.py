"""Asset checks over warehouse rows: a rule returns the offending rows, the check reports them."""

from collections.abc import Callable

import dagster as dg
import duckdb

from daena_pipelines.lib.metadata import markdown_table
from daena_pipelines.lib.warehouse import WarehouseResource


def rows_result(rows: list[dict], passed_text: str, failed_text: str, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    """Passed when there are no offending rows; otherwise the first 50 as a table."""
    metadata = {"offending_rows": dg.MetadataValue.int(len(rows))}
    if rows:
        columns = list(rows[0])
        metadata["rows"] = dg.MetadataValue.md(markdown_table(columns, [tuple(r.values()) for r in rows[:50]]))
    return dg.AssetCheckResult(
        passed=not rows, severity=severity, description=failed_text if rows else passed_text, metadata=metadata
    )


def rule_check(
    asset: dg.AssetKey,
    name: str,
    description: str,
    rule: Callable[[duckdb.DuckDBPyConnection], list[dict]],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    blocking: bool = False,
) -> dg.AssetChecksDefinition:
    """A check of ``asset`` that passes when ``rule`` finds no offending rows in the warehouse."""

    @dg.asset_check(asset=asset, name=name, description=description, blocking=blocking)
    def _run(duckdb: WarehouseResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as con:
            rows = rule(con)
        return rows_result(rows, f"{description}: OK", f"{description}: {len(rows)} violation(s)", severity)

    return _run
