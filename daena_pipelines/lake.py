"""The warehouse as a DuckLake catalog: metadata in PostgreSQL, data as Parquet under a path.

Selected by one setting: ``DAENA_WAREHOUSE=ducklake:postgres:dbname=... host=...`` (the DuckLake
ATTACH target; libpq reads the password from ``PGPASSWORD``). Every connection attaches the
catalog as the default database, so the asset code's ``telemetry.sessions`` etc. resolve to it.
Several processes may write at once: DuckLake commits each transaction as a snapshot and aborts the
later of two conflicting ones (docs/deploy.md).

The ducklake and postgres extensions are loaded from their Python packages (the ``scale`` extra),
never downloaded at run time: extension auto-install is switched off.
"""
from __future__ import annotations

import importlib
import random
import re
import time
from pathlib import Path

import duckdb

from daena_pipelines.config import Settings

PREFIX = "ducklake:"
ALIAS = "warehouse"
# (python package, extension name); the postgres extension first: the catalog is read through it
EXTENSIONS = (("duckdb_extension_postgres_scanner", "postgres_scanner"), ("duckdb_extension_ducklake", "ducklake"))
OBJECT_STORE = ("duckdb_extension_httpfs", "httpfs")  # s3:// (and https://) data paths


class LakeUnavailable(duckdb.IOException):
    """The DuckLake catalog could not be attached (PostgreSQL unreachable, refused the user, no
    such database); the message names the setting and what to do."""


class LakeNotCreated(LakeUnavailable):
    """A read-only connection to a lake whose catalog no writing connection has created yet: there
    is nothing to read (like a warehouse file that does not exist yet)."""


def is_ducklake(target: Path | str) -> bool:
    return str(target).startswith(PREFIX)


def extension_file(package: str, name: str) -> Path:
    """The extension binary a package ships for the running DuckDB version (``extensions/v<version>/``)."""
    try:
        module = importlib.import_module(package)
    except ImportError as exc:
        raise RuntimeError(f"{package} is missing: install the DuckLake backend with pip install -e '.[scale]'") from exc
    path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(f"{package} has no {name} extension for DuckDB {duckdb.__version__} ({path})")
    return path


def sql_string(text: str) -> str:
    """`text` as an SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def open_lake(target: str, read_only: bool = False) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the DuckLake catalog attached as its default database."""
    con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    # queries go through KeylessConnection.execute: look for DataFrames named in SQL in its callers' frames too
    con.execute("SET python_scan_all_frames = true")
    try:
        data_path = Settings.from_env().lake_data_path
        remote = "://" in data_path
        for package, name in EXTENSIONS + ((OBJECT_STORE,) if remote else ()):
            con.execute(f"LOAD {sql_string(str(extension_file(package, name)))}")
        # DATA_PATH matters only when the catalog is created; an existing catalog keeps its own
        options = ["READ_ONLY"] if read_only else [f"DATA_PATH {sql_string(data_path)}"]
        try:
            _attach(con, f"ATTACH {sql_string(target)} AS {ALIAS} ({', '.join(options)})")
        except duckdb.Error as exc:
            raise _unavailable(target, exc) from exc
        con.execute(f"USE {ALIAS}")
    except BaseException:
        con.close()
        raise
    return KeylessConnection(con)


def _attach(con: duckdb.DuckDBPyConnection, statement: str, attempts: int = 20) -> None:
    """ATTACH, again when a concurrent first connection was creating the catalog's tables at the
    same moment: DuckLake creates them without a lock, so the loser fails with PostgreSQL's
    duplicate-key error (pg_type) and finds the catalog complete on the next try."""
    for attempt in range(1, attempts + 1):
        try:
            con.execute(statement)
            return
        except duckdb.Error as exc:
            if "Failed to initialize DuckLake" not in str(exc) or "already exists" not in str(exc) or attempt == attempts:
                raise
            time.sleep(random.uniform(0.05, 0.2))


def _unavailable(target: str, exc: duckdb.Error) -> LakeUnavailable:
    cause = " ".join(str(exc).split())
    if "creating a new DuckLake is explicitly disabled" in cause:
        return LakeNotCreated(f"the DuckLake warehouse {target} has no catalog yet: the first writing connection creates it")
    return LakeUnavailable(
        f"the DuckLake warehouse's catalog could not be attached: {cause}. The setting DAENA_WAREHOUSE={target} "
        "names it (a libpq string: host, port, dbname, user; the password comes from PGPASSWORD): check that "
        "PostgreSQL runs there and lets that user into that database, or correct DAENA_WAREHOUSE."
    )


# DuckLake supports NOT NULL but no PRIMARY KEY/UNIQUE constraint (its docs, "Constraints"): a key
# column is declared NOT NULL and a table-level key dropped. The writers keep keys unique themselves
# (they replace rows by key inside one transaction); the embedded DuckDB file still enforces them.
_TABLE_KEY = re.compile(r",\s*(PRIMARY KEY|UNIQUE)\s*\([^)]*\)")
_COLUMN_KEY = re.compile(r"(\s+NOT NULL)?\s+(PRIMARY KEY|UNIQUE)\b")  # keywords: upper case here


def keyless_ddl(sql: str) -> str:
    if "CREATE" not in sql:
        return sql
    return _COLUMN_KEY.sub(" NOT NULL", _TABLE_KEY.sub("", sql))


class KeylessConnection:
    """A DuckLake connection: DDL passes through `keyless_ddl`; everything else is the DuckDB connection's."""

    def __init__(self, con: duckdb.DuckDBPyConnection):
        self._con = con

    def execute(self, query: str, parameters=None):
        return self._con.execute(keyless_ddl(query), parameters)

    def sql(self, query: str, *args, **kwargs):
        return self._con.sql(keyless_ddl(query), *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self._con, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self._con.close()


def copy_from_file(source: Path, target: str) -> dict[str, int]:
    """Every row of the warehouse file `source` into the DuckLake warehouse `target` (switching an
    embedded deployment to DuckLake), in one transaction; returns the rows copied per table.

    Both are first brought to the current schema (the file by a writable connection: no other
    process may hold it). The rows the migrations write themselves (the ledger, the one-row commit
    counters) are the lake's own and not copied; any other table that already has rows in the lake
    refuses the copy, so running it twice cannot double a table."""
    from daena_pipelines.db import connect, retrying_transaction  # db imports this module
    from daena_pipelines.migrations import migrate

    with connect(source):
        pass
    fresh = duckdb.connect()
    migrate(fresh)
    own = {table for table in _tables(fresh) if fresh.execute(f"SELECT count(*) FROM {table}").fetchone()[0]}
    fresh.close()

    def copy(con) -> dict[str, int]:
        counts = {table: con.execute(f"SELECT count(*) FROM source.{table}").fetchone()[0] for table in _tables(con, "source")}
        wanted = {table: n for table, n in counts.items() if n and table not in own}
        filled = [t for t in wanted if con.execute(f"SELECT count(*) FROM {ALIAS}.{t}").fetchone()[0]]
        if filled:
            raise RuntimeError(f"the lake {target} already has rows in {', '.join(filled)}: nothing copied "
                               "(copy into a new lake: an empty catalog database and data path)")
        for table in wanted:
            con.execute(f"INSERT INTO {ALIAS}.{table} BY NAME SELECT * FROM source.{table}")
        return wanted

    with connect(target) as con:
        con.execute(f"ATTACH {sql_string(str(source))} AS source (READ_ONLY)")
        return retrying_transaction(con, copy)


def _tables(con: duckdb.DuckDBPyConnection, database: str | None = None) -> list[str]:
    where = f"database_name = {sql_string(database)}" if database else "database_name = current_database()"
    return [f"{s}.{t}" for s, t in con.execute(f"SELECT schema_name, table_name FROM duckdb_tables() WHERE {where} ORDER BY ALL").fetchall()]


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="daena copy-to-lake", description="Copy a warehouse file into the DuckLake "
                                     "warehouse DAENA_WAREHOUSE names (docs/deploy.md, 'From the DuckDB file to DuckLake').")
    parser.add_argument("source", type=Path, help="the DuckDB warehouse file, e.g. data/warehouse.duckdb")
    args = parser.parse_args(argv)
    target = str(Settings.from_env().warehouse)
    if not is_ducklake(target):
        parser.error(f"DAENA_WAREHOUSE must name the DuckLake warehouse to copy into (ducklake:postgres:...), not {target}")
    if not args.source.is_file():
        parser.error(f"no warehouse file at {args.source}")
    copied = copy_from_file(args.source, target)
    for table, rows in copied.items():
        print(f"  {table:40s} {rows:>10,d} rows")
    print(f"copied {sum(copied.values()):,d} rows of {len(copied)} tables from {args.source} into {target}")
    return 0
