"""Jobs of the nbmf domain."""
import dagster as dg

from daena_pipelines.lib.specs import key
from daena_pipelines.nbmf import contract

nbmf_benchmark_job = dg.define_asset_job(
    "nbmf_benchmark", selection=dg.AssetSelection.assets(key(contract.RESULTS)), description="The NBMF benchmark and its golden checks."
)
