"""daena-pipelines: a Dagster code location for a coffee-roasting lab's data."""
import os

# No code here does linear algebra, yet importing numpy starts OpenBLAS's thread pool (one thread
# per further core), whose threads spin ~0.1 s of CPU before they sleep: in every process that
# imports numpy through this package (each Dagster step, the sidecar, the ingest's fork server),
# on the cores its start-up needs. One thread, unless the caller chose a number (docs/telemetry.md).
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
