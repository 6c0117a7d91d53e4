"""The DuckDB warehouse: one file, short-lived connections, one writer at a time.

DuckDB takes a file lock per writing process, so every Dagster asset that writes here runs in
the concurrency pool ``duckdb`` (limit 1) and holds its connection only while it writes; a
connection that finds the file locked by another process waits its turn (``db.connect``).
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import Field

from daena_pipelines.config import Settings
from daena_pipelines.db import connect

DUCKDB_POOL = "duckdb"


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource configuration, connecting through ``db.connect``: the one lock
    retry policy (bounded, logged), the warehouse's folder created and its schema brought up to
    date (daena_pipelines/migrations.py) on connection, and the DuckLake catalog when `database`
    is a ``ducklake:`` target."""

    database: str = Field(
        default="", description="The DuckDB file or a ducklake: target. Empty: DAENA_WAREHOUSE, else "
        "<data>/warehouse.duckdb, read when a run connects.",
    )

    def target(self) -> str:
        """The warehouse this resource connects to, resolved now."""
        return self.database or str(Settings.from_env().warehouse)

    @contextmanager
    def get_connection(self, wait_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.target(), wait_s=wait_s) as con:
            yield con


def warehouse_resource(path: Path | str | None = None) -> WarehouseResource:
    """The warehouse at ``path``; without one, the settings' warehouse when a run connects."""
    return WarehouseResource(database=str(path or ""))
