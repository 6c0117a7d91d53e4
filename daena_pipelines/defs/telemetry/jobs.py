"""Jobs of the telemetry domain."""
import dagster as dg

from daena_pipelines.lib.specs import keys
from daena_pipelines.telemetry import contract

telemetry_ingest_job = dg.define_asset_job(
    "telemetry_ingest_job",
    selection=dg.AssetSelection.assets(
        *keys([contract.SESSIONS, contract.POINTS, contract.ROAST_METRICS, contract.INGEST_ERRORS]), ["telemetry", "metrics_recompute"],
        ["telemetry", "roast_curve"],  # the landing sensor's runs: a roast just recorded is the one charted
    ),
    description="Ingest roast files from the landing folder into telemetry.* (new or changed files only), recompute "
    "the metrics of stored sessions computed by an older metrics version, and chart the latest roast.",
)
