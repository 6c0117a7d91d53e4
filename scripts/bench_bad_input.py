"""Benchmark: memory and time of reading pathological .alog files, against a real profile.

    python scripts/bench_bad_input.py            # also the 52 MB one-tuple file of issue #11

Each file goes through `ingest.prepare` (read, parse, validate, metrics: everything a parser
worker does) in a fresh process; prints its peak RSS and wall time beside the baseline — one
real profile from ../shared measured in this same run — and the ratio to it. The pathological
files are derived from that profile: sample steps of 1e-4 s and 1e-5 s (spike counting once
sized its windows by time span / step), and one large tuple that only the exact literal parser
(ast.literal_eval) could read.
"""
from __future__ import annotations

import argparse
import ast
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
REAL = PROJECT.parent / "shared" / "data" / "artisan-scottjames" / "roast_25-10-04_1600.alog"

MEASURE = """
import json, resource, sys, time
from datetime import datetime, timezone
from pathlib import Path
sys.path.insert(0, {project!r})
from daena_pipelines.telemetry import ingest
started = time.perf_counter()
item = ingest.prepare({path!r}, (), datetime.now(timezone.utc), Path({quarantine!r}))
print(json.dumps({{"seconds": time.perf_counter() - started,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "outcome": item.error_kind or "loaded", "message": (item.error or "")[:110]}}))
"""


def measure(path: Path, quarantine: Path) -> dict:
    code = MEASURE.format(project=str(PROJECT), path=str(path), quarantine=str(quarantine))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def variants(folder: Path, big_mb: int) -> dict[str, Path]:
    profile = ast.literal_eval(REAL.read_text(encoding="utf-8"))
    files = {"real profile (baseline)": REAL}
    for step in (1e-4, 1e-5):
        dense = dict(profile, timex=[round(i * step, 6) for i in range(len(profile["timex"]))])
        files[f"sample step {step:g} s"] = folder / f"dense-{step:g}.alog"
        files[f"sample step {step:g} s"].write_text(repr(dense), encoding="utf-8")
    tuple_text = "(" + ", ".join(["1.5"] * (big_mb * 1024 * 1024 // 5)) + ")"
    big = folder / "one-tuple.alog"
    big.write_text(repr(profile)[:-1] + ", 'padding': " + tuple_text + "}", encoding="utf-8")
    files[f"{big.stat().st_size / 1e6:.0f} MB file with one tuple"] = big
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--big-mb", type=int, default=50, help="size of the one-tuple file (issue #11: 52 MB)")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        files = variants(Path(tmp), args.big_mb)
        rows = {name: measure(path, Path(tmp) / "q") for name, path in files.items()}
    base = rows["real profile (baseline)"]
    print(f"{'file':32s} {'peak MB':>8s} {'x base':>7s} {'seconds':>8s} {'x base':>7s}  outcome")
    for name, row in rows.items():
        print(f"{name:32s} {row['peak_mb']:8.0f} {row['peak_mb'] / base['peak_mb']:7.2f} {row['seconds']:8.2f} "
              f"{row['seconds'] / base['seconds']:7.1f}  {row['outcome']}: {row['message']}")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
