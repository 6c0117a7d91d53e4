"""Jobs of the commands domain."""
import dagster as dg

commands_job = dg.define_asset_job(
    "commands_job", selection=dg.AssetSelection.groups("commands"), description="Ingest proposals, compute outcome metrics and alerts"
)
