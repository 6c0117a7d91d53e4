"""The jobs `daena materialize` runs (runner.py) around the daily evaluations: partitioned assets
cannot share a run with unpartitioned ones."""
import dagster as dg

from daena_pipelines.device import contract as device
from daena_pipelines.evals import contract as evals
from daena_pipelines.lib.specs import key, keys
from daena_pipelines.regressions import contract as regressions

_partitioned = dg.AssetSelection.assets(*keys(evals.DAILY_PARTITIONED))
# Recording a roast drives a roaster for a whole roast: it runs on demand (sidecar_job), not here.
_on_demand = dg.AssetSelection.assets(key(device.SIDECAR_RECORDING))
# The findings read the check results of finished runs: their own job runs after the others.
_findings = dg.AssetSelection.assets(key(regressions.FINDINGS))

daena_default_job = dg.define_asset_job(
    "daena_default_job",
    selection=dg.AssetSelection.all() - _partitioned.downstream() - _on_demand - _findings,
    description="Materialise everything that does not depend on the daily evaluations, checks included.",
)
daena_downstream_job = dg.define_asset_job(
    "daena_downstream_job",
    selection=_partitioned.downstream() - _partitioned - dg.AssetSelection.groups("evals") - _findings,
    description="Materialise what depends on the daily evaluations (e.g. the NBMF benchmark), checks included.",
)
