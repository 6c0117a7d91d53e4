"""NBMF benchmark from the command line, without Dagster: NBMF next to raw JSON, zlib-9, zstd-3,
zstd-19 and zstd with the same trained dictionaries (levels 1, 3, 19) measured in the same run,
NBMF's speed as a fraction of the orjson + zstd + SHA-256 bound, and the targets.

    python scripts/bench_nbmf.py [--warehouse PATH] [--repetitions N] [--out DIR] [--levels SMALL,LARGE]

Corpus: the warehouse's held-out records (read-only) plus the shared real profiles through the
real telemetry ingest (corpus.reference_corpus). On a fresh clone without a warehouse it
measures the real profiles alone and says how to get the rest (`daena materialize`). Artifacts
(JSON/CSV) go to DIR (default: results dir /nbmf-script/<time>). Codec settings come from the
environment like everywhere else: DAENA_NBMF_ZSTD_LEVEL, DAENA_NBMF_NO_DICT. ``--levels`` sets
NBMF's zstd levels below / from 4 KiB *and the bound's* (the bound stays the same work as NBMF at
every level: a point of the level/ratio/speed trade-off, docs/nbmf.md).
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daena_pipelines import config  # noqa: E402
from daena_pipelines.nbmf.benchmark import ALL, BOUND, BOUND_SETTINGS, DEFAULT_REPETITIONS, LT4K, run_benchmark, targets, value  # noqa: E402
from daena_pipelines.nbmf.codec import CodecSettings, NbmfCodec  # noqa: E402
from daena_pipelines.nbmf.corpus import load_corpus, origin_counts, with_reference  # noqa: E402
from daena_pipelines.nbmf.runs import write_artifacts  # noqa: E402
from daena_pipelines.lib.metadata import markdown_table  # noqa: E402
from daena_pipelines.db import WarehouseUnreadable, connect  # noqa: E402

RATIO_CODECS = ("raw_json", "zlib_9", "zstd_3", "zstd_19", "zstd_dict_1", "zstd_dict_3", "zstd_dict_19", "nbmf_lossless", "nbmf_semantic")


def corpus(warehouse: Path) -> tuple[list, dict]:
    records, skipped = [], {}
    if warehouse.exists():
        try:
            with connect(warehouse, read_only=True) as con:
                records, skipped = load_corpus(con)
        except WarehouseUnreadable as exc:
            raise SystemExit(f"{exc}; or pass --warehouse") from None
    else:
        print(f"no warehouse at {warehouse}: measuring the shared real profiles only "
              "(run `daena materialize` first to add commands, evals and the bundled sessions)")
    records, skipped = with_reference(records, skipped)
    if not records:
        raise SystemExit(f"nothing to measure: {skipped.get('reference', 'no records')}; "
                         "run `daena materialize` (or pass --warehouse) and keep ../shared beside the project")
    return records, skipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", default=str(config.Settings.from_env().warehouse))
    parser.add_argument("--repetitions", type=int, default=DEFAULT_REPETITIONS)
    parser.add_argument("--out", default=None)
    parser.add_argument("--levels", default=None, help="SMALL,LARGE: zstd levels below / from 4 KiB, for NBMF and the bound")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    records, skipped = corpus(Path(args.warehouse))
    for name, reason in sorted(skipped.items()):
        print(f"skipped {name}: {reason}")
    settings, bound_settings = CodecSettings.from_env(), BOUND_SETTINGS
    if args.levels:
        small, large = (int(x) for x in args.levels.split(","))
        settings = bound_settings = settings.with_levels(small, large)
    codec = NbmfCodec(settings=settings)
    outcome = run_benchmark(records, codec, args.repetitions, bound_settings)
    rows = outcome.rows
    groups = [(ALL, ALL, "all records"), (ALL, LT4K, "records < 4 KB"), ("telemetry", ALL, "telemetry")]
    groups += [(c, ALL, c) for c in sorted({r["record_class"] for r in rows} - {ALL, "telemetry"})]
    header = ["codec"] + [f"{label} ({int(value(rows, c, b, 'raw_json', 'records') or 0)})" for c, b, label in groups]
    table = [
        [name] + [f"{r:.2f}" if (r := value(rows, c, b, name, "ratio_total")) else "-" for c, b, _ in groups]
        for name in RATIO_CODECS
    ]
    print("\ncompression ratio (sum of canonical JSON bytes / sum of encoded bytes; records held out; each column pooled "
          "over its records' origins, per origin in the artifacts' origin column):")
    print(markdown_table(header, table))
    speed = []
    for name in ("zstd_3", "zstd_dict_3", "zstd_dict_19", BOUND, "nbmf_lossless"):
        cells = [name]
        for op in ("encode", "decode"):
            mb = value(rows, ALL, ALL, name, f"{op}_mb_s")
            cells += [f"{mb:.0f}", f"{mb / value(rows, ALL, ALL, BOUND, f'{op}_mb_s'):.2f}"]
        speed.append(cells)
    print("\nspeed, all records, thread CPU time (bound = orjson + zstd with NBMF's dictionary and level + SHA-256):")
    print(markdown_table(["codec", "encode MB/s", "encode / bound", "decode MB/s", "decode / bound"], speed))
    print()
    print(markdown_table(["target", "reached", "goal", "met", "origin"],
                         [(t["target"], t["reached"], t["goal"], t["met"], t["origin"]) for t in targets(rows)]))
    reference = sum(r.origin == "reference" for r in records)
    print(f"\nsettings {codec.settings.describe()}, {outcome.test_records} held-out records "
          f"(corpus {len(records)}, {reference} from the shared real profiles; per class and origin {origin_counts(records)}), "
          f"{outcome.excluded_training_overlap} excluded as dictionary training data, {args.repetitions} repetitions")
    out = Path(args.out) if args.out else config.Settings.from_env().results_dir / "nbmf-script" / dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    json_path, csv_path = write_artifacts(out, {"run_id": out.name, "settings": codec.settings.describe(), "targets": targets(rows)}, rows)
    print(f"artifacts: {json_path} {csv_path}")
    print(f"load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
