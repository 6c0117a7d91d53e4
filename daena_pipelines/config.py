"""The project's settings: one frozen object read from environment variables when it is used.

``Settings.from_env()`` reads every ``DAENA_*`` variable the README and docs/ document (no I/O
beyond making paths absolute), so it is cheap and safe at definition-load time; nothing reads
the environment at import. Logic modules take the values they need as arguments, or call
``Settings.from_env()`` at the moment they need one; assets get them through the Dagster resource
``daena_settings`` (lib/settings.py), which resolves to this same object when a run uses it.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ASSETS_DIR = PROJECT_ROOT / "assets"

# field -> the environment variable that sets it (README "Configuration", docs/*.md)
ENV_VARS = {
    "dagster_home": "DAGSTER_HOME",
    "data_dir": "DAENA_DATA_DIR",
    "warehouse": "DAENA_WAREHOUSE",
    "lake_data_path": "DAENA_LAKE_DATA_PATH",
    "landing_dir": "DAENA_LANDING_DIR",
    "quarantine_dir": "DAENA_QUARANTINE_DIR",
    "results_dir": "DAENA_RESULTS_DIR",
    "golden_dir": "DAENA_GOLDEN_DIR",
    "lock_wait_s": "DAENA_LOCK_WAIT_S",
    "bench_history_dir": "DAENA_BENCH_HISTORY_DIR",
    "nbmf_dict_dir": "DAENA_NBMF_DICT_DIR",
    "nbmf_reference_dir": "DAENA_NBMF_REFERENCE_DIR",
    "nbmf_zstd_level": "DAENA_NBMF_ZSTD_LEVEL",
    "nbmf_no_dict": "DAENA_NBMF_NO_DICT",
}


ZSTD_MAX_LEVEL = 22  # zstd's highest level (zstandard.MAX_COMPRESSION_LEVEL): a higher one fails mid-benchmark
TRUE, FALSE = ("1", "true", "yes"), ("", "0", "false", "no")


class SettingsError(ValueError):
    """A setting whose value cannot be used: the message names the variable (or resource field),
    the value and what it takes."""


@dataclass(frozen=True)
class Settings:
    dagster_home: Path  # the Dagster instance (runs, event log, sensor cursors)
    data_dir: Path  # parent of everything the pipelines write
    warehouse: Path | str  # the DuckDB file, or a ``ducklake:`` ATTACH target kept as that string (lake.py)
    lake_data_path: str  # where a DuckLake warehouse writes its Parquet files: a folder or an object-store URL
    landing_dir: Path  # roast profiles to ingest; the bundled samples by default
    quarantine_dir: Path  # copies of rejected input files, each beside a note with the reason
    results_dir: Path  # benchmark and evaluation artifacts (JSON, CSV, SVG) per run
    golden_dir: Path  # golden values, golden roast cases, judge labels, NBMF dictionaries: reviewed like code
    lock_wait_s: float  # how long a connection waits for another process's lock on the warehouse file
    bench_history_dir: Path  # the benchmark-ratio history the regression gate compares with
    nbmf_dict_dir: Path  # the NBMF codec's trained dictionaries
    nbmf_reference_dir: Path  # the shared real Artisan profiles of the NBMF reference corpus
    nbmf_zstd_level: int | None  # both zstd levels of the NBMF codec; None: its own defaults
    nbmf_no_dict: bool  # the NBMF codec without its dictionaries (to show what they are worth)

    @classmethod
    def from_env(cls, **given: object) -> Settings:
        """The settings now: a value in ``given`` (not None) first, then its environment variable,
        then the default. Folders that default to a place inside another (the warehouse in the data
        folder) follow that folder however it was set."""

        def raw(field: str) -> str:
            value = given.get(field)
            return str(value).strip() if value is not None else os.environ.get(ENV_VARS[field], "").strip()

        def refuse(field: str, expected: str) -> SettingsError:
            name = f"daena_settings field {field}" if given.get(field) is not None else ENV_VARS[field]
            return SettingsError(f"{name}={raw(field)!r} is not {expected}; set it so, or unset it for the default")

        def seconds(field: str, default: float) -> float:
            try:
                value = float(raw(field) or default)
            except ValueError:
                value = math.nan
            if not 0 <= value < math.inf:  # NaN too: a wait that never ends, or never waits, by accident
                raise refuse(field, "a number of seconds >= 0")
            return value

        def level(field: str) -> int | None:
            try:
                value = int(raw(field)) if raw(field) else None
            except ValueError:
                raise refuse(field, f"an integer zstd level up to {ZSTD_MAX_LEVEL}") from None
            if value is not None and value > ZSTD_MAX_LEVEL:
                raise refuse(field, f"an integer zstd level up to {ZSTD_MAX_LEVEL}")
            return value

        def flag(field: str) -> bool:
            value = raw(field).lower()
            if value not in TRUE + FALSE:
                raise refuse(field, f"one of {', '.join(TRUE)} (on) or 0, false, no (off)")  # not a typo silently read as off
            return value in TRUE

        def path(field: str, default: Path) -> Path:
            value = raw(field)
            return Path(value).expanduser().resolve() if value else default

        data_dir = path("data_dir", PROJECT_ROOT / "data")
        results_dir = path("results_dir", data_dir / "results")
        golden_dir = path("golden_dir", PROJECT_ROOT / "golden")
        warehouse = raw("warehouse")
        return cls(
            dagster_home=path("dagster_home", PROJECT_ROOT / "dagster_home"),
            data_dir=data_dir,
            warehouse=warehouse if warehouse.startswith("ducklake:") else path("warehouse", data_dir / "warehouse.duckdb"),
            lake_data_path=raw("lake_data_path") or f"{data_dir / 'lake'}/",
            landing_dir=path("landing_dir", ASSETS_DIR / "landing"),
            quarantine_dir=path("quarantine_dir", data_dir / "quarantine"),
            results_dir=results_dir,
            golden_dir=golden_dir,
            lock_wait_s=seconds("lock_wait_s", 60.0),
            bench_history_dir=path("bench_history_dir", results_dir / "bench-history"),
            nbmf_dict_dir=path("nbmf_dict_dir", golden_dir / "nbmf" / "dicts"),
            nbmf_reference_dir=path("nbmf_reference_dir", PROJECT_ROOT.parent / "shared" / "data" / "artisan-scottjames"),
            nbmf_zstd_level=level("nbmf_zstd_level"),
            nbmf_no_dict=flag("nbmf_no_dict"),
        )

    @property
    def sidecar_landing_dir(self) -> Path:
        """Where the device sidecar puts finished recordings (in the data folder, never in the clone)."""
        return self.data_dir / "landing"

    @property
    def recordings_dir(self) -> Path:
        """The sidecar's recordings in progress."""
        return self.data_dir / "device" / "recordings"

    @property
    def landing_dirs(self) -> list[Path]:
        """Every folder the telemetry ingest and the landing sensor read: DAENA_LANDING_DIR and the
        sidecar's recordings."""
        return list(dict.fromkeys([self.landing_dir, self.sidecar_landing_dir]))
