"""Dagster definitions of the device domain."""
import dagster as dg

from daena_pipelines.device.assets import PIPES_CLIENT, device_command_tables, sidecar_job, sidecar_recording

defs = dg.Definitions(
    assets=[device_command_tables, sidecar_recording],
    jobs=[sidecar_job],
    resources={PIPES_CLIENT: dg.PipesSubprocessClient()},
)
