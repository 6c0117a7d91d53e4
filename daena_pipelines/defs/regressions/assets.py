"""The golden files as an asset: what checks and evaluations compare with, reviewed like code."""
import dagster as dg

from daena_pipelines.config import Settings
from daena_pipelines.lib.specs import OWNERS, key
from daena_pipelines.regressions import contract

golden_files = dg.AssetSpec(
    key(contract.GOLDEN),
    description="golden/ (DAENA_GOLDEN_DIR): golden values the golden checks compare with, golden roast cases the "
    "evals score against, NBMF dictionaries. Changed by review and `daena promote-golden --write`, not by a run.",
    group_name="regressions", owners=OWNERS, kinds={"folder", "json"},
    metadata={"folder": dg.MetadataValue.path(str(Settings.from_env().golden_dir))},
)
