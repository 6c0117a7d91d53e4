"""Resources every domain uses: the DuckDB warehouse (DAENA_WAREHOUSE) and the project's folders."""
import dagster as dg

from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import warehouse_resource


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"duckdb": warehouse_resource(), "daena_settings": DaenaSettings()})
