"""Dagster definitions of the telemetry domain."""
import dagster as dg

from daena_pipelines.telemetry.assets import telemetry_ingest
from daena_pipelines.telemetry.checks import telemetry_checks
from daena_pipelines.telemetry.sensors import build_landing_sensor

telemetry_ingest_job = dg.define_asset_job(
    "telemetry_ingest_job",
    selection=dg.AssetSelection.assets(telemetry_ingest),
    description="Ingest roast files from the landing folder into telemetry.* (new or changed files only).",
)

defs = dg.Definitions(
    assets=[telemetry_ingest],
    asset_checks=telemetry_checks,
    jobs=[telemetry_ingest_job],
    sensors=[build_landing_sensor(telemetry_ingest_job)],
)
