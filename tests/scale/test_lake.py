"""The DuckLake warehouse (catalog in a real PostgreSQL server, Parquet files in a temp folder)
against the embedded DuckDB file: the same asset code, the same rows, several writers at once,
and kill -9 in the middle of an ingest."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import dagster as dg
import pytest

from daena_pipelines import lake
from daena_pipelines.db import connect
from daena_pipelines.definitions import defs
from daena_pipelines.telemetry import store
from daena_pipelines.defs.telemetry.assets import telemetry_ingest
from daena_pipelines.defs.telemetry.checks import telemetry_checks
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import WarehouseResource
from tests.scale import workload

def test_keyless_ddl_keeps_columns_and_not_null_and_drops_keys():
    ddl = """CREATE TABLE t (id VARCHAR PRIMARY KEY, n INTEGER NOT NULL PRIMARY KEY, note VARCHAR);
    CREATE TABLE u (a VARCHAR, b VARCHAR, PRIMARY KEY (a, b));
    COMMENT ON COLUMN t.note IS 'unique per primary key'"""
    assert lake.keyless_ddl(ddl) == """CREATE TABLE t (id VARCHAR NOT NULL, n INTEGER NOT NULL, note VARCHAR);
    CREATE TABLE u (a VARCHAR, b VARCHAR);
    COMMENT ON COLUMN t.note IS 'unique per primary key'"""
    assert lake.keyless_ddl("INSERT INTO t VALUES ('PRIMARY KEY')") == "INSERT INTO t VALUES ('PRIMARY KEY')"


def test_extensions_come_from_the_packages_and_nothing_can_download(lake_target):
    with connect(lake_target) as con:
        loaded = dict(con.execute(
            "SELECT extension_name, loaded FROM duckdb_extensions() WHERE extension_name IN ('ducklake', 'postgres_scanner')"
        ).fetchall())
        assert loaded == {"ducklake": True, "postgres_scanner": True}
        assert con.execute("SELECT current_setting('autoinstall_known_extensions')").fetchone()[0] is False
        assert con.execute("SELECT current_database()").fetchone()[0] == lake.ALIAS
        con.execute("CREATE TABLE t (id VARCHAR PRIMARY KEY)")  # a key: declared NOT NULL on DuckLake
        with pytest.raises(Exception, match="NOT NULL"):
            con.execute("INSERT INTO t VALUES (NULL)")


def _ingest_asset(warehouse: str, landing: Path) -> dg.ExecuteInProcessResult:
    return dg.materialize(
        [telemetry_ingest, *telemetry_checks],
        resources={"duckdb": WarehouseResource(database=warehouse), "daena_settings": DaenaSettings()},
        run_config={"ops": {"telemetry_ingest": {"config": {"landing_dir": str(landing), "workers": 1}}}},
    )


def test_the_same_asset_writes_the_same_rows_on_both_backends(artisan_dir, data_env, lake_target):
    landing = data_env / "landing"
    for original in sorted(artisan_dir.glob("*.alog"))[:12]:  # the duplicate pair among them
        shutil.copy(original, landing)
    on_file = _ingest_asset(str(data_env / "w.duckdb"), landing)
    on_lake = _ingest_asset(lake_target, landing)
    assert on_file.success and on_lake.success
    checks = [{e.check_name: e.passed for e in r.get_asset_check_evaluations()} for r in (on_file, on_lake)]
    assert checks[0] == checks[1] and len(checks[0]) >= 5  # the same verdicts (real data fails some on both)
    counts = workload.integrity(data_env / "w.duckdb")
    assert counts["sessions"] >= 8 and counts == workload.integrity(lake_target)
    assert workload.points_per_session(data_env / "w.duckdb") == workload.points_per_session(lake_target)


def test_four_writers_a_sensor_run_and_a_reader_at_once(artisan_dir, data_env, lake_target):
    tmp_path, landing = data_env, data_env / "landing"  # the landing folder the sensor watches
    workload.make_copies(artisan_dir, landing, copies=2, originals=8)
    workload.ingest_folder(tmp_path / "serial.duckdb", landing, batch_size=5)
    serial = workload.integrity(tmp_path / "serial.duckdb")
    with connect(lake_target) as con:  # the catalog and tables exist before the writers start
        store.ensure_schema(con)

    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    request = sensor.evaluate_tick(dg.build_sensor_context(resources=defs.resources)).run_requests[0]
    reader = workload.Reader(lake_target)
    reader.start()
    writers = [workload.writer(lake_target, landing, 5, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(4)]
    sensor_run = dg.materialize(  # the run the landing sensor asked for, beside the four
        [telemetry_ingest], resources={"duckdb": WarehouseResource(database=lake_target), "daena_settings": DaenaSettings()}, run_config=request.run_config,
    )
    outputs = [w.communicate(timeout=300) for w in writers]
    reader.stop()
    assert sensor_run.success
    for writer, (out, err) in zip(writers, outputs):
        assert writer.returncode == 0, err[-3000:]
        assert "Traceback" not in err and "locked" not in err, err[-3000:]
    # it read throughout (every 0.1 s; how many times depends on how fast the writers are: 18-30 seen)
    assert reader.errors == [] and len(reader.counts) >= 5
    assert reader.counts == sorted(reader.counts)  # whole batches only: a count never goes back
    assert workload.integrity(lake_target) == serial
    assert workload.points_per_session(lake_target) == workload.points_per_session(tmp_path / "serial.duckdb")


KILL_AFTER_BATCHES = (1, 4)


@pytest.mark.parametrize("backend", ["duckdb", "ducklake"])
def test_kill_9_mid_ingest_leaves_no_half_session_and_the_next_run_completes(backend, artisan_dir, tmp_path, request):
    landing = tmp_path / "landing"
    workload.make_copies(artisan_dir, landing, copies=1, originals=20)
    workload.ingest_folder(tmp_path / "serial.duckdb", landing, batch_size=3)
    serial, serial_points = workload.integrity(tmp_path / "serial.duckdb"), workload.points_per_session(tmp_path / "serial.duckdb")
    target = str(tmp_path / "w.duckdb") if backend == "duckdb" else request.getfixturevalue("lake_target")
    for batches in KILL_AFTER_BATCHES:
        after_kill = workload.kill_after_batches(target, landing, batches, batch_size=3)
        assert 0 < after_kill["sessions"] < serial["sessions"]
        assert {k: after_kill[k] for k in workload.HALF_WRITTEN} == dict.fromkeys(workload.HALF_WRITTEN, 0)
        assert all(serial_points[s] == n for s, n in workload.points_per_session(target).items())
    workload.ingest_folder(target, landing, batch_size=3)
    assert workload.integrity(target) == serial

