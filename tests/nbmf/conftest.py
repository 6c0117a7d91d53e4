import shutil

import duckdb
import pytest

from .alog_warehouse import alog_files, load_alogs

# A spread of real profiles: short and long roasts, with and without notes, C-mode files.
SAMPLE_COUNT = 10


@pytest.fixture(scope="session")
def sample_alogs():
    files = alog_files()
    return files[:: max(1, len(files) // SAMPLE_COUNT)][:SAMPLE_COUNT]


@pytest.fixture
def alog_warehouse(tmp_path, sample_alogs):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        load_alogs(con, sample_alogs)
    return path


@pytest.fixture(scope="session")
def corpus(tmp_path_factory, sample_alogs):
    from daena_pipelines.nbmf.corpus import load_corpus

    path = tmp_path_factory.mktemp("corpus") / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        load_alogs(con, sample_alogs)
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
