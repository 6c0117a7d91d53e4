"""Jobs of the telemetry domain."""
import dagster as dg

from daena_pipelines.lib.specs import keys
from daena_pipelines.telemetry import contract

telemetry_ingest_job = dg.define_asset_job(
    "telemetry_ingest_job",
    selection=dg.AssetSelection.assets(
        *keys([contract.SESSIONS, contract.POINTS, contract.ROAST_METRICS, contract.INGEST_ERRORS]), ["telemetry", "metrics_recompute"]
    ),
    description="Ingest roast files from the landing folder into telemetry.* (new or changed files only), then recompute "
    "the metrics of stored sessions computed by an older metrics version.",
)
