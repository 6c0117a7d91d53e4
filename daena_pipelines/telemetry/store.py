"""telemetry.* tables: DDL and the all-or-nothing write of a batch of sessions."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import duckdb
import numpy as np
import pyarrow as pa

from daena_pipelines.db import transaction
from daena_pipelines.telemetry.model import ARTISAN_COLUMNS, SessionRows


METRIC_COLUMNS = {
    "charge_bt_c": "DOUBLE", "tp_s": "DOUBLE", "tp_bt_c": "DOUBLE", "dry_end_s": "DOUBLE", "fcs_s": "DOUBLE",
    "fcs_bt_c": "DOUBLE", "fce_s": "DOUBLE", "drop_s": "DOUBLE", "drop_bt_c": "DOUBLE", "total_s": "DOUBLE",
    "drying_s": "DOUBLE", "maillard_s": "DOUBLE", "development_s": "DOUBLE", "dtr_pct": "DOUBLE",
    "auc_c_min": "DOUBLE", "auc_base_c": "DOUBLE", "auc_begin": "VARCHAR", "max_ror_c_per_min": "DOUBLE",
    "ror_at_fcs_c_per_min": "DOUBLE", "crash": "BOOLEAN", "flick": "BOOLEAN", "ror_spikes": "INTEGER",
    "ror_crashes": "INTEGER", "weight_loss_pct": "DOUBLE",
    **{column: "DOUBLE" for column in ARTISAN_COLUMNS},
    "artisan_dtr_pct": "DOUBLE",
}

SESSION_COLUMNS = {
    "session_id": "VARCHAR PRIMARY KEY", "source_format": "VARCHAR NOT NULL", "source": "VARCHAR NOT NULL",
    "source_path": "VARCHAR NOT NULL", "content_sha256": "VARCHAR NOT NULL", "roasted_at": "TIMESTAMPTZ",
    "machine": "VARCHAR", "beans": "VARCHAR", "title": "VARCHAR", "notes": "VARCHAR",
    "batch_weight_g": "DOUBLE", "roasted_weight_g": "DOUBLE", "original_unit": "VARCHAR NOT NULL",
    "sample_interval_s": "DOUBLE", "control_unit": "VARCHAR", "roast_uuid": "VARCHAR", "settings": "JSON",
    "ingested_at": "TIMESTAMPTZ NOT NULL",
}

POINT_COLUMNS = ("t_s", "bt_c", "et_c", "ror_c_per_min", "heater", "fan", "drum")

DDL = f"""
CREATE SCHEMA IF NOT EXISTS telemetry;
CREATE TABLE IF NOT EXISTS telemetry.sessions ({", ".join(f"{c} {t}" for c, t in SESSION_COLUMNS.items())});
CREATE TABLE IF NOT EXISTS telemetry.points (
    session_id VARCHAR NOT NULL, t_s DOUBLE NOT NULL, bt_c DOUBLE, et_c DOUBLE, ror_c_per_min DOUBLE,
    heater DOUBLE, fan DOUBLE, drum DOUBLE, extra MAP(VARCHAR, DOUBLE));
CREATE TABLE IF NOT EXISTS telemetry.roast_metrics (
    session_id VARCHAR PRIMARY KEY, {", ".join(f"{c} {t}" for c, t in METRIC_COLUMNS.items())});
CREATE TABLE IF NOT EXISTS telemetry.ingest_errors (
    source_path VARCHAR NOT NULL, content_sha256 VARCHAR, error_kind VARCHAR NOT NULL,
    message VARCHAR NOT NULL, quarantined_path VARCHAR, seen_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS telemetry.source_files (
    source_path VARCHAR NOT NULL, content_sha256 VARCHAR NOT NULL, size_bytes BIGINT NOT NULL,
    status VARCHAR NOT NULL, session_id VARCHAR, detail VARCHAR, seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source_path, content_sha256));
COMMENT ON COLUMN telemetry.points.t_s IS 'seconds from CHARGE (negative before CHARGE)';
COMMENT ON COLUMN telemetry.points.ror_c_per_min IS 'BT rate of rise, °C/min: 60 x least-squares slope over t ± 15 s, CHARGE..DROP only';
COMMENT ON COLUMN telemetry.points.extra IS 'other channels of the source, in the source''s units';
COMMENT ON COLUMN telemetry.source_files.status IS 'loaded | replaced | duplicate | rejected';
"""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(DDL)


POINTS_SCHEMA = pa.schema(
    # session_id dictionary-encoded: one string per session instead of one per sample
    [("session_id", pa.dictionary(pa.int32(), pa.string())), *[(name, pa.float64()) for name in POINT_COLUMNS], ("extra", pa.map_(pa.string(), pa.float64()))]
)


@dataclass
class FileOutcome:
    source_path: str
    content_sha256: str
    size_bytes: int
    status: str
    session_id: str | None = None
    detail: str | None = None


def points_table(batch: list[SessionRows]) -> pa.Table:
    """telemetry.points rows of a batch of sessions, built column-wise (NaN becomes NULL)."""
    lengths = np.array([len(rows.points["t_s"]) for rows in batch])
    session_index = np.repeat(np.arange(len(batch), dtype=np.int32), lengths)
    columns = [pa.DictionaryArray.from_arrays(session_index, [rows.session["session_id"] for rows in batch])]
    columns += [pa.array(np.concatenate([rows.points[name] for rows in batch]), type=pa.float64(), from_pandas=True) for name in POINT_COLUMNS]
    # extra: each sample of session i is a map of that session's k_i channels
    channel_counts = np.array([len(rows.extra) for rows in batch])
    offsets = np.concatenate(([0], np.cumsum(np.repeat(channel_counts, lengths)))).astype(np.int32)
    names = [name for rows in batch for name in rows.extra]
    first_name = np.concatenate(([0], np.cumsum(channel_counts)[:-1]))
    key_index = np.concatenate(
        [np.tile(np.arange(k), n) + base for k, n, base in zip(channel_counts, lengths, first_name)] or [np.empty(0, int)]
    )
    values = [np.column_stack(list(rows.extra.values())).ravel() for rows in batch if rows.extra]
    items = pa.array(np.concatenate(values) if values else np.empty(0), type=pa.float64(), from_pandas=True)
    keys = pa.array(names, type=pa.string()).take(key_index.astype(np.int64))
    columns.append(pa.MapArray.from_arrays(pa.array(offsets), keys, items))
    return pa.Table.from_arrays(columns, schema=POINTS_SCHEMA)


def _rows_table(rows: list[dict], columns: list[str]) -> pa.Table:
    return pa.table({c: [row.get(c) for row in rows] for c in columns})


def write_batch(
    con: duckdb.DuckDBPyConnection,
    batch: list[SessionRows],
    outcomes: list[FileOutcome],
    errors: list[dict],
    replaced_session_ids: list[str],
    seen_at: datetime,
) -> None:
    """Write sessions, their points and metrics, file outcomes and errors in ONE transaction:
    a crash leaves either all of a session or none of it."""
    with transaction(con):
        if replaced_session_ids:
            stale = pa.table({"session_id": replaced_session_ids})
            con.register("stale_sessions", stale)
            for table in ("points", "roast_metrics", "sessions"):
                con.execute(f"DELETE FROM telemetry.{table} WHERE session_id IN (SELECT session_id FROM stale_sessions)")
            con.unregister("stale_sessions")
        if batch:
            sessions = _rows_table([r.session for r in batch], [c for c in SESSION_COLUMNS])
            con.register("new_sessions", sessions)
            con.execute(f"INSERT INTO telemetry.sessions BY NAME SELECT * REPLACE (settings::JSON AS settings) FROM new_sessions")
            con.register("new_points", points_table(batch))
            con.execute("INSERT INTO telemetry.points BY NAME SELECT * FROM new_points")
            metrics = _rows_table([{"session_id": r.session["session_id"], **r.metrics} for r in batch], ["session_id", *METRIC_COLUMNS])
            con.register("new_metrics", metrics)
            con.execute("INSERT INTO telemetry.roast_metrics BY NAME SELECT * FROM new_metrics")
            for view in ("new_sessions", "new_points", "new_metrics"):
                con.unregister(view)
        if errors:
            con.register("new_errors", _rows_table([{**e, "seen_at": seen_at} for e in errors], ["source_path", "content_sha256", "error_kind", "message", "quarantined_path", "seen_at"]))
            con.execute("INSERT INTO telemetry.ingest_errors BY NAME SELECT * FROM new_errors")
            con.unregister("new_errors")
        if outcomes:
            files = pa.table(
                {
                    "source_path": [o.source_path for o in outcomes],
                    "content_sha256": [o.content_sha256 for o in outcomes],
                    "size_bytes": [o.size_bytes for o in outcomes],
                    "status": [o.status for o in outcomes],
                    "session_id": [o.session_id for o in outcomes],
                    "detail": [o.detail for o in outcomes],
                    "seen_at": [seen_at] * len(outcomes),
                }
            )
            con.register("new_files", files)
            con.execute("INSERT OR REPLACE INTO telemetry.source_files BY NAME SELECT * FROM new_files")
            con.unregister("new_files")
