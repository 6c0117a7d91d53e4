"""Dagster assets of the device domain: the command tables and the sidecar recording (via Pipes).

No ``from __future__ import annotations`` here: Dagster reads the config/resource annotations at runtime.
"""

import sys
from dataclasses import asdict

import dagster as dg
from pydantic import Field

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
    """Run config of ``sidecar_job``; without ``simulate`` a real roaster must be on USB. Defaults are the safe ones."""

    machine_id: str = Field(default="r1", description="Machine id matched against device.command_queue.machine_id: only this machine's approvals run.")
    machine_name: str | None = Field(default=None, description="Name written into the recording; default: the roaster's model name (plus '(virtual)' when simulated).")
    roaster_serial: str | None = Field(default=None, description='Drive only the roaster with this serial; unset: the only roaster on the bus (several is an error). Approvals must name the same serial.')
    simulate: bool = Field(default=False, description='Run against the virtual Bullet R1 instead of a real roaster on USB.')
    time_scale: float = Field(default=1.0, description='Simulation speed: 1 real time, 60 = one roast minute per second, 0 = as fast as possible (deterministic).')
    stop_on: str = Field(default="cool_end", description="'cool_end': end when cooling ends; 'duration': end after max_duration_s.")
    max_duration_s: float = Field(default=1800.0, description='Longest session, device seconds.')
    model: str = Field(default="r1", description="Roaster model: 'r1' (Bullet R1) or 'r2' (Bullet R2); with simulate, which virtual twin.")
    bt_channel: str = Field(default="a", description="Which status channel is bean temperature: 'a' = bytes 0-3 (Artisan's 'BT/DT' R1 device), 'b' = bytes 8-11 (Artisan's IBTS mode).")
    execute_commands: bool = Field(default=True, description='Read device.command_queue and execute valid approvals; false: record only.')
    approval_ttl_s: float = Field(default=300.0, description='An approval without expires_at expires this many seconds after approved_at; stale ones are closed EXPIRED.')
    exit_policy: str = Field(default="make_safe", description="'make_safe' (default): every exit drives a roaster this session commanded to heater 0 and cooling first. 'leave_roaster_as_is' (opt-in, less safe): exit without touching it, so it keeps heating at its last settings.")
    exit_timeout_s: float = Field(default=12.0, description="Longest the make-safe exit may take (incl. reconnect attempts); fits Dagster's 20 s termination window.")
    reconnect_timeout_s: float = Field(default=30.0, description='Give up and close the session after the roaster has been unplugged this long.')
    queue_poll_interval_s: float = Field(default=2.0, description='How often the warehouse thread reads the approval queue, device seconds.')
    landing_dir: str | None = Field(default=None, description="Where the finished recording lands; default DAENA_LANDING_DIR (the telemetry ingest's folder).")
    beans: str | None = Field(default=None, description='Beans, written into the recording.')
    title: str | None = Field(default=None, description='Roast title, written into the recording.')
    notes: str | None = Field(default=None, description='Free notes, written into the recording.')
    batch_weight_g: float | None = Field(default=None, description="Green batch weight in grams (the virtual R1's hopper when simulated).")
    seed: int = Field(default=0, description="Simulation only: random seed of the virtual roaster's sensors.")
    start_at: str | None = Field(default=None, description='Simulation only: ISO time the simulated clock starts at.')
    operator: bool = Field(default=True, description='Simulation only: a simulated person at the panel runs a whole roast.')
    drop_bt_c: float = Field(default=210.0, description='Simulation only: the simulated operator drops at this BT.')
    ibts: bool = Field(default=False, description='Simulation only: an IBTS unit (rev3), whose infrared bean reading is on channel B.')
    disconnect_at_s: float | None = Field(default=None, description='Simulation only: unplug the virtual roaster at this device second.')
    reconnect_after_s: float | None = Field(default=None, description='Simulation only: plug it back in after this many seconds (unset: stays unplugged).')
    heater_ignores_steps: bool = Field(default=False, description='Simulation only: heater steps have no effect (a faulty roaster).')

    def sidecar_config(self, warehouse: str) -> SidecarConfig:
        return SidecarConfig(
            machine_id=self.machine_id, machine_name=self.machine_name, model=self.model,
            roaster_serial=self.roaster_serial,
            simulate=self.simulate, time_scale=self.time_scale, stop_on=self.stop_on,
            max_duration_s=self.max_duration_s, bt_channel=self.bt_channel,
            warehouse=warehouse if self.execute_commands else None, approval_ttl_s=self.approval_ttl_s,
            exit_policy=self.exit_policy, exit_timeout_s=self.exit_timeout_s,
            reconnect_timeout_s=self.reconnect_timeout_s, queue_poll_interval_s=self.queue_poll_interval_s,
            landing_dir=self.landing_dir or str(config.landing_dir()),
            recordings_dir=str(config.data_dir() / "device" / "recordings"),
            beans=self.beans, title=self.title, notes=self.notes, batch_weight_g=self.batch_weight_g,
            seed=self.seed, start_at=self.start_at,
            virtual=VirtualR1Config(
                batch_g=self.batch_weight_g or 250.0, ibts=self.ibts,
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

