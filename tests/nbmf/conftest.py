"""Real Artisan profiles from ../shared, loaded into a warehouse by the real telemetry ingest."""
import shutil
from pathlib import Path

import duckdb
import pytest

from daena_pipelines.telemetry import ingest
from tests.conftest import require_artisan_dir

# A spread of real profiles: short and long roasts, with and without notes, C-mode files.
SAMPLE_COUNT = 10


def load_alogs(con: duckdb.DuckDBPyConnection, paths: list[Path], quarantine_dir: Path) -> list[str]:
    """Ingest the profiles as the telemetry asset does; returns the loaded session ids."""
    report = ingest.ingest(con, paths, quarantine_dir, workers=1)
    assert report.loaded, f"no profile ingested: {report.rejected}"
    return report.loaded


@pytest.fixture(scope="session")
def sample_alogs():
    files = sorted(require_artisan_dir().glob("*.alog"))
    return files[:: max(1, len(files) // SAMPLE_COUNT)][:SAMPLE_COUNT]


@pytest.fixture
def alog_warehouse(tmp_path, sample_alogs):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        load_alogs(con, sample_alogs, tmp_path / "quarantine")
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, sample_alogs):
    from daena_pipelines.nbmf.corpus import load_corpus

    tmp = tmp_path_factory.mktemp("corpus")
    with duckdb.connect(str(tmp / "w.duckdb")) as con:
        load_alogs(con, sample_alogs, tmp / "quarantine")
        records, skipped = load_corpus(con)
    return records, skipped


@pytest.fixture(scope="session")
def reference_dir(tmp_path_factory, sample_alogs):
    """A few real profiles as the benchmark's reference corpus: the whole shared folder would
    make every asset test measure ~100 extra records (the CI command and the script use all)."""
    folder = tmp_path_factory.mktemp("reference")
    for path in sample_alogs[:4]:
        shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(autouse=True)
def small_reference_corpus(monkeypatch, reference_dir):
    monkeypatch.setenv("DAENA_NBMF_REFERENCE_DIR", str(reference_dir))
