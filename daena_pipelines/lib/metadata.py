"""Standard Dagster metadata for a warehouse table: row count, column schema, markdown preview."""
from __future__ import annotations

import duckdb
import dagster as dg


def column_schema(con: duckdb.DuckDBPyConnection, table: str) -> dg.TableSchema:
    rows = con.execute(f"DESCRIBE {table}").fetchall()
    return dg.TableSchema(
        columns=[
            dg.TableColumn(name=name, type=str(col_type), constraints=dg.TableColumnConstraints(nullable=nullable == "YES"))
            for name, col_type, nullable, *_ in rows
        ]
    )


def markdown_table(columns: list[str], rows: list[tuple]) -> str:
    """A small GitHub-style markdown table; floats rounded for reading."""

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
    """Row count, column schema and a markdown preview (``preview_sql`` or the first rows)."""
    row_count = con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    schema = column_schema(con, table)
    # fetch the preview before running anything else on this connection: a new query replaces the result
    cursor = con.execute(preview_sql or f"SELECT * FROM {table} LIMIT {preview_rows}")
    columns = [d[0] for d in cursor.description]
    preview = markdown_table(columns, cursor.fetchall())
    return {
        "dagster/row_count": dg.MetadataValue.int(row_count),
        "dagster/column_schema": schema,
        "dagster/table_name": dg.MetadataValue.text(table),
        "preview": dg.MetadataValue.md(preview),
    }
