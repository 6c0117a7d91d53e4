"""`daena`: run the pipelines without starting a server.

    daena materialize          materialise the whole default asset graph (and its checks) into the warehouse
    daena ci [--repetitions N] the same, then the golden-value gate: exit 1 when a blocking check fails
    daena promote-golden [...] show (and with --write, save) new golden values from the latest run
    daena copy-to-lake FILE    copy a warehouse file into the DuckLake warehouse DAENA_WAREHOUSE names
"""
from __future__ import annotations

import argparse
import os
import sys

from daena_pipelines.config import PROJECT_ROOT, Settings, SettingsError


def dagster_instance():
    import dagster as dg

    # Runs are recorded in the project's Dagster home, so the UI shows them afterwards.
    home = Settings.from_env().dagster_home
    os.environ["DAGSTER_HOME"] = str(home)
    remember_dagster_home(home)
    return dg.DagsterInstance.get()


def remember_dagster_home(home) -> None:
    """`dg dev` and `dagster dev`, started in the project folder, read DAGSTER_HOME from its .env
    file (not in git: the path is this clone's); without it they use a temporary instance."""
    lines = _project_env_lines()
    if not any(line.startswith("DAGSTER_HOME=") for line in lines):
        (PROJECT_ROOT / ".env").write_text("\n".join([*lines, f"DAGSTER_HOME={home}"]) + "\n")


def _project_env_lines() -> list[str]:
    """The lines of the project folder's .env, none when it has none."""
    env_file = PROJECT_ROOT / ".env"
    return env_file.read_text().splitlines() if env_file.exists() else []


def materialize(instance) -> bool:
    """The whole default asset graph with its checks. True when every run succeeded."""
    from daena_pipelines.definitions import defs
    from daena_pipelines.runner import check_evaluations, materialize_everything

    results = materialize_everything(defs, instance)
    for evaluation in check_evaluations(results):
        if not evaluation.passed:
            print(f"check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} "
                  f"{evaluation.severity.value}: {evaluation.description or '(details in its metadata)'}")
    return all(result.success for result in results)


def print_summary() -> None:
    from daena_pipelines.db import WarehouseBusy, connect

    settings = Settings.from_env()
    path = settings.warehouse
    print(f"\nwarehouse: {path}")
    try:
        with connect(path, read_only=True) as con:
            present = {f"{s}.{t}" for s, t in con.execute("SELECT schema_name, table_name FROM duckdb_tables()").fetchall()}
            counts = {table: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in sorted(present)}
    except WarehouseBusy as busy:  # another process is writing: the summary is skipped, not the command failed
        print(f"  (table counts skipped: {busy})")
    else:
        for table, count in counts.items():
            print(f"  {table:40s} {count:>10,d} rows")
    print(f"quarantined inputs: {settings.quarantine_dir}")
    print(f"artifacts: {settings.results_dir}")
    print("\n".join(ui_hint(settings.dagster_home)))


def ui_hint(home) -> list[str]:
    """How to open the UI on this run's instance. `dg dev` and `dagster dev` started in the project
    folder take DAGSTER_HOME from its .env even over the environment's, so for another home they
    are started elsewhere."""
    if f"DAGSTER_HOME={home}" in _project_env_lines():
        return [f"open the UI on the same runs and warehouse: cd {PROJECT_ROOT} && .venv/bin/dg dev",
                f"  (or: DAGSTER_HOME={home} .venv/bin/dagster dev -w workspace.yaml)"]
    return [f"open the UI on the same runs and warehouse (outside the project folder, whose .env names another "
            f"DAGSTER_HOME that dg dev / dagster dev started there would use): cd ~ && DAGSTER_HOME={home} "
            f"{PROJECT_ROOT}/.venv/bin/dagster dev -w {PROJECT_ROOT}/workspace.yaml"]


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except SettingsError as exc:  # the variable to fix, not a traceback through the code that read it
        print(f"daena: {exc}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="daena", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("materialize", help="materialise the whole default asset graph into the warehouse")
    sub.add_parser("ci", help="materialise, then fail on a blocking golden check", add_help=False)
    sub.add_parser("promote-golden", help="show or write new golden values", add_help=False)
    sub.add_parser("copy-to-lake", help="copy a warehouse file into the DuckLake warehouse", add_help=False)
    args, rest = parser.parse_known_args(argv)
    if args.command == "ci":
        from daena_pipelines import ci

        return ci.main(rest)
    if args.command == "promote-golden":
        from daena_pipelines.regressions import promote

        return promote.main(rest)
    if args.command == "copy-to-lake":
        from daena_pipelines import lake

        return lake.main(rest)
    if rest:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    ok = materialize(dagster_instance())
    print_summary()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
