"""Promote golden values: show (and, with --write, save) what the latest run would make golden.

    python -m daena_pipelines.regressions.promote [GOLDEN_FILE ...] [--warehouse PATH] [--write]

Without files: every ``*.golden.json`` under golden/. Without --write nothing is written; the
diff (+ added, - removed, ~ changed) is printed for review. Commit the written files like code.
"""
from __future__ import annotations

import argparse
from pathlib import Path

from daena_pipelines.regressions.golden import (
    GoldenSuite,
    checked_run,
    diff_entries,
    proposed_entries,
)
from daena_pipelines.config import Settings
from daena_pipelines.db import connect, table_exists


def suite_files(paths: list[str]) -> list[Path]:
    return [Path(p) for p in paths] if paths else sorted(Settings.from_env().golden_dir.rglob("*.golden.json"))


def promote(warehouse: Path | str, paths: list[str], write: bool) -> dict[Path, list[str]]:
    """{golden file: diff lines}; writes the files only when ``write``."""
    diffs = {}
    with connect(warehouse, read_only=True) as con:
        for path in suite_files(paths):
            suite = GoldenSuite.load(path)
            if not table_exists(con, suite.table):
                print(f"{path}: {suite.table} does not exist in {warehouse}; nothing to promote")
                continue
            if suite.latest_by:
                print(f"{path}: values of {suite.table} where {suite.latest_by} = {checked_run(con, suite)}")
            proposed = proposed_entries(con, suite)
            diffs[path] = diff_entries(suite.entries, proposed)
            if write and diffs[path]:
                suite.entries = proposed
                path.write_text(suite.to_json())
    return diffs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("files", nargs="*", help="golden files (default: every *.golden.json under golden/)")
    parser.add_argument("--warehouse", default=str(Settings.from_env().warehouse))
    parser.add_argument("--write", action="store_true", help="write the new golden values (default: only show the diff)")
    args = parser.parse_args(argv)
    for path, lines in promote(args.warehouse, args.files, args.write).items():
        print(f"{path}: {len(lines)} change(s){' written' if args.write and lines else ''}")
        for line in lines:
            print(f"  {line}")
    if not args.write:
        print("dry run: nothing written (add --write to save, then review and commit the diff)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
