"""Standard Dagster metadata for a warehouse table: row count, column schema, a preview table."""
from __future__ import annotations

import datetime as dt
import decimal
import json
import math

import duckdb
import dagster as dg

from daena_pipelines.telemetry.contract import EVENT_TIME_COLUMNS

# Units by the project's column-name suffixes (docs/architecture.md): longest suffix first.
UNIT_SUFFIXES = (
    ("_c_per_min", "°C/min"), ("_c_min", "°C·min"), ("_pct", "percent"), ("_c", "°C"), ("_ms", "milliseconds"),
    ("_s", "seconds"), ("_g", "grams"), ("_usd", "US dollars"), ("_at", "timestamp"),
    ("_id", "identifier"), ("_sha256", "SHA-256, hex"),
)


def describe_column(name: str, comment: str | None) -> str:
    """The column's COMMENT in the warehouse when it has one, else its name read out with its unit."""
    if comment:
        return comment
    suffix, unit = next(((sfx, u) for sfx, u in UNIT_SUFFIXES if name.endswith(sfx)), ("", None))
    if name.removeprefix("artisan_").removeprefix("target_") in EVENT_TIME_COLUMNS:
        unit = "seconds from CHARGE"  # a latency, an interval or a phase length is not
    stem = name.removesuffix(suffix) if suffix not in ("_id", "_at", "_sha256") else name
    words = stem.removeprefix("artisan_").replace("_", " ")
    text = f"Artisan's own computed value: {words}" if name.startswith("artisan_") else words
    return f"{text} [{unit}]" if unit else text


def column_schema(con: duckdb.DuckDBPyConnection, table: str) -> dg.TableSchema:
    rows = con.execute(f"DESCRIBE {table}").fetchall()
    schema, name = table.split(".")
    comments = dict(con.execute(
        "SELECT column_name, comment FROM duckdb_columns() WHERE schema_name = ? AND table_name = ?", [schema, name]
    ).fetchall())
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=column, type=str(col_type), description=describe_column(column, comments.get(column)),
                           constraints=dg.TableColumnConstraints(nullable=nullable == "YES"))
            for column, col_type, nullable, *_ in rows
        ]
    )


def _cell(value) -> str | int | float | bool | None:
    """A value the UI's table shows as it is: floats rounded for reading (NaN as empty), times as
    ISO text, anything else (lists, JSON) as text."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, decimal.Decimal):
        value = float(value)
    if isinstance(value, float):
        return None if math.isnan(value) else float(f"{value:.4g}") if abs(value) < 1e4 else round(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat(sep=" ", timespec="seconds") if isinstance(value, dt.datetime) else value.isoformat()
    return value if isinstance(value, str) else json.dumps(value, default=str)


def preview_table(columns: list[str], rows: list[tuple], types: list[str] | None = None) -> dg.MetadataValue:
    """Rows as a Dagster table (shown as a table on the asset and check pages, not as markdown)."""
    schema = dg.TableSchema(columns=[
        dg.TableColumn(name=name, type=col_type) for name, col_type in zip(columns, types or ["string"] * len(columns))
    ])
    records = [dg.TableRecord({name: _cell(v) for name, v in zip(columns, row)}) for row in rows]
    return dg.MetadataValue.table(records=records, schema=schema)


def query_table(con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None) -> dg.MetadataValue:
    """A query's result as a preview table, with the query's column names and DuckDB types."""
    cursor = con.execute(sql, params or [])
    # fetch before running anything else on this connection: a new query replaces the result
    columns, types = [d[0] for d in cursor.description], [str(d[1]) for d in cursor.description]
    return preview_table(columns, cursor.fetchall(), types)


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    """A small GitHub-style markdown table (for terminals); floats rounded for reading."""

    def cell(value) -> str:
        if value is None:
            return ""
        if isinstance(value, float):
            return f"{value:.4g}" if abs(value) < 1e4 else f"{value:.0f}"
        return str(value).replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def table_metadata(
    con: duckdb.DuckDBPyConnection, table: str, preview_sql: str | None = None, preview_rows: int = 10
) -> dict:
    """Row count, column schema and a preview table (``preview_sql`` or the first rows)."""
    row_count = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    schema = column_schema(con, table)
    preview = query_table(con, preview_sql or f"SELECT * FROM {table} LIMIT {preview_rows}")
    return {
        "dagster/row_count": dg.MetadataValue.int(row_count),
        "dagster/column_schema": schema,
        "dagster/table_name": dg.MetadataValue.text(table),
        "preview": preview,
    }
