"""The code location: every definition under ``daena_pipelines/defs/`` (placing a file there registers it)."""
import warnings
from pathlib import Path

import dagster as dg


def _with_code_references(loaded: dg.Definitions) -> dg.Definitions:
    """Each asset links to the file and line that defines it (the UI's code reference)."""
    with warnings.catch_warnings():  # the code-reference API is marked beta/preview in Dagster 1.13
        warnings.simplefilter("ignore")
        assets = dg.with_source_code_references(list(loaded.assets or []))
    return dg.Definitions(
        assets=assets, asset_checks=loaded.asset_checks, jobs=loaded.jobs, schedules=loaded.schedules,
        sensors=loaded.sensors, resources=loaded.resources,
    )


defs = _with_code_references(dg.load_from_defs_folder(path_within_project=Path(__file__).parent))
