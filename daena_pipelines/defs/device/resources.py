"""Resources of the device domain: the Pipes client that launches the sidecar process."""
import dagster as dg


@dg.definitions
def resources() -> dg.Definitions:
    return dg.Definitions(resources={"device_pipes_client": dg.PipesSubprocessClient()})
