"""Jobs of the device domain."""
import dagster as dg

from daena_pipelines.device import contract
from daena_pipelines.lib.specs import keys

sidecar_job = dg.define_asset_job(
    "sidecar_job",
    selection=dg.AssetSelection.assets(*keys([contract.COMMAND_QUEUE, contract.COMMAND_EXECUTIONS, contract.SIDECAR_RECORDING])),
    description="Record one roast with the sidecar (set simulate=true to use the virtual Bullet R1).",
)
