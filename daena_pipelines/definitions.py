"""The code location: every asset, check, job, sensor, schedule and resource of daena-pipelines."""
import dagster as dg

from daena_pipelines import warehouse
from daena_pipelines.commands.definitions import defs as commands_defs
from daena_pipelines.device.definitions import defs as device_defs
from daena_pipelines.evals.definitions import defs as evals_defs
from daena_pipelines.nbmf.definitions import defs as nbmf_defs
from daena_pipelines.regressions.definitions import defs as regressions_defs
from daena_pipelines.telemetry.definitions import defs as telemetry_defs

# The main job: everything that is not partitioned (partitioned evaluations run per day).
daena_default_job = dg.define_asset_job(
    "daena_default_job",
    selection=dg.AssetSelection.all(),
    description="Materialise the whole default asset graph into the warehouse, checks included.",
)

defs = dg.Definitions.merge(
    telemetry_defs,
    device_defs,
    commands_defs,
    evals_defs,
    nbmf_defs,
    regressions_defs,
    dg.Definitions(jobs=[daena_default_job], resources={"duckdb": warehouse.warehouse_resource()}),
)
