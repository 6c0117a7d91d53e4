"""The DuckDB warehouse: one file, short-lived connections, one writer at a time.

DuckDB takes a file lock per writing process, so every Dagster asset that writes here runs in
the concurrency pool ``duckdb`` (limit 1) and holds its connection only while it writes.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster_duckdb import DuckDBResource

from daena_pipelines import config, lake
from daena_pipelines.db import connect

DUCKDB_POOL = "duckdb"


class WarehouseResource(DuckDBResource):
    """dagster-duckdb's resource, creating the warehouse's folder on first connection; the
    DuckLake catalog when `database` is a ``ducklake:`` target."""

    @contextmanager
    def get_connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if lake.is_ducklake(self.database):  # the DuckLake catalog (lake.py): no file lock to wait for
            with connect(self.database) as con:
                yield con
            return
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        with super().get_connection() as con:
            try:
                yield con
            finally:  # dagster-duckdb closes only after a block that succeeded: a failed asset kept the file open
                con.close()


def warehouse_resource(path: Path | str | None = None) -> WarehouseResource:
    return WarehouseResource(database=str(path or config.warehouse_path()))
