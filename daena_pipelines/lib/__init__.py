"""Dagster helpers shared by every domain's definitions (``daena_pipelines/defs``): table
metadata, spec defaults, the check-result builder, the golden-value check factory, the warehouse
resource. Plain logic packages never import this."""
