"""docs/deploy.md followed as an operator would, and what goes wrong around it: a new deployment's
first sensor tick, PostgreSQL unreachable at the start, an embedded warehouse copied into a lake."""
from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import duckdb
import pytest
import yaml

from daena_pipelines.db import connect, retrying_transaction, serialize_writes
from daena_pipelines.definitions import defs
from daena_pipelines import lake
from daena_pipelines.lake import LakeUnavailable
from tests.scale import workload
from tests.scale.pg import PostgresServer

ROOT = Path(__file__).resolve().parents[2]


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


def test_a_warehouse_file_copied_into_a_new_lake_keeps_every_row_and_a_second_copy_is_refused(
        artisan_dir, data_env, lake_target, monkeypatch, capsys):
    file = data_env / "w.duckdb"
    for original in sorted(artisan_dir.glob("*.alog"))[:4]:
        shutil.copy(original, data_env / "landing")
    workload.ingest_folder(file, data_env / "landing", batch_size=10)
    monkeypatch.setenv("DAENA_WAREHOUSE", lake_target)
    assert lake.main([str(file)]) == 0
    assert "copied" in capsys.readouterr().out
    on_file = workload.integrity(file)
    assert on_file["sessions"] >= 2 and workload.integrity(lake_target) == on_file
    assert workload.points_per_session(lake_target) == workload.points_per_session(file)
    with connect(lake_target, read_only=True) as con:  # the lake's own ledger and counters, not the file's added
        assert con.execute("SELECT count(*) FROM telemetry.ingest_commits").fetchone()[0] == 1
        assert con.execute("SELECT count(*) - count(DISTINCT (domain, version)) FROM meta.schema_migrations").fetchone()[0] == 0
    with pytest.raises(RuntimeError, match="already has rows in .*telemetry.points"):
        lake.copy_from_file(file, lake_target)
    assert workload.integrity(lake_target) == on_file


def test_a_retried_commit_conflict_is_in_the_runs_log_of_the_deployment_instance(lake_target):
    """DuckLake's conflicts are retried by db.retrying_transaction, which says so on the logger
    daena_pipelines.db. Before, no instance routed that logger into a run's log: an operator saw
    no trace of contention in the UI. Forced here: a second connection commits a conflicting
    update inside the first attempt."""
    warehouse = lake_target

    @dg.asset
    def contended() -> None:
        attempts = []
        with connect(warehouse) as con:
            def body(con: duckdb.DuckDBPyConnection) -> None:
                attempts.append(1)
                serialize_writes(con)
                if len(attempts) == 1:  # another writer commits the same update first
                    con.cursor().execute(f"UPDATE {lake.ALIAS}.meta.write_commits SET writes = writes + 1")

            retrying_transaction(con, body)
        assert len(attempts) == 2

    logs = yaml.safe_load((ROOT / "deploy" / "dagster.yaml").read_text()).get("python_logs", {})
    with dg.instance_for_test(overrides={"python_logs": logs}) as instance:
        result = dg.materialize([contended], instance=instance)
        messages = [e.message for e in instance.all_logs(result.run_id)]
    assert result.success
    assert any("transaction conflict with a concurrent writer, retry 1/" in (m or "") for m in messages)
