"""The code location: every definition under ``daena_pipelines/defs/`` (placing a file there registers it)."""
from pathlib import Path

import dagster as dg

defs = dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
