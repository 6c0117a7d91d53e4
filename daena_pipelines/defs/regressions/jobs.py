"""Jobs of the regressions domain."""
import dagster as dg

from daena_pipelines.lib.specs import key
from daena_pipelines.regressions import contract

findings_job = dg.define_asset_job(
    "findings_job",
    selection=dg.AssetSelection.assets(key(contract.FINDINGS)),
    description="Brings regressions.findings up to date with the check results and runs recorded since it last ran.",
)
