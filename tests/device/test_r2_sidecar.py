"""The Bullet R2 through the sidecar: a roast recorded by ``sidecar_job`` and ingested by ``telemetry_ingest_job``,\nand approved commands within the R2's ranges."""
import dagster as dg
import duckdb
import numpy as np
import pytest

from daena_pipelines.defs.device import assets as device_assets
from daena_pipelines.defs.device.assets import SidecarRunConfig
from daena_pipelines.defs.device.jobs import sidecar_job
from daena_pipelines.defs.telemetry import assets as telemetry_assets
from daena_pipelines.defs.telemetry.assets import IngestConfig
from daena_pipelines.defs.telemetry.jobs import telemetry_ingest_job
from daena_pipelines.telemetry.sidecar import parse_sidecar
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import WarehouseResource

from .conftest import run_until
from .test_commands_safety import executions, queue, roasting_for  # the warehouse fixture is in conftest

R2_SERIAL = "R2V-004242"  # the virtual R2's USB serial string


@pytest.fixture(scope="module")
def r2_roast(tmp_path_factory):
    """One deterministic simulated R2 roast (operator at the panel) recorded through ``sidecar_job``, then
    ``telemetry_ingest_job``: (recording metadata, parsed session, warehouse path)."""
    folder = tmp_path_factory.mktemp("r2")
    warehouse = str(folder / "w.duckdb")
    defs = dg.Definitions(
        assets=dg.load_assets_from_modules([device_assets, telemetry_assets]), jobs=[sidecar_job, telemetry_ingest_job],
        resources={"duckdb": WarehouseResource(database=warehouse), "device_pipes_client": dg.PipesSubprocessClient(), "daena_settings": DaenaSettings()},
    )
    with pytest.MonkeyPatch.context() as env:
        env.setenv("DAENA_DATA_DIR", str(folder / "data"))
        env.setenv("DAENA_LANDING_DIR", str(folder / "landing"))
        recorded = defs.resolve_job_def("sidecar_job").execute_in_process(run_config=dg.RunConfig({
            "device__sidecar_recording": SidecarRunConfig(
                model="r2", simulate=True, time_scale=0, seed=7, start_at="2026-11-17T09:00:00+00:00",
                beans="Kenya Nyeri", execute_commands=False)}))  # the queue is tested below; here it costs ~1 min
        assert recorded.success
        ingested = defs.resolve_job_def("telemetry_ingest_job").execute_in_process(
            run_config=dg.RunConfig({"telemetry_ingest": IngestConfig(landing_dir=str(folder / "data" / "landing"))}))
        assert ingested.success
    metadata = next(e for e in recorded.get_asset_materialization_events()
                    if e.asset_key == dg.AssetKey(["device", "sidecar_recording"])).materialization.metadata
    metadata = {name: value.value for name, value in metadata.items()}
    path = metadata["path"]
    return metadata, parse_sidecar(open(path, "rb").read(), path), warehouse


def test_r2_roast_records_both_probes_and_its_own_fields(r2_roast):
    metadata, session, _ = r2_roast
    assert (metadata["end_reason"], metadata["lost_samples"], metadata["invalid_samples"], metadata["source"]) == (
        "cool_end", 0, 0, "simulator")
    assert session.machine == "Aillio Bullet R2 (virtual)" and session.control_unit == "r2_level"
    assert session.settings["device"]["product_id"] == "0xa4cd" and session.settings["device"]["serial"] == R2_SERIAL
    assert session.settings["channel_mapping"] == {"bt": "a", "et": "b"}  # A = IBTS (Artisan's BT), B = bean probe
    assert list(session.events) == ["CHARGE", "DRY_END", "FCs", "DROP", "COOL"]
    charge, fcs, drop = session.events["CHARGE"], session.events["FCs"], session.events["DROP"]
    # at CHARGE the IBTS sees the cold beans while the probe still reads the preheated drum
    assert session.bt_c[charge] < 40 and session.et_c[charge] > 200
    assert 195 < session.bt_c[drop] < 215 and 195 < session.et_c[drop] < 220
    extra = session.extra
    for name in ("ibts_ror_c_per_min", "bean_probe_ror_c_per_min", "humidity_pct", "atmospheric_pressure_hpa",
                 "energy_used_this_roast", "crack_count", "drum_rpm", "voltage_rms_v", "r2_state"):
        assert name in extra, name
    assert extra["crack_count"][fcs - 5] == 0 and extra["crack_count"][drop] > 50  # the roaster counts the cracks
    assert np.nanmax(extra["ibts_ror_c_per_min"][charge + 100:fcs]) > 5
    assert set(np.unique(extra["r2_state"])) == {0x00, 0x02, 0x03, 0x04, 0x06, 0x07}  # the R2's own codes on the wire
    heater = session.controls["heater"]
    assert np.nanmax(heater) == 14  # the R2's top level, reached by its own preheat controller and the operator


def test_r2_session_ingests_into_telemetry(r2_roast):
    metadata, session, warehouse = r2_roast
    with duckdb.connect(warehouse) as con:
        row = con.execute("SELECT session_id, source_format, source, control_unit, machine, beans FROM telemetry.sessions").fetchall()
        assert row == [(metadata["session_id"], "sidecar", "simulator", "r2_level", "Aillio Bullet R2 (virtual)", "Kenya Nyeri")]
        points, with_probe_ror, with_ibts_ror = con.execute(
            "SELECT count(*), count(extra['bean_probe_ror_c_per_min']), count(extra['ibts_ror_c_per_min']) "
            "FROM telemetry.points_with_extra"
        ).fetchone()
        assert points == metadata["samples"] == with_probe_ror == with_ibts_ror
        bt, et = con.execute("SELECT bt_c, et_c FROM telemetry.points WHERE t_s = 0").fetchone()
        assert (bt, et) == (session.bt_c[session.events["CHARGE"]], session.et_c[session.events["CHARGE"]])  # IBTS, probe
        assert con.execute("SELECT count(*), bool_and(fcs_s > 0 AND drop_s > fcs_s) FROM telemetry.roast_metrics").fetchone() == (1, True)


def test_approved_commands_use_the_r2_ranges_and_crc_framed_steps(started, warehouse):
    sidecar, device = started(model="r2", warehouse=warehouse)
    assert run_until(sidecar, roasting_for(90))
    assert device.heater == 14
    since = sidecar.clock.now()
    queue(warehouse, ("heater-15", "r2", "SET_POWER", 15, "APPROVED"), ("heater-11", "r2", "SET_POWER", 11, "APPROVED"),
          ("drum-3", "r2", "SET_DRUM", 3, "APPROVED"), serial=R2_SERIAL, unit="r2_level")
    assert run_until(sidecar, lambda s: sum(s.command_statuses.values()) == 3)
    sent = [data for t, data in device.wire_log if t >= since]
    heater_down, drum_down = bytes.fromhex("3402aaaa19108df3"), bytes.fromhex("3202aaaac5746233")  # docs/device.md
    assert sent.count(heater_down) == 3 and sent.count(drum_down) == 3 and len(sent) == 6  # 14 -> 11, 6 -> 3 by steps
    assert device.rejected == [] and (device.heater, device.drum) == (11, 3)
    sidecar.finish()  # executions reach the warehouse by then
    rows = executions(warehouse)
    assert rows["heater-15"][0] == "FAILED" and "outside the allowed range 0..14" in rows["heater-15"][2]
    assert rows["heater-11"][:2] == ("COMPLETED", 11.0) and rows["drum-3"][:2] == ("COMPLETED", 3.0)
