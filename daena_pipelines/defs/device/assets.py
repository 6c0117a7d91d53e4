"""Dagster assets of the device domain: the command tables and the sidecar recording (via Pipes).

No ``from __future__ import annotations`` here: Dagster reads the config/resource annotations at runtime.
"""

import sys
import typing
from dataclasses import asdict, fields

import dagster as dg
import pydantic
from pydantic import Field

from daena_pipelines.config import Settings
from daena_pipelines.device import contract
from daena_pipelines.device.sidecar import SidecarConfig, refuse_simulation_settings
from daena_pipelines.device.virtual_r1 import Faults, OperatorPlan, VirtualR1Config
from daena_pipelines.lib.metadata import table_metadata
from daena_pipelines.lib.settings import DaenaSettings
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
    """Report the command tables (the connection's migrations create them: command_store.MIGRATIONS)."""
    with duckdb.get_connection() as con:
        yield dg.MaterializeResult(asset_key=QUEUE_KEY, metadata=table_metadata(con, contract.COMMAND_QUEUE))
        yield dg.MaterializeResult(asset_key=EXECUTIONS_KEY, metadata=table_metadata(
            con, contract.COMMAND_EXECUTIONS,
            "SELECT proposal_id, command_type, target_value, status, observed_value, error, source "
            "FROM device.command_executions ORDER BY started_at DESC LIMIT 10"))


# Launchpad text of each SidecarConfig field; the dataclass gives names, types and defaults.
FIELD_DOCS = {
    "machine_id": ("Matched against device.command_queue.machine_id: only this machine's APPROVED proposals run; empty: the "
                   "model ('r1', 'r2'). One live sidecar per machine_id: a second one fails to start (device.machine_leases)."),
    "machine_name": "Shown as the session's machine; default: the model name, '(virtual)' when simulated.",
    "model": "Roaster model: 'r1' (Bullet R1) or 'r2' (Bullet R2).",
    "roaster_serial": "Open the roaster with this USB serial; empty: the only one on the bus.",
    "simulate": ("true: the virtual roaster (no USB, source 'simulator'); false: a real Bullet on USB (then a "
                 "Simulation setting away from its default refuses the run)."),
    "time_scale": "Simulation speed: 1 real time, 60 a minute per second, 0 stepped as fast as possible (deterministic).",
    "stop_on": "'cool_end': stop when cooling ends; 'duration': stop after max_duration_s.",
    "max_duration_s": "Longest recording, seconds (device time).",
    "poll_interval_s": "Seconds between status polls of the roaster.",
    "record_interval_s": "Seconds between recorded samples.",
    "bt_channel": "'a': BT from the R1's bean probe (Artisan's default); 'b': the IBTS infrared reading.",
    "dry_end_bt_c": "Mark DRY END when BT reaches this, °C; empty: only the operator marks it.",
    "fcs_bt_c": "Mark first crack when BT reaches this, °C; empty (default): only the operator marks it.",
    "queue_poll_interval_s": "Seconds between reads of device.command_queue.",
    "approval_ttl_s": "An approval without expires_at expires this many seconds after approval.",
    "reconnect_timeout_s": "Give up, and close the session, after this many seconds unplugged.",
    "reconnect_interval_s": "Seconds between reconnect attempts while unplugged.",
    "exit_policy": "'make_safe' (default): heater off, fan up when the sidecar stops; 'leave_roaster_as_is' opts out.",
    "exit_timeout_s": "The make-safe exit ends within this many seconds.",
    "watchdog_timeout_s": "Real seconds without a finished poll cycle before the watchdog makes the roaster safe.",
    "landing_dir": "Folder for the finished recording; default <data>/landing, which the landing sensor watches.",
    "beans": "Beans roasted (session's beans; golden cases match on it).",
    "title": "Session title.",
    "notes": "Roast notes (the LM judge reads them).",
    "batch_weight_g": "Green weight charged, grams (the virtual roaster's batch too); 0: not weighed.",
    "seed": "Simulation: random seed of the virtual roaster (same seed, same roast).",
    "start_at": "Simulation: ISO time the virtual clock starts at; empty: now.",
}
# Set by the job, not run config: the files go to the data folder, the warehouse is the resource's.
SET_BY_JOB = ("recordings_dir", "warehouse", "limits", "virtual")
# The Launchpad scaffold is the safe one (the virtual roaster, no proposal executed) and shows the
# session's details to fill in; empty text and 0 g mean "not given".
SAFE_DEFAULTS = {"simulate": True, "beans": "", "title": "", "notes": "", "batch_weight_g": 0.0}
# Launchpad fields only the virtual roaster reads: a real run (simulate false) given any of them is refused.
SIMULATION_ONLY = ("time_scale", "seed", "start_at", "operator", "drop_bt_c", "disconnect_at_s", "reconnect_after_s",
                   "unplug_file", "heater_ignores_steps")


class _SidecarRunSettings(dg.Config):
    """Run settings that are not SidecarConfig fields."""

    execute_commands: bool = Field(
        default=False, description="Read device.command_queue and execute APPROVED proposals on the roaster."
    )
    operator: bool = Field(default=True, description="Simulation: someone at the virtual roaster's panel runs a whole roast.")
    drop_bt_c: float = Field(default=OperatorPlan.drop_bt_c, description="Simulation: the operator drops at this BT, °C.")
    disconnect_at_s: float | None = Field(default=None, description="Simulation fault: unplug USB at this device second.")
    reconnect_after_s: float | None = Field(default=None, description="Simulation fault: plug back in after this many seconds.")
    unplug_file: str | None = Field(default=None, description="Simulation fault: unplug USB once this file exists (pull the "
                                    "cable from outside, e.g. `touch` it, at the moment you choose).")
    heater_ignores_steps: bool = Field(default=False, description="Simulation fault: the heater ignores level steps.")

    def sidecar_config(self, warehouse: str, settings: Settings) -> SidecarConfig:
        if not self.simulate:  # named as on the Launchpad, all at once (SidecarConfig checks its own fields again)
            launchpad = type(self).model_fields
            refuse_simulation_settings([name for name in SIMULATION_ONLY if getattr(self, name) != launchpad[name].default])
        values = self.model_dump()
        own = {name: values.pop(name) for name in _SidecarRunSettings.model_fields}
        values["landing_dir"] = values["landing_dir"] or str(settings.sidecar_landing_dir)
        values |= {name: values[name] or None for name in ("beans", "title", "notes", "batch_weight_g")}
        return SidecarConfig(
            **values,
            warehouse=warehouse if own["execute_commands"] else None,
            recordings_dir=str(settings.recordings_dir),
            virtual=VirtualR1Config(
                batch_g=values.get("batch_weight_g") or VirtualR1Config.batch_g,
                operator=OperatorPlan(drop_bt_c=own["drop_bt_c"]) if own["operator"] else None,
                faults=Faults(disconnect_at_s=own["disconnect_at_s"], reconnect_after_s=own["reconnect_after_s"],
                              unplug_file=own["unplug_file"], heater_ignores_steps=own["heater_ignores_steps"]),
            ) if values["simulate"] else VirtualR1Config(),  # a real roaster has no virtual twin to configure
        )


_HINTS = typing.get_type_hints(SidecarConfig)
SidecarRunConfig = pydantic.create_model(
    "SidecarRunConfig",
    __base__=_SidecarRunSettings,
    __doc__="Run config of ``sidecar_job``: every SidecarConfig field (device/sidecar.py) the job does not set itself.",
    **{
        f.name: (_HINTS[f.name], Field(default=SAFE_DEFAULTS.get(f.name, f.default), description=FIELD_DOCS.get(f.name)))
        for f in fields(SidecarConfig)
        if f.name not in SET_BY_JOB
    },
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
    device_pipes_client: dg.PipesSubprocessClient, daena_settings: DaenaSettings,
) -> dg.MaterializeResult:
    settings = config.sidecar_config(duckdb.target(), daena_settings.get())
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

