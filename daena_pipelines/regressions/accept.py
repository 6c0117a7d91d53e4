"""Accept a benchmark run's timing steps: the run starts the flagged keys' baselines anew.

    python -m daena_pipelines.regressions.accept RUN_ID [--every-key] [--suite nbmf] [--warehouse PATH]

For a slowdown someone decided to keep, or a deliberate change of what a ratio measures (a new
reference, docs/regressions.md). Reads the carried history artifact first (``DAENA_BENCH_HISTORY_DIR``)
and writes it back, so the next CI run that carries it sees the acceptance.
"""
from __future__ import annotations

import argparse

from daena_pipelines.config import Settings
from daena_pipelines.db import connect
from daena_pipelines.regressions import history


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_id")
    parser.add_argument("--every-key", action="store_true", help="every key of the run, not only the flagged ones")
    parser.add_argument("--suite", default="nbmf")
    parser.add_argument("--warehouse", default=str(Settings.from_env().warehouse))
    args = parser.parse_args(argv)
    folder = Settings.from_env().bench_history_dir
    with connect(args.warehouse) as con:
        history.import_artifact(con, folder)
        if args.run_id not in history.runs_of(con, args.suite):
            print(f"no run {args.run_id} of suite {args.suite} in {args.warehouse} or the artifact {folder}")
            return 1
        n = history.accept(con, args.run_id, args.suite, args.every_key)
        history.export_artifact(con, folder)
    print(f"accepted {n} (key, clock) verdict(s) of {args.run_id}; their baselines start at that run; artifact {folder} written")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
