"""daena-pipelines: a Dagster code location for a coffee-roasting lab's data."""
