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

from daena_pipelines import config
from daena_pipelines.db import connect

DUCKDB_POOL = "duckdb"


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource configuration, connecting through ``db.connect``: the one lock
    retry policy (bounded, logged), the warehouse's folder created and its schema brought up to
    date (daena_pipelines/migrations.py) on connection, and the DuckLake catalog when `database`
    is a ``ducklake:`` target."""

    @contextmanager
    def get_connection(self, wait_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
        with connect(self.database, wait_s=wait_s) as con:
            yield con


def warehouse_resource(path: Path | str | None = None) -> WarehouseResource:
    return WarehouseResource(database=str(path or config.warehouse_path()))
