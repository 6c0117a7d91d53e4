"""Data-quality rules for telemetry.* as plain SQL; each returns the offending rows.

The Dagster checks in `checks.py` turn these into pass/fail with the rows as metadata.
"""
from __future__ import annotations

import duckdb

# Physically plausible ranges, °C. Beans never get near 300 °C in a roaster; drum/air
# probes on some machines read hotter, so ET gets more room.
BT_RANGE_C = (-30.0, 300.0)
ET_RANGE_C = (-30.0, 450.0)

# How far our metrics may sit from Artisan's own `computed` values before we call it a
# disagreement: (our column, Artisan column, absolute tolerance, relative tolerance).
ARTISAN_TOLERANCES = (
    ("total_s", "artisan_total_s", 1.0, 0.0),
    ("fcs_s", "artisan_fcs_s", 1.0, 0.0),
    ("drop_s", "artisan_drop_s", 1.0, 0.0),
    ("drop_bt_c", "artisan_drop_bt_c", 0.1, 0.0),
    ("tp_s", "artisan_tp_s", 2.0, 0.0),
    ("auc_c_min", "artisan_auc_c_min", 0.0, 0.02),
    ("dtr_pct", "artisan_dtr_pct", 0.5, 0.0),
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


def artisan_disagreements(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """One row per (session, metric) where ours and Artisan's differ beyond tolerance."""
    parts = [
        f"""SELECT session_id, '{ours}' AS metric, {ours} AS ours, {theirs} AS artisan,
                   {ours} - {theirs} AS difference, {abs_tol} + {rel_tol} * abs({theirs}) AS tolerance
            FROM telemetry.roast_metrics
            WHERE {theirs} IS NOT NULL AND {theirs} <> 0
              AND ({ours} IS NULL OR abs({ours} - {theirs}) > {abs_tol} + {rel_tol} * abs({theirs}))"""
        for ours, theirs, abs_tol, rel_tol in ARTISAN_TOLERANCES
    ]
    return _rows(con, " UNION ALL ".join(parts) + " ORDER BY metric, session_id")


def artisan_agreement(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Per metric: how many sessions carry Artisan's value and how many of ours agree with it."""
    parts = [
        f"""SELECT '{ours}' AS metric, count(*) AS compared,
                   count(*) FILTER (WHERE abs({ours} - {theirs}) <= {abs_tol} + {rel_tol} * abs({theirs})) AS within_tolerance
            FROM telemetry.roast_metrics WHERE {theirs} IS NOT NULL AND {theirs} <> 0"""
        for ours, theirs, abs_tol, rel_tol in ARTISAN_TOLERANCES
    ]
    return _rows(con, " UNION ALL ".join(parts))
