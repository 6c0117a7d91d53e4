"""A whole roast through Dagster: the sidecar records it from the virtual Bullet R1 with an
approved and a pending proposal in its queue, the landing sensor notices the file, the
telemetry ingest loads it, and the command outcome lands in commands.* beside it."""
import dagster as dg
import duckdb

from daena_pipelines.definitions import defs
from daena_pipelines.defs.commands import assets as commands_assets
from daena_pipelines.defs.commands import checks as commands_checks
from daena_pipelines.defs.device.assets import SidecarRunConfig, device_command_tables, sidecar_recording
from daena_pipelines.defs.telemetry.assets import telemetry_ingest
from daena_pipelines.defs.telemetry.checks import telemetry_checks
from daena_pipelines.device.sidecar import stepped_recording_id
from daena_pipelines.config import Settings
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import WarehouseResource


def test_roast_recorded_ingested_and_its_command_accounted_for(tmp_path, monkeypatch):
    monkeypatch.setenv("DAENA_DATA_DIR", str(tmp_path / "data"))
    landing = tmp_path / "landing"
    monkeypatch.setenv("DAENA_LANDING_DIR", str(landing))
    warehouse = str(tmp_path / "w.duckdb")
    resources = {"duckdb": WarehouseResource(database=warehouse), "device_pipes_client": dg.PipesSubprocessClient(), "daena_settings": DaenaSettings()}

    assert dg.materialize([device_command_tables], resources=resources).success
    run_config = SidecarRunConfig(
        simulate=True, time_scale=0, seed=11, start_at="2026-11-18T08:00:00+00:00", beans="Kenya Nyeri", batch_weight_g=250,
        execute_commands=True,
    )
    # approved for the session the stepped simulation will record (its id is reproducible) on the virtual R1's serial
    session = stepped_recording_id(run_config.sidecar_config(warehouse, Settings.from_env()))
    with duckdb.connect(warehouse) as con:
        con.execute(
            "INSERT INTO device.command_queue (proposal_id, machine_id, session_id, roaster_serial, command_type, target_value,"
            " target_unit, status, approved_at, expires_at, source)"
            " VALUES ('p-fan', 'r1', ?, '4242', 'SET_FAN', 4, 'level', 'APPROVED', now(), now() + INTERVAL 10 MINUTE, 'test'),"
            "        ('p-pending', 'r1', ?, '4242', 'SET_POWER', 9, 'level', 'PENDING_APPROVAL', NULL, NULL, 'test')",
            [session, session],
        )
    recorded = dg.materialize(
        [device_command_tables, sidecar_recording],
        selection=[sidecar_recording.key],
        resources=resources,
        run_config=dg.RunConfig({"device__sidecar_recording": run_config}),
    )
    assert recorded.success

    tick = defs.resolve_sensor_def("landing_folder_sensor").evaluate_tick(dg.build_sensor_context(resources=resources))
    (request,) = tick.run_requests
    ingested = dg.materialize(
        [telemetry_ingest, *telemetry_checks], resources=resources,
        run_config=request.run_config,
    )
    assert ingested.success
    errors = [e for e in ingested.get_asset_check_evaluations() if e.severity == dg.AssetCheckSeverity.ERROR]
    assert errors and all(e.passed for e in errors)  # the telemetry checks ran, and passed

    with duckdb.connect(warehouse) as con:
        session = con.execute(
            "SELECT s.source, s.source_format, s.beans, m.tp_s, m.fcs_s, m.drop_s, m.drop_bt_c"
            " FROM telemetry.sessions s JOIN telemetry.roast_metrics m USING (session_id)"
        ).fetchall()
        executions = dict(con.execute("SELECT proposal_id, status FROM device.command_executions").fetchall())
        errors = con.execute("SELECT proposal_id, error, observed_value FROM device.command_executions").fetchall()
    ((source, source_format, beans, tp_s, fcs_s, drop_s, drop_bt_c),) = session
    assert (source, source_format, beans) == ("simulator", "sidecar", "Kenya Nyeri")
    assert 0 < tp_s < fcs_s < drop_s and 200 < drop_bt_c < 220
    # approved before the roaster was switched on: the state guard refuses it; the pending one is never sent
    assert executions == {"p-fan": "FAILED"} and "roaster is off" in errors[0][1], errors

    commands = dg.materialize(
        [*dg.load_assets_from_modules([commands_assets]), *dg.load_asset_checks_from_modules([commands_checks])],
        resources=resources,
        run_config={"ops": {"command_proposals": {"config": {"sqlite_paths": [], "jsonl_paths": []}}}},
    )
    assert commands.success
    blocking = [e for e in commands.get_asset_check_evaluations() if e.blocking]
    assert blocking and all(e.passed for e in blocking)
    with duckdb.connect(warehouse) as con:
        rows = con.execute("SELECT proposal_id, status, source FROM commands.proposals").fetchall()
        alerts = con.execute("SELECT alert_type, proposal_id FROM commands.alerts").fetchall()
    assert ("p-fan", "FAILED", "sidecar") in rows, rows
    assert ("EXECUTION_FAILURE", "p-fan") in alerts, alerts
