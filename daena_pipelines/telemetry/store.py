"""telemetry.* tables: DDL and the all-or-nothing write of a batch of sessions."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import repeat
from operator import index, is_not, itemgetter

import duckdb
import numpy as np
import pyarrow as pa

from daena_pipelines.db import insert
from daena_pipelines.migrations import Migration, migrate
from daena_pipelines.telemetry.contract import METRIC_COLUMNS, METRIC_COLUMNS_BY_VERSION, POINTS_WITH_EXTRA
from daena_pipelines.telemetry.model import POINT_COLUMNS, SessionRows


SESSION_COLUMNS_V1 = {
    "session_id": "VARCHAR PRIMARY KEY", "source_format": "VARCHAR NOT NULL", "source": "VARCHAR NOT NULL",
    "source_path": "VARCHAR NOT NULL", "content_sha256": "VARCHAR NOT NULL", "roasted_at": "TIMESTAMPTZ",
    "machine": "VARCHAR", "beans": "VARCHAR", "title": "VARCHAR", "notes": "VARCHAR",
    "batch_weight_g": "DOUBLE", "roasted_weight_g": "DOUBLE", "original_unit": "VARCHAR NOT NULL",
    "sample_interval_s": "DOUBLE", "control_unit": "VARCHAR", "roast_uuid": "VARCHAR", "settings": "JSON",
    "ingested_at": "TIMESTAMPTZ NOT NULL",
}
SESSION_COLUMNS_V2 = {"charge_inferred": "BOOLEAN", "events": "JSON", "artisan_computed": "JSON"}
SESSION_COLUMNS_V3 = {"extra_channels": "VARCHAR[]"}
SESSION_COLUMNS = {**SESSION_COLUMNS_V1, **SESSION_COLUMNS_V2, **SESSION_COLUMNS_V3}

# What one session's values can make a write fail with (Arrow conversion, DuckDB casts and keys);
# other errors (missing tables, I/O) concern every session alike and fail the run.
VALUE_ERRORS = (ValueError, TypeError, OverflowError, UnicodeError, duckdb.DataError, duckdb.IntegrityError, duckdb.InvalidInputException)

# the columns the ingest writes to the smaller tables, with their SQL types (store._column)
INGEST_ERRORS_COLUMNS = {"source_path": "VARCHAR", "content_sha256": "VARCHAR", "error_kind": "VARCHAR", "message": "VARCHAR",
                         "quarantined_path": "VARCHAR", "seen_at": "TIMESTAMPTZ"}
SOURCE_FILES_COLUMNS = {"source_path": "VARCHAR", "content_sha256": "VARCHAR", "size_bytes": "BIGINT", "status": "VARCHAR",
                        "session_id": "VARCHAR", "detail": "VARCHAR", "seen_at": "TIMESTAMPTZ"}

DDL_V1 = f"""
CREATE SCHEMA IF NOT EXISTS telemetry;
CREATE TABLE IF NOT EXISTS telemetry.sessions ({", ".join(f"{c} {t}" for c, t in SESSION_COLUMNS_V1.items())});
CREATE TABLE IF NOT EXISTS telemetry.points (
    session_id VARCHAR NOT NULL, t_s DOUBLE NOT NULL, bt_c DOUBLE, et_c DOUBLE, ror_c_per_min DOUBLE,
    heater DOUBLE, fan DOUBLE, drum DOUBLE, extra MAP(VARCHAR, DOUBLE));
CREATE TABLE IF NOT EXISTS telemetry.roast_metrics (
    session_id VARCHAR PRIMARY KEY, {", ".join(f"{c} {t}" for c, t in METRIC_COLUMNS_BY_VERSION[1].items())});
CREATE TABLE IF NOT EXISTS telemetry.ingest_errors (
    source_path VARCHAR NOT NULL, content_sha256 VARCHAR, error_kind VARCHAR NOT NULL,
    message VARCHAR NOT NULL, quarantined_path VARCHAR, seen_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS telemetry.source_files (
    source_path VARCHAR NOT NULL, content_sha256 VARCHAR NOT NULL, size_bytes BIGINT NOT NULL,
    status VARCHAR NOT NULL, session_id VARCHAR, detail VARCHAR, seen_at TIMESTAMPTZ NOT NULL,
    PRIMARY KEY (source_path, content_sha256));
-- one row, bumped by every batch write: two concurrent batch writes then conflict on it (write_batch)
CREATE TABLE IF NOT EXISTS telemetry.ingest_commits (batches BIGINT NOT NULL);
INSERT INTO telemetry.ingest_commits SELECT 0 WHERE NOT EXISTS (FROM telemetry.ingest_commits);
COMMENT ON COLUMN telemetry.points.t_s IS 'seconds from CHARGE (negative before CHARGE)';
COMMENT ON COLUMN telemetry.points.ror_c_per_min IS 'BT rate of rise, °C/min: 60 x least-squares slope over t ± 15 s, CHARGE..DROP only';
COMMENT ON COLUMN telemetry.points.extra IS 'other channels of the source, in the source''s units';
COMMENT ON COLUMN telemetry.source_files.status IS 'loaded | replaced | duplicate | rejected';
"""

def _add_metric_columns(columns: dict[str, str]) -> list[str]:
    return [f"ALTER TABLE telemetry.roast_metrics ADD COLUMN IF NOT EXISTS {c} {t}" for c, t in columns.items()]


def _extra_as_lists(con: duckdb.DuckDBPyConnection) -> None:
    """Migration 3: each point's `extra` map becomes `extra_values`, its values in the order of
    the session's `extra_channels` (migration 4 drops the map: DuckDB refuses to commit a column
    dropped from a table updated in the same transaction). A map per sample added ~45 % to the
    cost of writing the points; a list of doubles adds ~3 % (docs/telemetry.md, Performance).
    Every writer gave all samples of a session the same channels in the same order; a warehouse
    where that does not hold is refused rather than migrated with values lost."""
    for table, column, sql_type in (("sessions", "extra_channels", "VARCHAR[]"), ("points", "extra_values", "DOUBLE[]")):
        con.execute(f"ALTER TABLE telemetry.{table} ADD COLUMN IF NOT EXISTS {column} {sql_type}")
    # an empty or NULL map (older writers) both meant: no other channels. One UPDATE only: DuckDB
    # updates a list column of a keyed table as delete + insert, and a second one in the same
    # transaction fails its commit on the key.
    con.execute("""UPDATE telemetry.sessions s SET extra_channels = coalesce(
                       (SELECT arg_min(map_keys(p.extra), p.t_s) FILTER (cardinality(p.extra) > 0)
                        FROM telemetry.points p WHERE p.session_id = s.session_id), [])""")
    mismatched = con.execute("""SELECT count(*) FROM telemetry.points p JOIN telemetry.sessions s USING (session_id)
                                WHERE coalesce(map_keys(p.extra), []) <> s.extra_channels""").fetchone()[0]
    if mismatched:
        raise RuntimeError(f"telemetry migration 3: {mismatched} points carry other extra channels than their session's first sample")
    con.execute("UPDATE telemetry.points SET extra_values = coalesce(map_values(extra), [])")
    con.execute("COMMENT ON COLUMN telemetry.sessions.extra_channels IS 'names of the source''s other channels (empty: none); points.extra_values holds their values in this order'")
    con.execute("COMMENT ON COLUMN telemetry.points.extra_values IS 'values of the session''s extra_channels at this sample, in that order and in the source''s units (NULL: no value); map(extra_channels, extra_values) is the sample''s channel map'")


MIGRATIONS = [
    Migration(1, "telemetry tables as first created", DDL_V1),
    Migration(2, "Artisan phase values, MET, per-phase AUC, inferred CHARGE/DRY END, metrics_version; sessions keep events and Artisan's computed block", [
        *(f"ALTER TABLE telemetry.sessions ADD COLUMN IF NOT EXISTS {c} {t}" for c, t in SESSION_COLUMNS_V2.items()),
        *_add_metric_columns(METRIC_COLUMNS_BY_VERSION[2]),
        "COMMENT ON COLUMN telemetry.roast_metrics.metrics_version IS 'metrics.METRICS_VERSION the row was computed with; NULL = before versioning (1)'",
        "COMMENT ON COLUMN telemetry.sessions.events IS 'marked (or inferred) events as sample indices into the session''s points ordered by t_s'",
    ]),
    Migration(3, "extra channels: names once per session (sessions.extra_channels), values per sample as a list (points.extra_values)", _extra_as_lists),
    Migration(4, "points: the extra map, now in extra_values, dropped", "ALTER TABLE telemetry.points DROP COLUMN extra"),
    # readers that want the map per sample, as points had it before migration 3, without the join
    Migration(5, "view telemetry.points_with_extra: each sample with its extra channels as a map", f"""
        CREATE OR REPLACE VIEW {POINTS_WITH_EXTRA} AS
        SELECT p.* EXCLUDE (extra_values), map(s.extra_channels, p.extra_values) AS extra
        FROM telemetry.points p JOIN telemetry.sessions s USING (session_id)"""),
    # each later version of the contract's metric columns: a migration that adds them
    *(Migration(version, f"roast_metrics: {', '.join(columns)}", _add_metric_columns(columns))
      for version, columns in METRIC_COLUMNS_BY_VERSION.items() if version > 2),
]


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    migrate(con, ["telemetry"])


POINTS_SCHEMA = pa.schema(
    # session_id run-end encoded: one string and one run end per session instead of a string per
    # sample; DuckDB's insert of the column took ~0.02 ms per file against ~0.034 for the
    # dictionary-encoded form (its index per sample; docs/telemetry.md, Performance)
    [("session_id", pa.run_end_encoded(pa.int32(), pa.string())), *[(name, pa.float64()) for name in POINT_COLUMNS], ("extra_values", pa.list_(pa.float64()))]
)


@dataclass
class FileOutcome:
    source_path: str
    content_sha256: str
    size_bytes: int
    status: str
    session_id: str | None = None
    detail: str | None = None


# Arrow columns are built from their buffers, and handed to DuckDB as Arrow C streams
# (db.insert): pyarrow's own converter (pa.array, pa.table) imports pandas on its first call, and
# DuckDB does too (through pyarrow.dataset) for any Arrow object but a stream capsule: ~0.35 s of
# CPU per ingest run, most of a small run's time.
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _validity(valid: np.ndarray) -> pa.Buffer | None:
    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))


def _buffer_array(arrow_type: pa.DataType, values: np.ndarray, valid: np.ndarray) -> pa.Array:
    return pa.Array.from_buffers(arrow_type, len(values), [_validity(valid), pa.py_buffer(values)])


def _doubles(values: np.ndarray) -> pa.Array:
    """float64, NaN as NULL (a dropped sample)."""
    values = np.ascontiguousarray(values, dtype=np.float64)
    return _buffer_array(pa.float64(), values, values == values)


def _not_none(values: Sequence) -> np.ndarray:
    return np.fromiter(map(is_not, values, repeat(None)), bool, len(values))


def _filled(values: Sequence, valid: np.ndarray, fill: object) -> Sequence:
    """`values` with `fill` for each None (`valid`: which are not)."""
    if valid.all():
        return values
    filled = np.array(values, dtype=object)  # (C loops over the values: per value, Python code costs ~10x)
    filled[~valid] = fill
    return filled


def _strings(values: Sequence) -> pa.Array:
    """UTF-8 strings, None as NULL (a value that is not valid Unicode raises UnicodeError)."""
    valid = _not_none(values)
    encoded = list(map(str.encode, _filled(values, valid, "")))
    offsets = np.zeros(len(encoded) + 1, dtype=np.int32)
    np.cumsum(np.fromiter(map(len, encoded), np.int64, len(encoded)), out=offsets[1:])
    return pa.Array.from_buffers(pa.string(), len(values), [_validity(valid), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))])


def _column(values: Sequence, sql_type: str) -> pa.Array:
    """A column of Python values (None as NULL) as the Arrow type of its SQL type."""
    base = sql_type.split()[0]
    if base in ("VARCHAR", "JSON"):  # JSON text, cast by the insert
        return _strings(values)
    valid = _not_none(values)
    if base == "DOUBLE":  # a NaN stays NaN: only None is NULL, as when pyarrow converted these
        # fromiter, not np.array: a list or tuple among the values is refused, not spread over the rows
        return _buffer_array(pa.float64(), np.fromiter(_filled(values, valid, 0.0), np.float64, len(values)), valid)
    if base in ("INTEGER", "BIGINT"):
        arrow_type, dtype = (pa.int32(), np.int32) if base == "INTEGER" else (pa.int64(), np.int64)
        # index(): a float is refused (TypeError), not cut to its integer part by the conversion
        return _buffer_array(arrow_type, np.fromiter((0 if v is None else index(v) for v in values), dtype, len(values)), valid)
    if base == "BOOLEAN":
        bits = np.packbits(np.fromiter((bool(v) for v in values), bool, len(values)), bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [_validity(valid), pa.py_buffer(bits)])
    if base == "TIMESTAMPTZ":  # the instant, in microseconds (validation allows aware times only)
        micros = np.fromiter((0 if v is None else (v - _EPOCH) // _MICROSECOND for v in values), np.int64, len(values))
        return _buffer_array(pa.timestamp("us", tz="UTC"), micros, valid)
    if base == "VARCHAR[]":
        lengths = [0 if v is None else len(v) for v in values]
        offsets = np.zeros(len(values) + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        items = _strings([item for v in values if v is not None for item in v])
        return pa.Array.from_buffers(pa.list_(pa.string()), len(values), [_validity(valid), pa.py_buffer(offsets)], children=[items])
    raise TypeError(f"no Arrow column for SQL type {sql_type}")


def points_table(batch: list[SessionRows]) -> pa.Table:
    """telemetry.points rows of a batch of sessions, built column-wise (NaN becomes NULL)."""
    lengths = np.array([rows.points.shape[1] for rows in batch], dtype=np.int64)
    samples = int(lengths.sum())
    runs = np.flatnonzero(lengths)  # a run is never empty: a session without samples has none
    run_ends = np.cumsum(lengths[runs]).astype(np.int32)
    session_ids = _strings([batch[i].session["session_id"] for i in runs])
    columns = [pa.Array.from_buffers(POINTS_SCHEMA.field("session_id").type, samples, [None],
                                     children=[pa.Array.from_buffers(pa.int32(), len(runs), [None, pa.py_buffer(run_ends)]), session_ids])]
    values = np.concatenate([rows.points for rows in batch], axis=1)  # one row per column, each contiguous
    columns += [_doubles(column) for column in values]
    # extra_values: each sample of session i lists that session's k_i channels (none: an empty list)
    channel_counts = np.array([len(rows.extra) for rows in batch])
    offsets = np.zeros(samples + 1, dtype=np.int32)
    np.cumsum(np.repeat(channel_counts, lengths), out=offsets[1:])
    extras = [np.column_stack(list(rows.extra.values())).ravel() for rows in batch if rows.extra]
    items = _doubles(np.concatenate(extras) if extras else np.empty(0))
    columns.append(pa.Array.from_buffers(POINTS_SCHEMA.field("extra_values").type, samples, [None, pa.py_buffer(offsets)], children=[items]))
    return pa.Table.from_arrays(columns, schema=POINTS_SCHEMA)


def _rows_table(rows: list[dict], columns: dict[str, str]) -> pa.Table:
    """`rows` as a table of `columns` (name -> SQL type); a key a row lacks is NULL."""
    names = list(columns)
    try:  # the rows' values column by column, transposed in C (per value, Python code costs ~10x)
        by_column = list(zip(*map(itemgetter(*names), rows))) if len(names) > 1 else [[row[names[0]] for row in rows]]
    except KeyError:
        by_column = [[row.get(c) for row in rows] for c in names]
    if not rows:
        by_column = [[] for _ in names]
    return pa.Table.from_arrays([_column(values, t) for values, t in zip(by_column, columns.values())], names=names)


def insert_metrics(con: duckdb.DuckDBPyConnection, rows: list[dict]) -> None:
    """telemetry.roast_metrics rows: session_id and the contract's metric columns."""
    insert(con, "telemetry.roast_metrics", _rows_table(rows, {"session_id": "VARCHAR", **METRIC_COLUMNS}))


def write_batch(
    con: duckdb.DuckDBPyConnection,
    batch: list[SessionRows],
    outcomes: list[FileOutcome],
    errors: list[dict],
    replaced_session_ids: list[str],
    seen_at: datetime,
) -> None:
    """Write sessions, their points and metrics, file outcomes and errors, inside the caller's
    transaction (one per batch): a crash leaves either all of a session or none of it.

    Every batch bumps `telemetry.ingest_commits`. An update is a delete, and DuckLake (like DuckDB
    between threads) refuses to commit a delete from a table another transaction deleted from since
    this one began: of two concurrent batch writes one commits, the other fails and is retried
    (db.retrying_transaction) against the state that now includes the first one's sessions."""
    if not (batch or outcomes or errors or replaced_session_ids):
        return  # e.g. a concurrent run ingested all of them first: nothing to commit, nothing to conflict
    con.execute("UPDATE telemetry.ingest_commits SET batches = batches + 1")
    if replaced_session_ids:
        stale = pa.Table.from_arrays([_strings(replaced_session_ids)], names=["session_id"])
        for table in ("points", "roast_metrics", "sessions"):
            con.register("stale_sessions", stale.__arrow_c_stream__())  # a stream is read once
            con.execute(f"DELETE FROM telemetry.{table} WHERE session_id IN (SELECT session_id FROM stale_sessions)")
        con.unregister("stale_sessions")
    if batch:
        insert(con, "telemetry.sessions", _rows_table([r.session for r in batch], SESSION_COLUMNS),
               select="* REPLACE (settings::JSON AS settings, events::JSON AS events, artisan_computed::JSON AS artisan_computed)")
        insert(con, "telemetry.points", points_table(batch))
        metrics = [{"session_id": r.session["session_id"], **r.metrics} for r in batch]
        insert_metrics(con, metrics)
    if errors:
        insert(con, "telemetry.ingest_errors", _rows_table([{**e, "seen_at": seen_at} for e in errors], INGEST_ERRORS_COLUMNS))
    if outcomes:
        files = _rows_table([{**vars(o), "seen_at": seen_at} for o in outcomes], SOURCE_FILES_COLUMNS)  # (asdict's deep copy is slow and not needed)
        con.register("seen_files", files.__arrow_c_stream__())
        # a file seen again replaces its row (by key, not INSERT OR REPLACE: DuckLake has no keys)
        con.execute("DELETE FROM telemetry.source_files f USING seen_files s "
                    "WHERE f.source_path = s.source_path AND f.content_sha256 = s.content_sha256")
        con.unregister("seen_files")
        insert(con, "telemetry.source_files", files)
