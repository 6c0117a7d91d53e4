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
