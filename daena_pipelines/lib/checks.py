"""Asset checks over warehouse rows: a rule returns the offending rows, the check reports them in
one line a person can act on (what, where, the first example with labelled fields, the docs)."""

from collections.abc import Callable

import dagster as dg
import duckdb

from daena_pipelines.config import PROJECT_ROOT
from daena_pipelines.lib.metadata import preview_table
from daena_pipelines.lib.warehouse import WarehouseResource


def labelled(row: dict) -> str:
    return ", ".join(f"{name}={value}" for name, value in row.items())


def rows_result(
    rows: list[dict], passed_text: str, failed_text: str, severity: dg.AssetCheckSeverity, docs: str,
    metadata: dict | None = None,
) -> dg.AssetCheckResult:
    """Passed when there are no offending rows. Otherwise one line: how many, what, the first row
    (labelled), where to read what to do; the first 50 rows as a table in the metadata."""
    docs_path = PROJECT_ROOT / docs.split("#")[0]
    meta = {"offending_rows": dg.MetadataValue.int(len(rows)), "what_to_do": dg.MetadataValue.path(f"{docs_path}#{docs.partition('#')[2]}"),
            **(metadata or {})}
    if not rows:
        return dg.AssetCheckResult(passed=True, severity=severity, description=passed_text, metadata=meta)
    more = f" (+{len(rows) - 1} more in 'rows')" if len(rows) > 1 else ""
    description = f"{len(rows)} × {failed_text}; first: {labelled(rows[0])}{more}. What to do: {docs}"
    meta["rows"] = preview_table(list(rows[0]), [tuple(r.values()) for r in rows[:50]])
    return dg.AssetCheckResult(passed=False, severity=severity, description=description, metadata=meta)


def rule_check(
    asset: dg.AssetKey,
    name: str,
    docs: str,
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
        return rows_result(rows, f"{description}: OK", f"violation of: {description}", severity, docs)

    return _run
