"""Partition D holds the sessions roasted on day D (UTC)."""
import dagster as dg

from daena_pipelines.evals import contract

daily_partitions = dg.DailyPartitionsDefinition(start_date=contract.PARTITIONS_START, timezone="UTC")
