"""Data-quality rules for telemetry.* as plain SQL; each returns the offending rows.

The Dagster checks in `checks.py` turn these into pass/fail with the rows as metadata.
"""
from __future__ import annotations

import re
from pathlib import Path

import duckdb

# Physically plausible ranges, °C. Beans never get near 300 °C in a roaster; drum/air
# probes on some machines read hotter, so ET gets more room.
BT_RANGE_C = (-30.0, 300.0)
ET_RANGE_C = (-30.0, 450.0)

# How far our metrics may sit from Artisan's own `computed` values before we call it a
# disagreement: (our column, Artisan column, absolute tolerance). Artisan rounds what it stores
# (times and temperatures to 0.1 in the profile's unit, RoR to 0.1 per minute, AUC to whole
# °C·min, weight loss to a whole percent in recent versions); ours are not rounded, so each
# tolerance is Artisan's rounding step plus a margin. Artisan's fcs_ror is its displayed
# (smoothed) RoR and is not compared (docs/telemetry.md).
_TIME_S, _TEMP_C, _RATE, _AUC, _PCT = 0.1, 0.1, 0.1, 1.0, 0.1
ARTISAN_TOLERANCES = (
    ("total_s", "artisan_total_s", _TIME_S),
    ("tp_s", "artisan_tp_s", _TIME_S),
    ("dry_end_s", "artisan_dry_end_s", _TIME_S),
    ("fcs_s", "artisan_fcs_s", _TIME_S),
    ("fce_s", "artisan_fce_s", _TIME_S),
    ("drop_s", "artisan_drop_s", _TIME_S),
    ("drying_s", "artisan_drying_s", _TIME_S),
    ("maillard_s", "artisan_maillard_s", _TIME_S),
    ("development_s", "artisan_development_s", _TIME_S),
    ("dtr_pct", "artisan_dtr_pct", _PCT),
    ("charge_bt_c", "artisan_charge_bt_c", _TEMP_C),
    ("tp_bt_c", "artisan_tp_bt_c", _TEMP_C),
    ("dry_bt_c", "artisan_dry_bt_c", _TEMP_C),
    ("fcs_bt_c", "artisan_fcs_bt_c", _TEMP_C),
    ("fce_bt_c", "artisan_fce_bt_c", _TEMP_C),
    ("drop_bt_c", "artisan_drop_bt_c", _TEMP_C),
    ("met_c", "artisan_met_c", _TEMP_C),
    ("dry_phase_ror_c_per_min", "artisan_dry_phase_ror_c_per_min", _RATE),
    ("mid_phase_ror_c_per_min", "artisan_mid_phase_ror_c_per_min", _RATE),
    ("finish_phase_ror_c_per_min", "artisan_finish_phase_ror_c_per_min", _RATE),
    ("total_ror_c_per_min", "artisan_total_ror_c_per_min", _RATE),
    ("dry_phase_delta_c", "artisan_dry_phase_delta_c", _TEMP_C),
    ("mid_phase_delta_c", "artisan_mid_phase_delta_c", _TEMP_C),
    ("finish_phase_delta_c", "artisan_finish_phase_delta_c", _TEMP_C),
    ("auc_c_min", "artisan_auc_c_min", _AUC),
    ("dry_phase_auc_c_min", "artisan_dry_phase_auc_c_min", _AUC),
    ("mid_phase_auc_c_min", "artisan_mid_phase_auc_c_min", _AUC),
    ("finish_phase_auc_c_min", "artisan_finish_phase_auc_c_min", _AUC),
    ("weight_loss_pct", "artisan_weight_loss_pct", 0.5),
)


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def key_violations(con: duckdb.DuckDBPyConnection, table: str, key: tuple[str, ...]) -> list[dict]:
    """Key values that are NULL or appear more than once."""
    cols = ", ".join(key)
    nulls = " OR ".join(f"{c} IS NULL" for c in key)
    return _rows(
        con,
        f"SELECT {cols}, count(*) AS n, bool_or({nulls}) AS has_null FROM {table} "
        f"GROUP BY ALL HAVING count(*) > 1 OR bool_or({nulls}) ORDER BY n DESC LIMIT 50",
    )


def non_monotonic_time(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Sessions whose samples, in stored order, do not have strictly increasing t_s."""
    return _rows(
        con,
        """
        SELECT session_id, count(*) AS bad_steps FROM (
            SELECT session_id, t_s, lag(t_s) OVER (PARTITION BY session_id ORDER BY rowid) AS previous
            FROM telemetry.points)
        WHERE previous IS NOT NULL AND t_s <= previous
        GROUP BY session_id ORDER BY bad_steps DESC LIMIT 50
        """,
    )


def implausible_temperatures(con: duckdb.DuckDBPyConnection) -> list[dict]:
    (bt_lo, bt_hi), (et_lo, et_hi) = BT_RANGE_C, ET_RANGE_C
    return _rows(
        con,
        f"""
        SELECT session_id, count(*) AS samples, min(bt_c) AS min_bt_c, max(bt_c) AS max_bt_c,
               min(et_c) AS min_et_c, max(et_c) AS max_et_c
        FROM telemetry.points
        WHERE bt_c NOT BETWEEN {bt_lo} AND {bt_hi} OR et_c NOT BETWEEN {et_lo} AND {et_hi}
        GROUP BY session_id ORDER BY samples DESC LIMIT 50
        """,
    )


def event_order_violations(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Sessions whose marked events are not in roast order CHARGE(0) < DRY END < FCs < FCe < DROP."""
    return _rows(
        con,
        """
        SELECT session_id, dry_end_s, fcs_s, fce_s, drop_s FROM telemetry.roast_metrics
        WHERE dry_end_s <= 0 OR fcs_s <= 0 OR drop_s <= 0
           OR dry_end_s >= fcs_s OR fcs_s >= fce_s OR fcs_s >= drop_s OR fce_s > drop_s
           OR dry_end_s >= drop_s
        ORDER BY session_id
        """,
    )


def flagged_sessions(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Sessions loaded with quality flags (see telemetry/validate.py): suspicious, not impossible."""
    return _rows(
        con,
        """
        SELECT session_id, source_path, settings->'quality_flags' AS quality_flags FROM telemetry.sessions
        WHERE json_array_length(settings->'quality_flags') > 0 ORDER BY source_path LIMIT 50
        """,
    )


def rejected_files(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Landing files whose latest content the ingest rejected, with the reason and the quarantined
    copy. Later runs skip such a file as unchanged, so only this rule keeps it in view; a file
    fixed since (its new content loaded) or removed from its folder no longer counts."""
    rows = _rows(
        con,
        """
        SELECT f.source_path AS file, f.detail AS problem,
               (SELECT max(e.quarantined_path) FROM telemetry.ingest_errors e
                WHERE e.source_path = f.source_path AND e.content_sha256 = f.content_sha256) AS quarantined_copy
        FROM (SELECT * FROM telemetry.source_files
              QUALIFY row_number() OVER (PARTITION BY source_path ORDER BY seen_at DESC) = 1) f
        WHERE f.status = 'rejected' ORDER BY f.source_path
        """,
    )
    return [row for row in rows if _on_disk(row["file"])]


def _on_disk(stored_path: str) -> bool:
    """Whether a stored file name is still there; the bytes of a name that is no valid UTF-8 are
    stored backslash-escaped (ingest.storable: a lone surrogate as ``\\udcXX``), turned back here."""
    name = re.sub(r"\\udc([89a-f][0-9a-f])", lambda m: chr(0xDC00 + int(m[1], 16)), stored_path)
    return Path(stored_path).exists() or Path(name).exists()


def _comparisons() -> str:
    """One row per (session, metric) that Artisan carries: ours, theirs and whether they agree."""
    return " UNION ALL ".join(
        f"""SELECT session_id, '{ours}' AS metric, {ours} AS ours, {theirs} AS artisan, {tol} AS tolerance,
                   coalesce(abs({ours} - {theirs}) <= {tol}, false) AS agrees
            FROM telemetry.roast_metrics WHERE {theirs} IS NOT NULL"""
        for ours, theirs, tol in ARTISAN_TOLERANCES
    )


def artisan_disagreements(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """One row per (session, metric) where ours and Artisan's differ beyond tolerance (or ours is missing)."""
    return _rows(
        con,
        f"""SELECT c.session_id, s.source_path, c.metric, c.ours, c.artisan, c.ours - c.artisan AS difference, c.tolerance
            FROM ({_comparisons()}) c JOIN telemetry.sessions s USING (session_id)
            WHERE NOT c.agrees ORDER BY c.metric, s.source_path""",
    )


def artisan_agreement(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per metric: how many sessions carry Artisan's value and how many of ours agree with it."""
    return _rows(
        con,
        f"""SELECT metric, count(*) AS compared, count(*) FILTER (WHERE agrees) AS within_tolerance
            FROM ({_comparisons()}) GROUP BY metric ORDER BY metric""",
    )


def artisan_file_agreement(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per session (source file): how many of Artisan's values it carries, how many of ours
    agree, and which metrics do not."""
    return _rows(
        con,
        f"""SELECT s.source_path, c.session_id, m.charge_inferred, m.dry_end_inferred, s.original_unit,
                   count(*) AS compared, count(*) FILTER (WHERE c.agrees) AS agreeing,
                   string_agg(c.metric, ', ' ORDER BY c.metric) FILTER (WHERE NOT c.agrees) AS disagreeing
            FROM ({_comparisons()}) c JOIN telemetry.sessions s USING (session_id) JOIN telemetry.roast_metrics m USING (session_id)
            GROUP BY ALL ORDER BY s.source_path""",
    )
