"""Dagster-free DuckDB helpers, safe to import in worker processes and scripts."""
from __future__ import annotations

import itertools
import logging
import random
import re
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import duckdb

from daena_pipelines import lake
from daena_pipelines.config import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")


class WarehouseBusy(duckdb.IOException):
    """Another process held the warehouse file's lock for longer than the caller would wait
    (a ``duckdb.IOException``, so handlers of DuckDB errors see it as one)."""


class WarehouseUnreadable(duckdb.IOException):
    """The warehouse file exists but this project's DuckDB cannot open it (written by a newer
    DuckDB, corrupt, or not a DuckDB file); the message names the file, the cause and what to do."""


@contextmanager
def connect(path: Path | str, read_only: bool = False, wait_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived connection to the warehouse: the DuckDB file at `path`, or the DuckLake
    catalog when `path` is a ``ducklake:`` target (lake.py). A writable one first brings the
    schema up to date (daena_pipelines/migrations.py).

    The one retry policy for the file's lock (docs/architecture.md): DuckDB lets one process
    write, or any number read, never both at once. While another process holds a conflicting
    lock, retry with growing, jittered pauses for up to `wait_s` seconds (default
    ``Settings.lock_wait_s``, DAENA_LOCK_WAIT_S), logging each wait; then raise ``WarehouseBusy``. Callers that must
    not block (the sidecar's poll loop) pass ``wait_s=0``."""
    if lake.is_ducklake(path):
        con = lake.open_lake(str(path), read_only)
    else:
        path = Path(path)
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = _open_waiting(path, read_only, Settings.from_env().lock_wait_s if wait_s is None else wait_s)
    try:
        if not read_only:
            from daena_pipelines.migrations import migrate  # it imports this module

            migrate(con)
        yield con
    finally:
        con.close()


_LOCK_CONFLICT = re.compile(r"\block\b", re.IGNORECASE)  # DuckDB: 'Could not set lock on file ...: Conflicting lock is held'


def _open_waiting(path: Path, read_only: bool, wait_s: float) -> duckdb.DuckDBPyConnection:
    started = time.monotonic()
    for attempt in itertools.count(1):
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except duckdb.IOException as exc:
            if not _LOCK_CONFLICT.search(str(exc)):  # the word: "block" is in a corrupt file's message
                cause = str(exc).removeprefix("IO Error: ").split("\n")[0]
                raise WarehouseUnreadable(
                    f"the warehouse {path} cannot be opened with this project's DuckDB {duckdb.__version__}: {cause} "
                    "(restore the file, or set DAENA_WAREHOUSE to another one; a new file is created there)"
                ) from exc
            waited = time.monotonic() - started
            if waited >= wait_s:
                raise WarehouseBusy(
                    f"the warehouse {path} stayed locked by another process for {waited:.1f} s ({attempt} attempts; "
                    f"DAENA_LOCK_WAIT_S sets the wait): {str(exc).split('. However')[0]}"
                ) from exc
            pause = min(random.uniform(0.05, 0.15) * 2 ** min(attempt, 5), 2.0, wait_s - waited)
            log.warning("warehouse %s is locked by another process; waiting %.2f s (attempt %d, %.1f of %.0f s)",
                        path, pause, attempt, waited, wait_s)
            time.sleep(pause)
    raise AssertionError("unreachable")


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


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    """Whether ``schema.table`` exists."""
    schema, name = table.split(".")
    # literals, not parameters: DuckDB imports pandas (~0.35 s) on a first statement with parameters
    query = f"SELECT count(*) FROM information_schema.tables WHERE table_schema = {lake.sql_string(schema)} AND table_name = {lake.sql_string(name)}"
    return con.execute(query).fetchone()[0] > 0


def comment_columns(con: duckdb.DuckDBPyConnection, table: str, comments: dict[str, str]) -> None:
    """Describe ``table``'s columns in the warehouse (lib/metadata.py shows them in the catalog)."""
    for column, comment in comments.items():
        quoted = comment.replace("'", "''")
        con.execute(f"COMMENT ON COLUMN {table}.{column} IS '{quoted}'")


def insert(con: duckdb.DuckDBPyConnection, table: str, rows, columns: Sequence[str] | None = None, select: str = "*") -> None:
    """Append ``rows`` to ``table``: a pyarrow Table or pandas DataFrame matched to the table's
    columns by name (``select`` over it, e.g. to cast a column), or, with ``columns``, value rows
    in that column order. Nothing to append is a no-op."""
    if len(rows) == 0:
        return
    if columns is not None:
        placeholders = ", ".join("?" for _ in columns)
        con.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})", [list(r) for r in rows])
        return
    # a pyarrow table goes in as an Arrow C stream, which DuckDB reads directly: for the table
    # object itself it imports pyarrow.dataset, and that imports pandas (~0.35 s)
    con.register("incoming", rows.__arrow_c_stream__() if type(rows).__module__.startswith("pyarrow") else rows)
    # not unregistered on failure: in an aborted transaction that would raise instead of the cause
    con.execute(f"INSERT INTO {table} BY NAME SELECT {select} FROM incoming")
    con.unregister("incoming")


WRITE_COMMITS = "meta.write_commits"


def serialize_writes(con: duckdb.DuckDBPyConnection) -> None:
    """Make this transaction conflict with every concurrent one that calls this too. Needed where a
    write replaces rows (DELETE, then INSERT): on DuckLake, deleting rows that are not there yet
    changes nothing and inserts never conflict, so two replacements of new rows would both commit
    and leave the rows twice. Both update this one row, so the later commit conflicts and
    `retrying_transaction` runs it again. The row is made with the migration ledger (migrations.LEDGER)."""
    con.execute(f"UPDATE {WRITE_COMMITS} SET writes = writes + 1")


@dataclass(frozen=True)
class Replacement:
    """The rows of ``table`` that ``where`` selects, to be replaced by ``rows`` (value rows in
    ``columns`` order)."""
    table: str
    rows: Sequence[Sequence]
    columns: Sequence[str]
    where: str = "true"
    params: Sequence = ()


def replace_rows(con: duckdb.DuckDBPyConnection, *replacements: Replacement) -> None:
    """Each replacement's rows deleted and its new rows inserted, all in one transaction, run again
    when a concurrent replacement commits first (`serialize_writes` says why that is needed)."""
    def replace(con: duckdb.DuckDBPyConnection) -> None:
        serialize_writes(con)
        for r in replacements:
            con.execute(f"DELETE FROM {r.table} WHERE {r.where}", list(r.params))
            insert(con, r.table, r.rows, r.columns)

    retrying_transaction(con, replace)


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
            time.sleep(random.uniform(0.01, 0.05) * min(attempt, 10))  # jittered: the losers do not collide again
    raise AssertionError("unreachable")
