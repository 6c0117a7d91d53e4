"""A code location for the killed-run test: a step in pool "duckdb" that runs until it is killed,
and one that needs the same pool after it."""
import os
import time
from pathlib import Path

import dagster as dg


@dg.asset(pool="duckdb")
def holds_the_pool() -> None:
    # the step's process and its parent, the run worker (multiprocess executor: two processes)
    Path(os.environ["DAENA_TEST_PID_FILE"]).write_text(f"{os.getpid()} {os.getppid()}")
    time.sleep(600)


@dg.asset(pool="duckdb")
def needs_the_pool() -> int:
    return 1


defs = dg.Definitions(
    assets=[holds_the_pool, needs_the_pool],
    jobs=[dg.define_asset_job("hold_job", [holds_the_pool]), dg.define_asset_job("next_job", [needs_the_pool])],
)
