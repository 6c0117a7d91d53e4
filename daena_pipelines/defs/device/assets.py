"""Dagster assets of the device domain: the command tables and the sidecar recording (via Pipes).

No ``from __future__ import annotations`` here: Dagster reads the config/resource annotations at runtime.
"""

import sys
from dataclasses import asdict

import dagster as dg

from daena_pipelines import config
from daena_pipelines.db import transaction
from daena_pipelines.device import command_store, contract
from daena_pipelines.device.sidecar import SidecarConfig
from daena_pipelines.device.virtual_r1 import Faults, OperatorPlan, VirtualR1Config
from daena_pipelines.lib.metadata import table_metadata
from daena_pipelines.lib.specs import OWNERS, key, table_spec
from daena_pipelines.lib.warehouse import DUCKDB_POOL, WarehouseResource

QUEUE_KEY, EXECUTIONS_KEY = key(contract.COMMAND_QUEUE), key(contract.COMMAND_EXECUTIONS)


@dg.multi_asset(
    specs=[
        table_spec(contract.COMMAND_QUEUE, "Proposals the sidecar may execute: only rows in status APPROVED for its machine_id run.",
                   kinds={"duckdb"}),
        table_spec(contract.COMMAND_EXECUTIONS, "What the sidecar did with each proposal: EXECUTING -> COMPLETED|FAILED|ABORTED|TIMEOUT, with the observed level.",
                   kinds={"duckdb"}),
    ],
    pool=DUCKDB_POOL,
)
def device_command_tables(duckdb: WarehouseResource):
    """Create the command tables (idempotent) and report their contents."""
    with duckdb.get_connection() as con:
        with transaction(con):
            command_store.ensure_tables(con)
        yield dg.MaterializeResult(asset_key=QUEUE_KEY, metadata=table_metadata(con, contract.COMMAND_QUEUE))
        yield dg.MaterializeResult(asset_key=EXECUTIONS_KEY, metadata=table_metadata(
            con, contract.COMMAND_EXECUTIONS,
            "SELECT proposal_id, command_type, target_value, status, observed_value, error, source "
            "FROM device.command_executions ORDER BY started_at DESC LIMIT 10"))


class SidecarRunConfig(dg.Config):
    """Run config of ``sidecar_job``; without ``simulate`` a real R1 must be on USB."""

    machine_id: str = "r1"
    machine_name: str | None = None
    simulate: bool = False
    time_scale: float = 1.0  # simulation: 1 real time, 60 = a minute per second, 0 = as fast as possible
    stop_on: str = "cool_end"  # 'cool_end' or 'duration'
    max_duration_s: float = 1800.0
    bt_channel: str = "a"
    execute_commands: bool = True  # read device.command_queue and execute APPROVED proposals
    landing_dir: str | None = None  # default: DAENA_LANDING_DIR (the telemetry ingest's folder)
    beans: str | None = None
    title: str | None = None
    notes: str | None = None
    batch_weight_g: float | None = None
    # simulation only
    seed: int = 0
    start_at: str | None = None
    operator: bool = True  # someone at the virtual R1's panel runs a whole roast
    drop_bt_c: float = 210.0
    disconnect_at_s: float | None = None
    reconnect_after_s: float | None = None
    heater_ignores_steps: bool = False

    def sidecar_config(self, warehouse: str) -> SidecarConfig:
        return SidecarConfig(
            machine_id=self.machine_id, machine_name=self.machine_name, simulate=self.simulate,
            time_scale=self.time_scale, stop_on=self.stop_on, max_duration_s=self.max_duration_s,
            bt_channel=self.bt_channel, warehouse=warehouse if self.execute_commands else None,
            landing_dir=self.landing_dir or str(config.landing_dir()),
            recordings_dir=str(config.data_dir() / "device" / "recordings"),
            beans=self.beans, title=self.title, notes=self.notes, batch_weight_g=self.batch_weight_g,
            seed=self.seed, start_at=self.start_at,
            virtual=VirtualR1Config(
                batch_g=self.batch_weight_g or 250.0,
                operator=OperatorPlan(drop_bt_c=self.drop_bt_c) if self.operator else None,
                faults=Faults(disconnect_at_s=self.disconnect_at_s, reconnect_after_s=self.reconnect_after_s,
                              heater_ignores_steps=self.heater_ignores_steps),
            ),
        )


@dg.asset(
    key=key(contract.SIDECAR_RECORDING),
    description=(
        "One roast recorded from the Bullet R1 (or the virtual R1 with simulate=true) by the sidecar process, "
        "launched through Dagster Pipes; the *.sidecar.jsonl file lands in the landing folder for the telemetry ingest. "
        "Not in the duckdb pool: the sidecar runs for a whole roast and opens the warehouse only briefly."
    ),
    kinds={"python", "usb"},
    owners=OWNERS,
    group_name="device",
    deps=[QUEUE_KEY, EXECUTIONS_KEY],
)
def sidecar_recording(
    context: dg.AssetExecutionContext, config: SidecarRunConfig, duckdb: WarehouseResource,
    device_pipes_client: dg.PipesSubprocessClient,
) -> dg.MaterializeResult:
    settings = config.sidecar_config(duckdb.database)
    return device_pipes_client.run(
        command=[sys.executable, "-m", "daena_pipelines.device.sidecar_process"],
        context=context,
        extras={"sidecar": _jsonable(settings)},
    ).get_materialize_result()


def _jsonable(settings: SidecarConfig) -> dict:
    """The config as JSON-able values; the child rebuilds it with ``SidecarConfig.from_dict``."""
    values = asdict(settings)
    values["virtual"].pop("thermal")  # the model's defaults; not a run setting
    return values

