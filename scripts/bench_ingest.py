"""Benchmark: end-to-end telemetry ingest vs a plain `ast.literal_eval` parse of the same files.

    python scripts/bench_ingest.py                      # the shared real profiles once
    python scripts/bench_ingest.py --sessions 10000     # N-fold replicas up to ~10,000 files

Replicas are the real files with a new roast UUID and one BT sample nudged, so each is a
distinct session (different content hash and session id), not a duplicate to be skipped.
Prints files/s, MB/s and peak RSS of the ingest (main process and parser workers) beside the
baseline rate measured in this same run, the ratio between them, and the machine's load average
before and after (other work on a shared machine skews both rates). The CPU-bound ratio beside
it compares CPU per file instead (the baseline's against the ingest's on the cores it uses): the
ratio the code would reach on free cores, so that a change can be judged apart from the load,
with the share of those cores the run actually got.

Two ingest rates: end to end (the call as a caller sees it, start-up included: imports, schema,
starting the parser processes) and the steady state, from the first committed batch to the last
(the rate a large batch approaches). Issue #10's target, >= 10x, is for the end-to-end rate of a
large batch (--sessions 3000 or more); the steady state shows how much of the gap is start-up. A
run that fits in one batch, like the default (the 73 shared files), has no steady state: its
rate is mostly start-up.
"""
from __future__ import annotations

import argparse
import ast
import os
import re
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from daena_pipelines.procstats import DescendantPeakRss  # noqa: E402
from daena_pipelines.telemetry import ingest  # noqa: E402

DEFAULT_SOURCE = PROJECT.parent / "shared" / "data" / "artisan-scottjames"
_UUID = re.compile(rb"'roastUUID': '[^']*'")


def make_replicas(sources: list[Path], target: Path, total: int) -> list[Path]:
    target.mkdir(parents=True, exist_ok=True)
    files = []
    for i in range(total):
        source = sources[i % len(sources)]
        data = source.read_bytes()
        if i >= len(sources):  # copies beyond the first round become distinct roasts
            replica_uuid = f"'roastUUID': 'replica-{i:06d}', 'daena_replica': {i}".encode()
            data = _UUID.sub(replica_uuid, data, count=1) if _UUID.search(data) else data.replace(b"{", b"{" + replica_uuid + b", ", 1)
        path = target / f"{i:06d}-{source.name}"
        path.write_bytes(data)
        files.append(path)
    return files


def baseline_rate(files: list[Path], budget_s: float) -> tuple[float, float, int, float]:
    """(files/s, MB/s, files measured, CPU ms per file) of read + ast.literal_eval, over as many
    files as fit the budget."""
    start, cpu = time.perf_counter(), time.process_time()
    size = count = 0
    for path in files:
        data = path.read_bytes()
        try:
            ast.literal_eval(data.decode("utf-8"))
        except (SyntaxError, ValueError, MemoryError, RecursionError, UnicodeDecodeError):
            pass
        size += len(data)
        count += 1
        if time.perf_counter() - start > budget_s:
            break
    elapsed = time.perf_counter() - start
    return count / elapsed, size / elapsed / 1e6, count, (time.process_time() - cpu) / count * 1e3


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--sessions", type=int, default=0, help="total files to ingest (replicas); 0 = the source files once")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--baseline-seconds", type=float, default=15.0)
    args = parser.parse_args()
    import duckdb  # here, not at the top: the parser processes import this script, and need no DuckDB

    sources = sorted(p for p in args.source.iterdir() if ingest.parser_for(p))
    work = Path(tempfile.mkdtemp(prefix="daena-bench-"))
    load_before = os.getloadavg()
    try:
        files = make_replicas(sources, work / "landing", args.sessions) if args.sessions else sources
        total_mb = sum(p.stat().st_size for p in files) / 1e6
        base_files_s, base_mb_s, measured, base_cpu_ms = baseline_rate(files, args.baseline_seconds)

        con = duckdb.connect(str(work / "bench.duckdb"))
        committed = []  # (seconds since start, files handled) after each committed batch
        main_cpu = time.process_time()  # every thread of this process
        start = time.perf_counter()
        with DescendantPeakRss() as workers_rss:
            report = ingest.ingest(con, files, work / "quarantine", workers=args.workers,
                                   on_batch=lambda handled: committed.append((time.perf_counter() - start, handled)))
        elapsed = time.perf_counter() - start
        main_cpu = time.process_time() - main_cpu
        con.close()
        rss_main = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

        files_s = len(files) / elapsed
        parallel = args.workers > 1 and len(files) >= ingest.PARALLEL_FROM
        print(f"files: {len(files)} ({total_mb:.1f} MB), "
              + (f"{args.workers} parser processes" if parallel else f"parsed in the main process (fewer than {ingest.PARALLEL_FROM} files)"))
        print(f"baseline ast.literal_eval: {base_files_s:8.1f} files/s {base_mb_s:7.2f} MB/s  (over {measured} files; "
              f"CPU {base_cpu_ms:.2f} ms per file)")
        print(f"ingest end to end:         {files_s:8.1f} files/s {total_mb / elapsed:7.2f} MB/s  in {elapsed:.1f} s"
              f"  = {files_s / base_files_s:.1f}x baseline  (target >= 10x on a large batch)")
        first_s, first_files = committed[0]
        print(f"  start-up and the first batch: {first_files} files committed after {first_s:.2f} s "
              "(imports, schema" + (", parser processes started" if parallel else "") + ", first batch parsed and written)")
        if len(committed) > 1:
            last_s, last_files = committed[-1]
            steady = (last_files - first_files) / (last_s - first_s)
            print(f"ingest steady state:       {steady:8.1f} files/s  (batches 2-{len(committed)}: {last_files - first_files} files "
                  f"in {last_s - first_s:.2f} s)  = {steady / base_files_s:.1f}x baseline")
        else:
            print("ingest steady state:       not measured: the files fit in one batch, so the end-to-end rate is mostly "
                  "start-up (a small batch); the 10x target is for a large one (--sessions 3000 or more)")
        print(f"  sessions loaded {len(report.loaded)}, duplicates {len(report.duplicates)}, rejected {len(report.rejected)}")
        print(f"  sessions/s end to end: {len(report.loaded) / elapsed:.1f}")
        per_file = 1e3 / len(files)
        print(f"CPU per file: main process {main_cpu * per_file:.3f} ms "
              + ("(the serial part: classify, Arrow tables, DuckDB)" if parallel else "(all of the ingest, parsing included)")
              + (f", parser processes and their fork server {workers_rss.cpu_s * per_file:.3f} ms, "
                 f"together {(main_cpu + workers_rss.cpu_s) * per_file:.3f} ms (on two free cores a file takes at least half of it in wall time)" if parallel else ""))
        # what the code allows apart from the machine's load: the ingest's CPU per file against the
        # baseline's, on as many free cores as it uses; and how much of those cores the run got
        cores, ingest_cpu_s = (2 if parallel else 1), main_cpu + (workers_rss.cpu_s if parallel else 0.0)
        print(f"CPU-bound ratio: {cores * base_cpu_ms / (ingest_cpu_s * per_file):.1f}x ({cores} x baseline CPU per file / ingest CPU "
              f"per file: the end-to-end ratio on {cores} free core(s), at best); the run used "
              f"{100 * ingest_cpu_s / (cores * elapsed):.0f} % of {cores} core(s) over its wall time")
        print(f"peak RSS: main {rss_main:.0f} MB" + (f", largest parser process {workers_rss.mb:.0f} MB" if parallel else "") + " (target < 1500 MB)")
        print("load average 1/5/15 min: before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(*load_before, *os.getloadavg()))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
