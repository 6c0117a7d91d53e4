"""Asset checks on the telemetry tables (rules in `telemetry/quality.py`)."""

import dagster as dg

from daena_pipelines.lib.checks import rule_check
from daena_pipelines.lib.specs import key
from daena_pipelines.telemetry import contract, quality

SESSIONS, POINTS, ROAST_METRICS = key(contract.SESSIONS), key(contract.POINTS), key(contract.ROAST_METRICS)

telemetry_checks = [
    rule_check(SESSIONS, "session_id_unique_not_null", "session_id is unique and not null",
               lambda con: quality.key_violations(con, contract.SESSIONS, ("session_id",)), blocking=True),
    rule_check(POINTS, "sample_key_unique_not_null", "(session_id, t_s) is unique and not null",
               lambda con: quality.key_violations(con, contract.POINTS, ("session_id", "t_s")), blocking=True),
    rule_check(POINTS, "time_monotonic", "t_s strictly increases within each session", quality.non_monotonic_time, blocking=True),
    rule_check(POINTS, "temperatures_plausible",
               f"BT within {quality.BT_RANGE_C} °C and ET within {quality.ET_RANGE_C} °C",
               quality.implausible_temperatures, severity=dg.AssetCheckSeverity.WARN),
    rule_check(SESSIONS, "quality_flags",
               "no session loaded with a quality flag (suspicious but possible input, e.g. a unit marker that does not fit the data)",
               quality.flagged_sessions, severity=dg.AssetCheckSeverity.WARN),
    rule_check(ROAST_METRICS, "metrics_key_unique_not_null", "session_id is unique and not null",
               lambda con: quality.key_violations(con, contract.ROAST_METRICS, ("session_id",)), blocking=True),
    rule_check(ROAST_METRICS, "event_order", "marked events in order CHARGE < DRY END < FCs < FCe <= DROP",
               quality.event_order_violations),
    rule_check(ROAST_METRICS, "agrees_with_artisan",
               "our metrics agree with every value Artisan's computed block carries (times ±0.1 s, BT/MET/ΔT ±0.1 °C, RoR ±0.1 °C/min, AUC ±1 °C·min, DTR ±0.1 pt, weight loss ±0.5 pt)",
               quality.artisan_disagreements, severity=dg.AssetCheckSeverity.WARN),
]
