"""Asset checks on the telemetry tables (rules in `quality.py`)."""

from collections.abc import Callable

import dagster as dg
import duckdb

from daena_pipelines.table_metadata import markdown_table
from daena_pipelines.telemetry import quality
from daena_pipelines.telemetry.assets import POINTS, ROAST_METRICS, SESSIONS
from daena_pipelines.warehouse import WarehouseResource


def _result(rows: list[dict], passed_text: str, failed_text: str, severity: dg.AssetCheckSeverity) -> dg.AssetCheckResult:
    metadata = {"offending_rows": dg.MetadataValue.int(len(rows))}
    if rows:
        columns = list(rows[0])
        metadata["rows"] = dg.MetadataValue.md(markdown_table(columns, [tuple(r.values()) for r in rows[:50]]))
    return dg.AssetCheckResult(
        passed=not rows, severity=severity, description=failed_text if rows else passed_text, metadata=metadata
    )


def _check(
    asset: dg.AssetKey,
    name: str,
    description: str,
    rule: Callable[[duckdb.DuckDBPyConnection], list[dict]],
    severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR,
    blocking: bool = False,
) -> dg.AssetChecksDefinition:
    @dg.asset_check(asset=asset, name=name, description=description, blocking=blocking)
    def _run(duckdb: WarehouseResource) -> dg.AssetCheckResult:
        with duckdb.get_connection() as con:
            rows = rule(con)
        return _result(rows, f"{description}: OK", f"{description}: {len(rows)} violation(s)", severity)

    return _run


telemetry_checks = [
    _check(SESSIONS, "session_id_unique_not_null", "session_id is unique and not null",
           lambda con: quality.key_violations(con, "telemetry.sessions", ("session_id",)), blocking=True),
    _check(POINTS, "sample_key_unique_not_null", "(session_id, t_s) is unique and not null",
           lambda con: quality.key_violations(con, "telemetry.points", ("session_id", "t_s")), blocking=True),
    _check(POINTS, "time_monotonic", "t_s strictly increases within each session", quality.non_monotonic_time, blocking=True),
    _check(POINTS, "temperatures_plausible",
           f"BT within {quality.BT_RANGE_C} °C and ET within {quality.ET_RANGE_C} °C",
           quality.implausible_temperatures, severity=dg.AssetCheckSeverity.WARN),
    _check(ROAST_METRICS, "metrics_key_unique_not_null", "session_id is unique and not null",
           lambda con: quality.key_violations(con, "telemetry.roast_metrics", ("session_id",)), blocking=True),
    _check(ROAST_METRICS, "event_order", "marked events in order CHARGE < DRY END < FCs < FCe <= DROP",
           quality.event_order_violations),
    _check(ROAST_METRICS, "agrees_with_artisan",
           "our metrics agree with every value Artisan's computed block carries (times ±0.1 s, BT/MET/ΔT ±0.1 °C, RoR ±0.1 °C/min, AUC ±1 °C·min, DTR ±0.1 pt, weight loss ±0.5 pt)",
           quality.artisan_disagreements, severity=dg.AssetCheckSeverity.WARN),
]
