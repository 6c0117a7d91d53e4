"""The sidecar job end to end through Dagster: Pipes subprocess, virtual R1, file in the data folder's landing."""
import duckdb
import dagster as dg
import pytest

from daena_pipelines.defs.device.assets import SidecarRunConfig, device_command_tables, sidecar_recording
from daena_pipelines.definitions import defs
from daena_pipelines.telemetry.sidecar import parse_sidecar
from daena_pipelines.config import Settings
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import WarehouseResource


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("DAENA_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DAENA_LANDING_DIR", str(tmp_path / "samples"))  # the user's files: recordings never go there
    return tmp_path, tmp_path / "data" / "landing"


def materialize(tmp_path, instance=None, **run_config):
    return dg.materialize(
        [device_command_tables, sidecar_recording],
        instance=instance,
        resources={"duckdb": WarehouseResource(database=str(tmp_path / "w.duckdb")), "daena_settings": DaenaSettings(),
                   "device_pipes_client": dg.PipesSubprocessClient()},
        run_config=dg.RunConfig({"device__sidecar_recording": SidecarRunConfig(**run_config)}),
        raise_on_error=False,
    )


def test_launchpad_scaffold_is_safe_and_every_field_described():
    """The Launchpad's scaffold records from the virtual roaster and executes nothing; each field says what it does."""
    scaffold = SidecarRunConfig()
    assert scaffold.simulate and not scaffold.execute_commands
    assert scaffold.sidecar_config("w.duckdb", Settings.from_env()).warehouse is None
    assert {"beans", "title", "batch_weight_g", "notes"} <= set(SidecarRunConfig.model_fields)
    undescribed = [name for name, field in SidecarRunConfig.model_fields.items() if not field.description]
    assert undescribed == [], f"describe these in defs/device/assets.py FIELD_DOCS: {undescribed}"


def test_only_sidecar_job_drives_the_roaster():
    """Recording runs on demand (sidecar_job); `daena materialize`'s job never starts a roast."""
    in_job = defs.resolve_job_def("sidecar_job").asset_layer.selected_asset_keys
    in_default = defs.resolve_job_def("daena_default_job").asset_layer.selected_asset_keys
    assert sidecar_recording.key in in_job and sidecar_recording.key not in in_default


def test_simulated_roast_through_pipes_lands_a_sidecar_file(env):
    tmp_path, landing = env
    result = materialize(tmp_path, simulate=True, time_scale=0, seed=3, start_at="2026-11-18T08:00:00+00:00",
                         beans="Ethiopia Guji", batch_weight_g=250)
    assert result.success
    events = result.get_asset_materialization_events()
    recording = next(e for e in events if e.asset_key == dg.AssetKey(["device", "sidecar_recording"]))
    metadata = recording.materialization.metadata
    assert metadata["end_reason"].value == "cool_end" and metadata["lost_samples"].value == 0
    assert metadata["source"].value == "simulator" and metadata["samples"].value > 900
    assert metadata["dagster/row_count"].value == metadata["samples"].value
    assert metadata["commands_executed"].value == 0 and metadata["faults"].value == []
    files = list(landing.glob("*.sidecar.jsonl"))
    assert len(files) == 1 and str(files[0]) == metadata["path"].value
    session = parse_sidecar(files[0].read_bytes(), str(files[0]))
    assert session.session_id == metadata["session_id"].value and session.beans == "Ethiopia Guji"
    assert {"CHARGE", "DROP", "COOL"} <= set(session.events)
    assert not list((tmp_path / "data" / "device" / "recordings").glob("*"))  # nothing left half-way
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert con.execute("SELECT count(*) FROM device.command_executions").fetchone() == (0,)


def test_without_simulate_and_no_device_fails_with_the_clear_message(env):
    tmp_path, _ = env
    instance = dg.DagsterInstance.ephemeral()
    result = materialize(tmp_path, instance=instance, simulate=False)  # no R1 here (and maybe no libusb)
    assert not result.success
    errors = [record.user_message for record in instance.all_logs(result.run_id) if record.level >= 40]
    expected = ("No Aillio Bullet R1 found on USB (searched vendor:product 0483:5741, 0483:a27e)", "No libusb backend found for pyusb")
    assert any(message.startswith(expected) for message in errors), errors


LAUNCHPAD_SIMULATION = {"time_scale": 0, "seed": 3, "start_at": "2026-11-17T09:00:00+00:00", "operator": False,
                        "drop_bt_c": 205.0, "disconnect_at_s": 60.0, "reconnect_after_s": 5.0,
                        "unplug_file": "/tmp/pull-the-cable", "heater_ignores_steps": True}


def test_every_simulation_field_of_the_launchpad_is_listed_as_simulation_only():
    from daena_pipelines.defs.device.assets import SIMULATION_ONLY

    described = {name for name, field in SidecarRunConfig.model_fields.items() if field.description.startswith("Simulation")}
    assert described == set(SIMULATION_ONLY) == set(LAUNCHPAD_SIMULATION)


@pytest.mark.parametrize("name", sorted(LAUNCHPAD_SIMULATION))
def test_a_simulation_field_on_a_real_launchpad_run_is_refused_naming_it(name):
    """simulate false with, say, unplug_file set: before, the fault was dropped and a real roast ran with nothing
    injected. Refused at config time, naming the Launchpad field, before the sidecar process starts."""
    run = SidecarRunConfig(simulate=False, **{name: LAUNCHPAD_SIMULATION[name]})
    with pytest.raises(ValueError, match=rf"only with simulate: true.*: {name}\."):
        run.sidecar_config("w.duckdb", Settings.from_env())


def test_launchpad_configs_reach_the_sidecar_process_as_given():
    """Through the Pipes extras (what sidecar_process rebuilds): a plain real run is accepted with no virtual settings,
    and a simulated one keeps its faults and its operator choice."""
    from daena_pipelines.defs.device.assets import _jsonable
    from daena_pipelines.device.sidecar import SidecarConfig
    from daena_pipelines.device.virtual_r1 import VirtualR1Config

    def extras(**run_config):
        return SidecarConfig.from_dict(_jsonable(SidecarRunConfig(**run_config).sidecar_config("w.duckdb", Settings.from_env())))

    real = extras(simulate=False, beans="Kenya Nyeri", batch_weight_g=250, roaster_serial="4242")
    assert (real.simulate, real.batch_weight_g, real.virtual) == (False, 250, VirtualR1Config())
    simulated = extras(**LAUNCHPAD_SIMULATION, simulate=True)
    assert (simulated.virtual.operator, simulated.virtual.faults.unplug_file) == (None, "/tmp/pull-the-cable")
    assert simulated.simulation_settings() == [
        "time_scale", "seed", "start_at", "virtual.faults.disconnect_at_s", "virtual.faults.reconnect_after_s",
        "virtual.faults.unplug_file", "virtual.faults.heater_ignores_steps"]
