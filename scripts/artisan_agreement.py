"""Compare our metrics with Artisan's own `computed` block, per file, on any folder of profiles.

    python scripts/artisan_agreement.py FOLDER [--details] [--min-agreeing 0.97]

Ingests every roast file below FOLDER into a throw-away warehouse (nothing is written elsewhere),
then prints one line per file that carries Artisan values (compared / agreeing / which metrics
disagree), the agreement per metric, and the share of files that agree on every value they
carry. Exits 1 when that share is below --min-agreeing. Tolerances: quality.ARTISAN_TOLERANCES.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import duckdb

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from daena_pipelines.telemetry import ingest, quality  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("folder", type=Path)
    parser.add_argument("--details", action="store_true", help="print every disagreeing value")
    parser.add_argument("--min-agreeing", type=float, default=0.97)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="daena-agreement-") as work:
        con = duckdb.connect(str(Path(work) / "w.duckdb"))
        roasts, others = ingest.discover(args.folder)
        report = ingest.ingest(con, roasts, Path(work) / "quarantine")
        print(f"{len(roasts)} roast files ({len(others)} other files ignored): {len(report.loaded)} sessions, "
              f"{len(report.duplicates)} duplicates, {len(report.rejected)} rejected")
        for path, kind, message in report.rejected:
            print(f"  rejected {path}: {kind}: {message}")
        files = [f for f in quality.artisan_file_agreement(con) if f["compared"]]
        print(f"\n{'file':60s} {'unit':4s} {'CHARGE':8s} {'DRY END':8s} agree/compared  disagreeing")
        for f in files:
            name = str(Path(f["source_path"]).relative_to(args.folder)) if Path(f["source_path"]).is_relative_to(args.folder) else f["source_path"]
            print(f"{name[:60]:60s} {f['original_unit']:4s} {'inferred' if f['charge_inferred'] else 'marked':8s} "
                  f"{'inferred' if f['dry_end_inferred'] else ('marked' if f['dry_end_inferred'] is False else '-'):8s} "
                  f"{f['agreeing']:5d}/{f['compared']:<8d} {f['disagreeing'] or ''}")
        print(f"\n{'metric':32s} compared  agreeing")
        for row in quality.artisan_agreement(con):
            print(f"{row['metric']:32s} {row['compared']:8d}  {row['within_tolerance']:8d}")
        if args.details:
            print()
            for row in quality.artisan_disagreements(con):
                print(row)
        agreeing = sum(f["agreeing"] == f["compared"] for f in files)
        share = agreeing / len(files) if files else 0.0
        print(f"\nfiles agreeing on every value they carry: {agreeing}/{len(files)} = {share:.1%} "
              f"(target {args.min_agreeing:.0%}); without CHARGE: "
              f"{sum(1 for f in files if f['charge_inferred'])}, DRY END inferred: {sum(1 for f in files if f['dry_end_inferred'])}")
        con.close()
    return 0 if share >= args.min_agreeing else 1


if __name__ == "__main__":
    sys.exit(main())
