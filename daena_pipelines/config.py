"""Paths and settings, read from environment variables with defaults that work out of the box.

Everything here is cheap (no I/O) so it is safe to call at definition-load time.
"""
from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"


def _path_from_env(name: str, default: Path) -> Path:
    value = os.environ.get(name, "").strip()
    return Path(value).expanduser().resolve() if value else default


def dagster_home() -> Path:
    """The project's Dagster instance (runs, event log, sensor cursors): DAGSTER_HOME, absolute."""
    return _path_from_env("DAGSTER_HOME", PROJECT_ROOT / "dagster_home")


def data_dir() -> Path:
    """Folder for everything the pipelines write (warehouse, quarantine, artifacts)."""
    return _path_from_env("DAENA_DATA_DIR", PROJECT_ROOT / "data")


def warehouse_path() -> Path | str:
    """The warehouse: the one DuckDB file by default, or a DuckLake catalog when DAENA_WAREHOUSE
    is a ``ducklake:`` ATTACH target (see lake.py), returned as that string."""
    value = os.environ.get("DAENA_WAREHOUSE", "").strip()
    if value.startswith("ducklake:"):
        return value
    return _path_from_env("DAENA_WAREHOUSE", data_dir() / "warehouse.duckdb")


def lake_data_path() -> str:
    """Where a DuckLake warehouse writes its Parquet files: a folder or an object-store URL."""
    return os.environ.get("DAENA_LAKE_DATA_PATH", "").strip() or str(data_dir() / "lake") + "/"


def golden_dir() -> Path:
    """Golden values (regressions), golden roast cases (evals) and NBMF dictionaries, reviewed like code."""
    return _path_from_env("DAENA_GOLDEN_DIR", PROJECT_ROOT / "golden")


def landing_dir() -> Path:
    """Folder of roast profiles to ingest; defaults to the bundled sample sessions."""
    return _path_from_env("DAENA_LANDING_DIR", ASSETS_DIR / "landing")


def sidecar_landing_dir() -> Path:
    """Where the device sidecar puts finished recordings (in the data folder, never in the clone)."""
    return data_dir() / "landing"


def landing_dirs() -> list[Path]:
    """Every folder the telemetry ingest and the landing sensor read: DAENA_LANDING_DIR and the
    sidecar's recordings."""
    return list(dict.fromkeys([landing_dir(), sidecar_landing_dir()]))


def quarantine_dir() -> Path:
    """Where copies of rejected input files are kept, each beside a note with the reason."""
    return _path_from_env("DAENA_QUARANTINE_DIR", data_dir() / "quarantine")


def results_dir() -> Path:
    """Benchmark and evaluation artifacts (JSON/CSV) per run."""
    return _path_from_env("DAENA_RESULTS_DIR", data_dir() / "results")


def lock_wait_s() -> float:
    """How long a connection waits for another process's lock on the warehouse file (db.connect)."""
    return float(os.environ.get("DAENA_LOCK_WAIT_S", "").strip() or 60.0)
