"""The code location: every asset, check, job, sensor, schedule and resource of daena-pipelines."""
import dagster as dg

from daena_pipelines import warehouse
from daena_pipelines.commands import definitions as commands
from daena_pipelines.device import definitions as device
from daena_pipelines.evals import definitions as evals
from daena_pipelines.nbmf import definitions as nbmf
from daena_pipelines.regressions import definitions as regressions
from daena_pipelines.telemetry import definitions as telemetry

# The main job: everything that is not partitioned (partitioned evaluations run per day).
daena_default_job = dg.define_asset_job(
    "daena_default_job",
    selection=dg.AssetSelection.all(),
    description="Materialise the whole default asset graph into the warehouse, checks included.",
)

defs = dg.Definitions.merge(
    telemetry.defs,
    device.defs,
    commands.defs,
    evals.defs,
    nbmf.defs,
    regressions.defs,
    dg.Definitions(jobs=[daena_default_job], resources={"duckdb": warehouse.warehouse_resource()}),
)
