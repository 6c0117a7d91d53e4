import itertools

import pytest

from tests.conftest import under_ci
from tests.scale.pg import PostgresServer, PostgresUnavailable

_databases = itertools.count()


@pytest.fixture(scope="session")
def postgres() -> PostgresServer:
    """A real PostgreSQL server for the whole session; CI must have one (.ci/run installs it)."""
    try:
        server = PostgresServer().start()
    except PostgresUnavailable as exc:
        if under_ci():
            pytest.fail(f"PostgreSQL is required under CI: {exc}")
        pytest.skip(f"no PostgreSQL server here: {exc}")
    yield server
    server.stop()


@pytest.fixture
def lake_target(postgres, tmp_path, monkeypatch) -> str:
    """A fresh DuckLake warehouse: its catalog in a new Postgres database, its files under tmp_path."""
    database = f"lake{next(_databases)}"
    postgres.create_database(database)
    monkeypatch.setenv("DAENA_LAKE_DATA_PATH", str(tmp_path / "lake") + "/")
    return postgres.lake_target(database)
