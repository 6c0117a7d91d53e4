"""Where the ingest's time goes: one process, CPU time per stage, on replicas of the shared profiles.

    python scripts/profile_ingest.py [--files 700]

Runs the same ingest as scripts/bench_ingest.py with one worker (in-process) under cProfile
with a CPU-time clock, and prints the CPU seconds of each stage (imports, parse, validation,
metrics, warehouse write) beside a plain `ast.literal_eval` of the same files, so the stages can
be compared with the baseline whatever the machine's load. Prints the load average too.
"""
from __future__ import annotations

import argparse
import ast
import cProfile
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "scripts"))

STAGES = {  # label -> (file, function) whose cumulative CPU time is the stage
    "read + parse .alog (pyliteral, arrays)": ("alog.py", "parse_alog"),
    "validation (validate.py)": ("validate.py", "validate"),
    "metrics, RoR, Artisan values, rows": ("ingest.py", "session_rows"),
    "  of which roast_metrics()": ("metrics.py", "roast_metrics"),
    "  of which spike counting": ("metrics.py", "spike_count"),
    "  of which session id (hash)": ("model.py", "session_id"),
    "warehouse write (Arrow + DuckDB)": ("store.py", "write_batch"),
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=700)
    args = parser.parse_args()
    load = os.getloadavg()
    start = time.process_time()
    import duckdb

    from bench_ingest import DEFAULT_SOURCE, make_replicas
    from daena_pipelines.telemetry import ingest

    imports = time.process_time() - start
    work = Path(tempfile.mkdtemp(prefix="daena-profile-"))
    try:
        files = make_replicas(sorted(p for p in DEFAULT_SOURCE.iterdir() if ingest.parser_for(p)), work / "landing", args.files)
        start = time.process_time()
        for path in files:
            try:
                ast.literal_eval(path.read_bytes().decode("utf-8"))
            except (SyntaxError, ValueError):
                pass
        baseline = time.process_time() - start
        con = duckdb.connect(str(work / "w.duckdb"))
        profiler = cProfile.Profile(time.process_time)
        start = time.process_time()
        profiler.enable()
        ingest.ingest(con, files, work / "quarantine", workers=1)
        profiler.disable()
        total = time.process_time() - start
        con.close()
        stats = pstats.Stats(profiler).stats
        print(f"{len(files)} files, one process; load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}, after "
              "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
        print(f"{'stage':44s} {'CPU s':>7s} {'ms/file':>8s}")
        print(f"{'imports (duckdb, numpy, parser modules)':44s} {imports:7.2f}        -")
        for label, (filename, function) in STAGES.items():
            cumulative = sum(v[3] for (f, _line, name), v in stats.items() if f.endswith(filename) and name == function)
            print(f"{label:44s} {cumulative:7.2f} {1000 * cumulative / len(files):8.3f}")
        print(f"{'ingest total':44s} {total:7.2f} {1000 * total / len(files):8.3f}")
        print(f"{'baseline: read + ast.literal_eval':44s} {baseline:7.2f} {1000 * baseline / len(files):8.3f}")
        print(f"one-process ratio (baseline / ingest CPU): {baseline / total:.2f}; two workers at best double it, "
              "less the main process's warehouse write")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
