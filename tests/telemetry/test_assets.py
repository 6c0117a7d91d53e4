"""The telemetry asset graph through Dagster, on a temp warehouse."""
import json
import os
import shutil
from pathlib import Path

import dagster as dg
import duckdb

from daena_pipelines.definitions import defs
from daena_pipelines.db import WarehouseBusy
from daena_pipelines.defs.telemetry import sensors
from daena_pipelines.defs.telemetry.assets import roast_curve, telemetry_ingest
from daena_pipelines.defs.telemetry.checks import telemetry_checks
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import WarehouseResource
from daena_pipelines.telemetry import ingest, quality
from tests.telemetry.profiles import alog_bytes, profile


def test_definitions_load():
    dg.Definitions.validate_loadable(defs)
    ingest_job = defs.resolve_job_def("telemetry_ingest_job").asset_layer.selected_asset_keys
    assert set(telemetry_ingest.keys) <= ingest_job
    assert ingest_job <= defs.resolve_job_def("daena_default_job").asset_layer.selected_asset_keys


def test_materialize_ingest_with_checks(data_env):
    landing = data_env / "landing"
    (landing / "a.alog").write_bytes(alog_bytes(profile()))
    (landing / "b.alog").write_bytes(alog_bytes(profile(mode="F", roastUUID="fahrenheit", daena_source="simulator")))
    (landing / "broken.alog").write_bytes(b"{'mode': ")
    (landing / "README.txt").write_text("not a roast")
    warehouse = str(data_env / "w.duckdb")
    result = dg.materialize([telemetry_ingest, *telemetry_checks], resources={"duckdb": WarehouseResource(database=warehouse), "daena_settings": DaenaSettings()})
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks.pop("landing_files_loaded") is False  # broken.alog (test_rejected_file_warns_until_fixed)
    assert checks and all(checks.values()), checks
    sessions = next(m for m in result.asset_materializations_for_node("telemetry_ingest") if m.asset_key.path[-1] == "sessions")
    assert sessions.metadata["dagster/row_count"].value == 2
    assert sessions.metadata["files_rejected"].value == 1
    columns = {c.name: c.description for c in sessions.metadata["dagster/column_schema"].schema.columns}
    assert all(columns.values()) and columns["batch_weight_g"] == "batch weight [grams]", columns
    assert columns["sample_interval_s"] == "sample interval [seconds]"  # not "from CHARGE": an interval
    metrics = next(m for m in result.asset_materializations_for_node("telemetry_ingest") if m.asset_key.path[-1] == "roast_metrics")
    columns = {c.name: c.description for c in metrics.metadata["dagster/column_schema"].schema.columns}
    assert (columns["tp_s"], columns["artisan_drop_s"], columns["drying_s"]) == (
        "tp [seconds from CHARGE]", "Artisan's own computed value: drop [seconds from CHARGE]", "drying [seconds]")
    points = next(m for m in result.asset_materializations_for_node("telemetry_ingest") if m.asset_key.path[-1] == "points")
    curve = dg.materialize([roast_curve], resources={"duckdb": WarehouseResource(database=warehouse), "daena_settings": DaenaSettings()})
    chart = curve.asset_materializations_for_node("telemetry__roast_curve")[0].metadata
    # the chart the asset page draws in place: markdown under the UI's 1000-character inline limit
    assert chart["roast_curve"].value.startswith("![BT red, ET blue") and len(chart["roast_curve"].value) < 1000
    assert chart["full_chart"].value.startswith("![roast curve") and chart["svg_file"].value.endswith(".svg")
    events = {r.data["event"]: r.data for r in chart["events"].value.records}
    with duckdb.connect(warehouse) as con:
        latest, tp_s = con.execute("SELECT session_id, tp_s FROM telemetry.sessions JOIN telemetry.roast_metrics "
                                   "USING (session_id) ORDER BY roasted_at DESC LIMIT 1").fetchone()
    assert chart["session_id"].value == latest and events["CHARGE"]["t_s"] == 0 and events["TP"]["t_s"] == round(tp_s, 1)
    assert {r.data["session_id"] for r in points.metadata["preview"].value.records} == {latest}  # the latest roast
    # one roast real, one simulated: every preview of a derived table says which is which (before: only sessions did)
    with duckdb.connect(warehouse) as con:
        source_of = dict(con.execute("SELECT session_id, source FROM telemetry.sessions").fetchall())
    assert sorted(source_of.values()) == ["real", "simulator"]
    assert {(r.data["session_id"], r.data["source"]) for r in metrics.metadata["preview"].value.records} == set(source_of.items())
    assert points.metadata["preview_session"].value == f"the latest roast (by roasted_at): {latest}, source {source_of[latest]}"
    with duckdb.connect(warehouse) as con:
        assert con.execute("SELECT list(original_unit ORDER BY original_unit) FROM telemetry.sessions").fetchone()[0] == ["C", "F"]


def test_check_fails_when_data_is_bad(data_env):
    warehouse = str(data_env / "w.duckdb")
    (data_env / "landing" / "a.alog").write_bytes(alog_bytes(profile()))
    celsius_marked_f = {**profile(roastUUID="unit"), "mode": "F"}  # loads, with a quality flag
    (data_env / "landing" / "c.alog").write_bytes(alog_bytes(celsius_marked_f))
    dg.materialize([telemetry_ingest], resources={"duckdb": WarehouseResource(database=warehouse), "daena_settings": DaenaSettings()})
    with duckdb.connect(warehouse) as con:
        con.execute("INSERT INTO telemetry.points (session_id, t_s, bt_c) SELECT session_id, 1e6, 900 FROM telemetry.sessions")
    result = dg.materialize(
        [telemetry_ingest, *telemetry_checks], resources={"duckdb": WarehouseResource(database=warehouse), "daena_settings": DaenaSettings()},
        selection=dg.AssetSelection.checks(*telemetry_checks), raise_on_error=False,
    )
    failed = {e.check_name for e in result.get_asset_check_evaluations() if not e.passed}
    assert {"temperatures_plausible", "quality_flags"} <= failed


def test_rejected_file_warns_until_fixed(data_env):
    """A bad file in the landing folder keeps a warning naming it, its problem and what to do, on
    every later run too (they skip it as unchanged and report 0 rejected), until it is fixed."""
    landing = data_env / "landing"
    (landing / "good.alog").write_bytes(alog_bytes(profile()))
    (landing / "broken.alog").write_bytes(b"{'mode': ")
    resources = {"duckdb": WarehouseResource(database=str(data_env / "w.duckdb")), "daena_settings": DaenaSettings()}

    def landing_check() -> tuple[dg.AssetCheckEvaluation, int]:
        result = dg.materialize([telemetry_ingest, *telemetry_checks], resources=resources,
                                selection=dg.AssetSelection.assets(telemetry_ingest) | dg.AssetSelection.checks_for_assets(telemetry_ingest))
        sessions = next(m for m in result.asset_materializations_for_node("telemetry_ingest") if m.asset_key.path[-1] == "sessions")
        check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "landing_files_loaded")
        return check, sessions.metadata["dagster/row_count"].value

    for _ in range(2):  # the second run skips broken.alog as unchanged
        check, sessions = landing_check()
        assert sessions == 1  # the good file loaded beside the bad one
        assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
        assert f"file={landing / 'broken.alog'}, problem=syntax: " in check.description
        assert "quarantine" in check.description and "What to do: docs/telemetry.md#" in check.description
    (landing / "broken.alog").write_bytes(alog_bytes(profile(roastUUID="fixed")))
    check, sessions = landing_check()
    assert check.passed and sessions == 2


def test_landing_sensor_knows_a_file_the_ingest_could_not_read(data_env, monkeypatch):
    """A file too large to read is recorded by its size and mtime (ingest.stat_marker), not a SHA-256: the
    sensor hashed it (reading it whole), never found it and requested it again every 15 minutes, for ever.
    A file it cannot read stopped every tick with the error (no other file was ingested); now it is requested
    and the ingest records why."""
    landing = data_env / "landing"
    (landing / "big.alog").write_bytes(alog_bytes(profile()))
    monkeypatch.setattr(ingest, "MAX_FILE_BYTES", 100)
    warehouse = str(data_env / "data" / "warehouse.duckdb")
    assert dg.materialize([telemetry_ingest], resources={"duckdb": WarehouseResource(database=warehouse), "daena_settings": DaenaSettings()}).success
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    first = sensor.evaluate_tick(dg.build_sensor_context(resources=defs.resources))
    assert first.run_requests == [] and json.loads(first.cursor)["requested"] == {}
    (landing / "locked.alog").write_bytes(alog_bytes(profile(roastUUID="locked")))
    read_bytes = Path.read_bytes
    monkeypatch.setattr(Path, "read_bytes", lambda p: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                        if p.name == "locked.alog" else read_bytes(p))
    (request,) = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, resources=defs.resources)).run_requests
    assert request.run_config["ops"]["telemetry_ingest"]["config"]["paths"] == [str(landing / "locked.alog")]


def test_a_rejected_file_whose_name_is_not_utf8_is_reported(data_env):
    """Such a name is always rejected (bad_text) and stored with its bad bytes escaped; the check looked for the
    escaped name on disk, found nothing and passed while the file sat unloaded in the landing folder."""
    landing = data_env / "landing"
    (landing / os.fsdecode(b"caf\xe9.alog")).write_bytes(alog_bytes(profile()))
    resources = {"duckdb": WarehouseResource(database=str(data_env / "w.duckdb")), "daena_settings": DaenaSettings()}
    result = dg.materialize([telemetry_ingest, *telemetry_checks], resources=resources,
                            selection=dg.AssetSelection.assets(telemetry_ingest) | dg.AssetSelection.checks_for_assets(telemetry_ingest))
    check = next(e for e in result.get_asset_check_evaluations() if e.check_name == "landing_files_loaded")
    assert not check.passed and "caf\\udce9.alog, problem=bad_text: " in check.description
    (landing / os.fsdecode(b"caf\xe9.alog")).unlink()  # removed from the folder: no longer reported
    with duckdb.connect(str(data_env / "w.duckdb"), read_only=True) as con:
        assert quality.rejected_files(con) == []


def test_the_landing_sensors_run_charts_the_roast_it_ingested(data_env):
    """A roast recorded (or dropped into the landing folder) reaches the roast curve through the
    sensor's run alone, not only after someone rematerialises the chart."""
    landing = data_env / "landing"
    (landing / "a.alog").write_bytes(alog_bytes(profile()))
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    (request,) = sensor.evaluate_tick(dg.build_sensor_context(resources=defs.resources)).run_requests
    result = defs.resolve_job_def(request.job_name or "telemetry_ingest_job").execute_in_process(
        run_config=request.run_config, instance=dg.DagsterInstance.ephemeral())
    (chart,) = result.asset_materializations_for_node("telemetry__roast_curve")
    with duckdb.connect(str(data_env / "data" / "warehouse.duckdb"), read_only=True) as con:
        (session_id,) = con.execute("SELECT session_id FROM telemetry.sessions").fetchone()
    assert chart.metadata["session_id"].value == session_id


def test_landing_sensor_requests_only_new_or_changed_files(data_env):
    landing = data_env / "landing"
    (landing / "a.alog").write_bytes(alog_bytes(profile()))
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    first = sensor.evaluate_tick(dg.build_sensor_context(resources=defs.resources))
    assert len(first.run_requests) == 1
    assert first.run_requests[0].run_config["ops"]["telemetry_ingest"]["config"]["paths"] == [str(landing / "a.alog")]
    idle = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, resources=defs.resources))
    assert idle.run_requests == [] and idle.skip_message
    shutil.copy(landing / "a.alog", landing / "b.alog")
    second = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, resources=defs.resources))
    assert second.run_requests[0].run_config["ops"]["telemetry_ingest"]["config"]["paths"] == [str(landing / "b.alog")]
    assert sensors.changed_files({"x": "1:1"}, {"x": "1:2"}) == ["x"]


def test_landing_sensor_requests_again_what_a_failed_run_did_not_ingest(data_env, monkeypatch):
    """The cursor moves on when a run is requested; if that run fails (or is lost with a stopped
    `dagster dev`) its files were never ingested and no later tick saw them as new."""
    landing = data_env / "landing"
    (landing / "a.alog").write_bytes(alog_bytes(profile()))
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    instance = dg.DagsterInstance.ephemeral()

    def tick(cursor, after_s=0.0):
        monkeypatch.setattr(sensors.time, "time", lambda: 1_000_000.0 + after_s)
        return sensor.evaluate_tick(dg.build_sensor_context(cursor=cursor, resources=defs.resources, instance=instance))

    first = tick(None)
    (request,) = first.run_requests  # its run fails: nothing ingested
    assert tick(first.cursor, after_s=60).run_requests == []  # meanwhile it may still be queued or running
    # still unfinished after 15 min (its step waits for the duckdb pool's slot behind a long run): no second run
    run = instance.add_run(dg.DagsterRun(job_name="telemetry_ingest_job", status=dg.DagsterRunStatus.STARTED,
                                         tags={"dagster/run_key": request.run_key}))
    assert tick(first.cursor, after_s=sensors.RETRY_AFTER_S + 1).run_requests == []
    instance.report_run_failed(run)
    late = tick(first.cursor, after_s=sensors.RETRY_AFTER_S + 2)
    (again,) = late.run_requests
    assert again.run_config == request.run_config and again.run_key != request.run_key
    warehouse = str(data_env / "data" / "warehouse.duckdb")
    assert dg.materialize([telemetry_ingest], resources={"duckdb": WarehouseResource(database=warehouse), "daena_settings": DaenaSettings()}).success
    done = tick(late.cursor, after_s=2 * sensors.RETRY_AFTER_S + 2)
    assert done.run_requests == [] and json.loads(done.cursor)["requested"] == {}
    # a requested file deleted before it was ingested leaves the cursor: nothing to retry, no growth
    (landing / "b.alog").write_bytes(alog_bytes(profile(roastUUID="b")))
    (request,) = (asked := tick(done.cursor, after_s=3 * sensors.RETRY_AFTER_S)).run_requests
    (landing / "b.alog").unlink()
    gone = tick(asked.cursor, after_s=4 * sensors.RETRY_AFTER_S + 1)
    assert gone.run_requests == [] and json.loads(gone.cursor)["requested"] == {}


def _first_tick_after_materialize(data_env):
    """(landing folder, the sensor, its first tick) after `a.alog` was ingested without it."""
    landing = data_env / "landing"
    (landing / "a.alog").write_bytes(alog_bytes(profile()))
    warehouse = str(data_env / "data" / "warehouse.duckdb")
    assert dg.materialize([telemetry_ingest], resources={"duckdb": WarehouseResource(database=warehouse), "daena_settings": DaenaSettings()}).success
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    return landing, sensor, sensor.evaluate_tick(dg.build_sensor_context(resources=defs.resources))


def test_landing_sensor_requests_no_run_for_files_already_ingested(data_env, monkeypatch):
    """After `daena materialize` the sensor's first tick (no cursor yet) finds nothing to do."""
    landing, sensor, first = _first_tick_after_materialize(data_env)
    assert first.run_requests == [] and "no new or changed roast files among 1" in first.skip_message
    (landing / "a.alog").write_bytes(alog_bytes(profile(roastUUID="edited")))
    edited = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, resources=defs.resources))
    assert edited.run_requests[0].run_config["ops"]["telemetry_ingest"]["config"]["paths"] == [str(landing / "a.alog")]


def test_an_idle_landing_sensor_tick_does_not_open_the_warehouse(data_env, monkeypatch):
    """Nothing new or due: nothing to look up, so a run writing the warehouse does not hold the tick back
    (before: it waited up to DAENA_LOCK_WAIT_S for the lock, then skipped as "being written")."""
    landing, sensor, first = _first_tick_after_materialize(data_env)

    def busy(*args, **kwargs):
        raise WarehouseBusy("a run is writing")

    monkeypatch.setattr(sensors, "connect", busy)
    idle = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, resources=defs.resources))
    assert idle.run_requests == [] and "no new or changed roast files among 1" in idle.skip_message
    (landing / "b.alog").write_bytes(alog_bytes(profile(roastUUID="b")))
    changed = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, resources=defs.resources))
    assert changed.run_requests == [] and "being written" in changed.skip_message


def test_landing_sensor_knows_an_ingested_file_whose_name_is_not_utf8(data_env):
    """The warehouse stores such a name with its bad bytes escaped (ingest.storable); the sensor compared the
    raw name, so it took the file for never ingested and requested it again every 15 minutes, for ever."""
    landing = data_env / "landing"
    (landing / os.fsdecode(b"caf\xe9.alog")).write_bytes(alog_bytes(profile()))
    warehouse = str(data_env / "data" / "warehouse.duckdb")
    assert dg.materialize([telemetry_ingest], resources={"duckdb": WarehouseResource(database=warehouse), "daena_settings": DaenaSettings()}).success
    first = defs.resolve_sensor_def("landing_folder_sensor").evaluate_tick(dg.build_sensor_context(resources=defs.resources))
    assert first.run_requests == [] and json.loads(first.cursor)["requested"] == {}


def test_the_in_place_chart_fits_the_ui_inline_limit_even_for_noisy_curves():
    """The UI draws markdown metadata in place only below 1000 characters."""
    import numpy as np

    from daena_pipelines.telemetry import plot

    rng = np.random.default_rng(7)
    t = np.arange(-120.0, 1200.0)
    noisy = rng.uniform(0, 300, len(t))
    events = {name: float(rng.uniform(0, 1200)) for name in ("CHARGE", "TP", "DRY END", "FCs", "DROP")}
    svg = plot.roast_curve_thumbnail(t, noisy, rng.uniform(0, 300, len(t)), events)
    assert len(plot.svg_markdown(svg, "BT red, ET blue; events dashed")) < plot.INLINE_MD_LIMIT
    assert svg.count("<path") == 3 and svg.count("M") == 2 + len(events)  # ET, BT, one tick per event
