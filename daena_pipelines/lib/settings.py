"""The project's settings as the Dagster resource ``daena_settings``: how assets, checks and sensors
get the folders they read and write (the warehouse itself comes as the ``duckdb`` resource)."""
from __future__ import annotations

from typing import Optional

import dagster as dg
from pydantic import Field

from daena_pipelines.config import Settings

_FROM_ENV = "Empty: the environment variable {}, else its default (README, Settings), read when a run uses it."


class DaenaSettings(dg.ConfigurableResource):
    """Folders of the project. A field left empty resolves like ``Settings.from_env()`` at the moment
    a run uses it, so a run honours the environment it runs in; a value set here wins for this
    code location."""

    data_dir: Optional[str] = Field(default=None, description="Parent of quarantine, results, the sidecar's landing folder. " + _FROM_ENV.format("DAENA_DATA_DIR"))
    landing_dir: Optional[str] = Field(default=None, description="Roast files to ingest. " + _FROM_ENV.format("DAENA_LANDING_DIR"))
    quarantine_dir: Optional[str] = Field(default=None, description="Copies of rejected input files. " + _FROM_ENV.format("DAENA_QUARANTINE_DIR"))
    results_dir: Optional[str] = Field(default=None, description="Benchmark and evaluation artifacts. " + _FROM_ENV.format("DAENA_RESULTS_DIR"))
    golden_dir: Optional[str] = Field(default=None, description="Golden values, cases, judge labels, NBMF dictionaries. " + _FROM_ENV.format("DAENA_GOLDEN_DIR"))

    def get(self) -> Settings:
        return Settings.from_env(**{name: getattr(self, name) for name in DaenaSettings.model_fields})
