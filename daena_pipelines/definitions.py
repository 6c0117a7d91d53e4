"""The code location: every asset, check, job, sensor, schedule and resource of daena-pipelines."""
import dagster as dg

from daena_pipelines import warehouse
from daena_pipelines.commands import definitions as commands
from daena_pipelines.device import definitions as device
from daena_pipelines.device.assets import sidecar_recording
from daena_pipelines.evals import definitions as evals
from daena_pipelines.nbmf import definitions as nbmf
from daena_pipelines.regressions import definitions as regressions
from daena_pipelines.telemetry import definitions as telemetry

DOMAINS = (telemetry.defs, device.defs, commands.defs, evals.defs, nbmf.defs, regressions.defs)

# `daena materialize` runs these two around the daily evaluations (see runner.py): partitioned
# assets cannot share a run with unpartitioned ones.
_partitioned = dg.AssetSelection.assets(
    *[a for domain in DOMAINS for a in domain.assets or [] if getattr(a, "partitions_def", None)]
)
# Recording a roast drives a roaster for a whole roast: it runs on demand (sidecar_job), not here.
_on_demand = dg.AssetSelection.assets(sidecar_recording)
daena_default_job = dg.define_asset_job(
    "daena_default_job",
    selection=dg.AssetSelection.all() - _partitioned.downstream() - _on_demand,
    description="Materialise everything that does not depend on the daily evaluations, checks included.",
)
daena_downstream_job = dg.define_asset_job(
    "daena_downstream_job",
    selection=_partitioned.downstream() - _partitioned - dg.AssetSelection.groups("evals"),
    description="Materialise what depends on the daily evaluations (e.g. the NBMF benchmark), checks included.",
)

defs = dg.Definitions.merge(
    *DOMAINS,
    dg.Definitions(
        jobs=[daena_default_job, daena_downstream_job], resources={"duckdb": warehouse.warehouse_resource()}
    ),
)
