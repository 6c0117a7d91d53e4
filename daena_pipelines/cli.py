"""`daena`: run the pipelines without starting a server.

    daena materialize   materialise the whole default asset graph (and its checks) into the warehouse
"""
from __future__ import annotations

import argparse
import os
import sys

from daena_pipelines import config

def dagster_instance():
    import dagster as dg

    # Runs are recorded in the project's Dagster home, so `dagster dev` shows them afterwards.
    os.environ.setdefault("DAGSTER_HOME", str(config.PROJECT_ROOT / "dagster_home"))
    return dg.DagsterInstance.get()


def materialize(instance) -> bool:
    """The whole default asset graph with its checks. True when every run succeeded."""
    from daena_pipelines.definitions import defs
    from daena_pipelines.runner import check_evaluations, materialize_everything

    results = materialize_everything(defs, instance)
    for evaluation in check_evaluations(results):
        if not evaluation.passed:
            print(f"check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} "
                  f"{evaluation.severity.value}: {evaluation.description}")
    return all(result.success for result in results)


def print_summary() -> None:
    from daena_pipelines.db import connect

    path = config.warehouse_path()
    print(f"\nwarehouse: {path}")
    with connect(path, read_only=True) as con:
        present = {f"{s}.{t}" for s, t in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
        for table in sorted(present):
            print(f"  {table:40s} {con.execute(f'SELECT count(*) FROM {table}').fetchone()[0]:>10,d} rows")
    print(f"quarantined inputs: {config.quarantine_dir()}")
    print(f"artifacts: {config.results_dir()}")
    print("open the UI on the same data: dagster dev -w workspace.yaml  (DAGSTER_HOME=dagster_home)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="daena", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("materialize", help="materialise the whole default asset graph into the warehouse")
    args = parser.parse_args(argv)
    if args.command == "materialize":
        ok = materialize(dagster_instance())
        print_summary()
        return 0 if ok else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
