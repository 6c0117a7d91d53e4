import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
ARTISAN_DIR = SHARED / "data" / "artisan-scottjames"


def under_ci() -> bool:
    """CI sets CI=true (some runners CI=1): there, a missing prerequisite is a failure, never a skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def require_artisan_dir() -> Path:
    """The real Artisan profiles of ../shared. CI always has them, so under CI=true their absence
    fails the test; elsewhere the test is skipped with the reason."""
    if not ARTISAN_DIR.is_dir():
        message = f"real Artisan profiles not found at {ARTISAN_DIR}: clone the shared material beside the project"
        if under_ci():
            pytest.fail(f"{message} (CI=true: ../shared must be present)")
        pytest.skip(message)
    return ARTISAN_DIR


@pytest.fixture
def artisan_dir() -> Path:
    return require_artisan_dir()


@pytest.fixture
def data_env(tmp_path, monkeypatch) -> Path:
    """Point every DAENA_* path at a temp folder so no test touches the project's data/."""
    monkeypatch.setenv("DAENA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAENA_WAREHOUSE", str(tmp_path / "data" / "warehouse.duckdb"))
    landing = tmp_path / "landing"
    landing.mkdir()
    monkeypatch.setenv("DAENA_LANDING_DIR", str(landing))
    return tmp_path
