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
