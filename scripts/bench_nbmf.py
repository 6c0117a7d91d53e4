"""NBMF benchmark from the command line, without Dagster: prints ratios and speeds of NBMF next
to raw JSON, zlib-9, zstd-3 and zstd-19 measured in the same run, and the issue's targets.

    python scripts/bench_nbmf.py [--warehouse PATH] [--repetitions N] [--out DIR]

Reads the warehouse read-only (corpus = its records, held-out split) and writes the JSON/CSV
artifacts under DIR (default: results dir /nbmf-script/<time>). Codec settings come from the
environment like everywhere else: DAENA_NBMF_ZSTD_LEVEL, DAENA_NBMF_NO_DICT.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daena_pipelines import config  # noqa: E402
from daena_pipelines.nbmf.benchmark import ALL, DEFAULT_REPETITIONS, LT4K, run_benchmark, targets, value  # noqa: E402
from daena_pipelines.nbmf.codec import NbmfCodec  # noqa: E402
from daena_pipelines.nbmf.corpus import load_corpus  # noqa: E402
from daena_pipelines.nbmf.runs import write_artifacts  # noqa: E402
from daena_pipelines.lib.metadata import markdown_table  # noqa: E402
from daena_pipelines.db import connect  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", default=str(config.warehouse_path()))
    parser.add_argument("--repetitions", type=int, default=DEFAULT_REPETITIONS)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    with connect(args.warehouse, read_only=True) as con:
        records, skipped = load_corpus(con)
    for name, reason in sorted(skipped.items()):
        print(f"skipped {name}: {reason}")
    codec = NbmfCodec()
    outcome = run_benchmark(records, codec, args.repetitions)
    rows = outcome.rows
    table = []
    for cls in sorted({r["record_class"] for r in rows}):
        for bucket in (LT4K, ALL):
            z19 = value(rows, cls, bucket, "zstd_19", "ratio_total")
            z3 = {op: value(rows, cls, bucket, "zstd_3", f"{op}_mb_s") for op in ("encode", "decode")}
            for name in ("zstd_3", "zstd_19", "nbmf_lossless", "nbmf_semantic"):
                ratio = value(rows, cls, bucket, name, "ratio_total")
                if ratio is None:
                    continue
                enc, dec = (value(rows, cls, bucket, name, f"{op}_mb_s") for op in ("encode", "decode"))
                table.append((cls, bucket, name, int(value(rows, cls, bucket, name, "records")), ratio, ratio / z19,
                              enc, enc / z3["encode"], dec, dec / z3["decode"],
                              value(rows, cls, bucket, name, "max_abs_error_c")))
    print(markdown_table(["class", "bucket", "codec", "records", "ratio", "× zstd-19", "enc MB/s", "× zstd-3",
                          "dec MB/s", "× zstd-3", "max err °C"], table))
    print()
    print(markdown_table(["target", "reached", "goal", "met"],
                         [(t["target"], t["reached"], t["goal"], t["met"]) for t in targets(rows)]))
    print(f"\nsettings {codec.settings.describe()}, {outcome.test_records} held-out records, "
          f"{outcome.excluded_training_overlap} excluded as dictionary training data, {args.repetitions} repetitions")
    out = Path(args.out) if args.out else config.results_dir() / "nbmf-script" / dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    json_path, csv_path = write_artifacts(out, {"run_id": out.name, "settings": codec.settings.describe(), "targets": targets(rows)}, rows)
    print(f"artifacts: {json_path} {csv_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
