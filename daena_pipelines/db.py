"""Dagster-free DuckDB helpers, safe to import in worker processes and scripts."""
from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from daena_pipelines import lake

log = logging.getLogger(__name__)
T = TypeVar("T")


@contextmanager
def connect(path: Path | str, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to the warehouse: the DuckDB file at `path`, or the DuckLake
    catalog when `path` is a ``ducklake:`` target (lake.py)."""
    if lake.is_ducklake(path):
        con = lake.open_lake(str(path), read_only)
    else:
        path = Path(path)
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """All-or-nothing: commit when the block finishes, roll back on any exception."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def retrying_transaction(con: duckdb.DuckDBPyConnection, body: Callable[[duckdb.DuckDBPyConnection], T], attempts: int = 40) -> T:
    """`body(con)` in one transaction; run again from the start (it must re-read what it depends
    on) when the commit loses a write-write conflict to a concurrent writer. DuckDB and DuckLake
    both detect such conflicts optimistically and abort the later transaction (docs/deploy.md)."""
    for attempt in range(1, attempts + 1):
        try:
            with transaction(con):
                return body(con)
        except duckdb.TransactionException as exc:
            if "conflict" not in str(exc).lower() or attempt == attempts:
                raise
            log.info("transaction conflict with a concurrent writer, retry %d/%d", attempt, attempts - 1)
            time.sleep(random.uniform(0.02, 0.1) * min(attempt, 10))
    raise AssertionError("unreachable")
