"""docs/deploy.md followed as an operator would, and what goes wrong around it: a new deployment's
first sensor tick, PostgreSQL unreachable at the start."""
from __future__ import annotations

import shutil

import dagster as dg
import pytest

from daena_pipelines.db import connect
from daena_pipelines.definitions import defs
from daena_pipelines.lake import LakeUnavailable
from tests.scale.pg import PostgresServer


def test_the_landing_sensor_requests_the_files_of_a_lake_nothing_has_created_yet(artisan_dir, data_env, lake_target, monkeypatch):
    """A new deployment: the sensor (on by default) is the first to look at the lake. Before, its
    read-only connection failed ('creating a new DuckLake is explicitly disabled') at every tick,
    so nothing was ever ingested."""
    monkeypatch.setenv("DAENA_WAREHOUSE", lake_target)
    for original in sorted(artisan_dir.glob("*.alog"))[:2]:
        shutil.copy(original, data_env / "landing")
    tick = defs.resolve_sensor_def("landing_folder_sensor").evaluate_tick(dg.build_sensor_context(resources=defs.resources))
    assert len(tick.run_requests) == 1
    assert tick.run_requests[0].run_config["ops"]["telemetry_ingest"]["config"]["paths"] == sorted(
        str(p) for p in (data_env / "landing").glob("*.alog"))


def test_postgres_unreachable_names_the_setting_and_what_to_do():
    target = f"ducklake:postgres:dbname=daena_lake host=127.0.0.1 port={PostgresServer.free_port()} user=daena"
    with pytest.raises(LakeUnavailable) as raised, connect(target):
        pass
    message = str(raised.value)
    assert "Connection refused" in message and f"DAENA_WAREHOUSE={target}" in message and "PGPASSWORD" in message
    assert "check that PostgreSQL runs there" in message
