"""Asset checks on the telemetry tables (rules in `telemetry/quality.py`)."""

import dagster as dg

from daena_pipelines.lib.checks import rows_result, rule_check
from daena_pipelines.lib.warehouse import WarehouseResource
from daena_pipelines.lib.specs import key
from daena_pipelines.telemetry import contract, quality

SESSIONS, POINTS, ROAST_METRICS = key(contract.SESSIONS), key(contract.POINTS), key(contract.ROAST_METRICS)
INGEST_ERRORS = key(contract.INGEST_ERRORS)
DOCS = "docs/telemetry.md#agreement-with-artisan-and-the-checks"

telemetry_checks = [
    rule_check(SESSIONS, "session_id_unique_not_null", DOCS, "session_id is unique and not null",
               lambda con: quality.key_violations(con, contract.SESSIONS, ("session_id",)), blocking=True),
    rule_check(POINTS, "sample_key_unique_not_null", DOCS, "(session_id, t_s) is unique and not null",
               lambda con: quality.key_violations(con, contract.POINTS, ("session_id", "t_s")), blocking=True),
    rule_check(POINTS, "time_monotonic", DOCS, "t_s strictly increases within each session", quality.non_monotonic_time, blocking=True),
    rule_check(POINTS, "temperatures_plausible", DOCS,
               f"BT within {quality.BT_RANGE_C} °C and ET within {quality.ET_RANGE_C} °C",
               quality.implausible_temperatures, severity=dg.AssetCheckSeverity.WARN),
    rule_check(SESSIONS, "quality_flags", DOCS,
               "no session loaded with a quality flag (suspicious but possible input, e.g. a unit marker that does not fit the data)",
               quality.flagged_sessions, severity=dg.AssetCheckSeverity.WARN),
    rule_check(ROAST_METRICS, "metrics_key_unique_not_null", DOCS, "session_id is unique and not null",
               lambda con: quality.key_violations(con, contract.ROAST_METRICS, ("session_id",)), blocking=True),
    rule_check(ROAST_METRICS, "event_order", DOCS, "marked events in order CHARGE < DRY END < FCs < FCe <= DROP",
               quality.event_order_violations),
    rule_check(INGEST_ERRORS, "landing_files_loaded", DOCS,
               "every roast file in the landing folders loaded (a rejected one is reported until it is fixed or removed)",
               quality.rejected_files, severity=dg.AssetCheckSeverity.WARN),
]


AGREEMENT = ("our metrics agree with every value Artisan's computed block carries (times ±0.1 s, BT/MET/ΔT ±0.1 °C, "
             "RoR ±0.1 °C/min, AUC ±1 °C·min, DTR ±0.1 pt, weight loss ±0.5 pt)")


@dg.asset_check(asset=ROAST_METRICS, name="agrees_with_artisan", description=AGREEMENT)
def agrees_with_artisan(duckdb: WarehouseResource) -> dg.AssetCheckResult:
    """Warns on disagreements, and when nothing could be compared: no green over an empty comparison."""
    with duckdb.get_connection() as con:
        rows = quality.artisan_disagreements(con)
        compared = {r["metric"]: r["compared"] for r in quality.artisan_agreement(con)}
        sessions = con.execute(f"SELECT count(*) FROM {contract.ROAST_METRICS}").fetchone()[0]
        with_artisan = con.execute(
            "SELECT count(DISTINCT session_id) FROM telemetry.sessions WHERE artisan_computed IS NOT NULL"
        ).fetchone()[0]
    counts = {"sessions_compared": dg.MetadataValue.int(with_artisan),
              "sessions_skipped": dg.MetadataValue.int(sessions - with_artisan),
              "values_compared": dg.MetadataValue.int(sum(compared.values()))}
    if not rows and not compared:
        return dg.AssetCheckResult(
            passed=False, severity=dg.AssetCheckSeverity.WARN, metadata=counts,
            description=f"compared 0, skipped {sessions}: no session carries Artisan's computed values "
            f"(sidecar recordings have none), so agreement is unknown. What to do: {DOCS}",
        )
    return rows_result(rows, f"{AGREEMENT}: compared {with_artisan} sessions, skipped {sessions - with_artisan}",
                       "value off Artisan's", dg.AssetCheckSeverity.WARN, DOCS, counts)
