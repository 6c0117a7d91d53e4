"""Measure the timing gate itself: inject known slowdowns into the NBMF codec over N runs and
count how often the gate flags them (detection) and how often it flags a clean run (false alarm),
per key (record class / codec / op, on the CPU and the wall clock).

    python scripts/gate_power.py [--trials N] [--repetitions R] [--warmup W] [--warehouse PATH]
                                 [--load-change BUSY] [--classes CLASS ...]

Corpus: the held-out records of the warehouse (when it exists) plus the shared real profiles
through the real ingest, as the benchmark uses them. Each run times the reference codec
(benchmark.reference: the orjson + zstd + SHA-256 bound; for semantic text, the text rule + the bound) and NBMF interleaved record by record,
the two back to back per record and repetition (benchmark.timing_run), and the gate
(regressions.gate.decide) judges the paired ratios against the history of earlier runs,
exactly as in CI.

``--load-change BUSY`` starts BUSY busy-looping processes for the second third of the trials
and stops them after it: the machine's load rises and falls during the history, as it did when
the command encode key raised false alarms on half of its clean runs.

``--classes`` measures only those record classes' keys (each key is judged on its own records
only, so a long power run can be split into locked pieces per class without changing what any
key sees — except the machine's load at the time of each piece).

Per trial: clean, x1.1, clean, x1.2, clean, x1.5, clean, wait. A slowdown xF busy-spins after
every NBMF encode/decode for (F-1) times the call's own CPU time; "wait" sleeps 1 ms after every
telemetry decode (CPU time unchanged: only the wall clock can see it). An injected run is judged
against the clean history and then reverted (it never joins the baseline); the clean run after
it is the recovery run. Clean runs that the gate passes join the history; every clean run counts
towards the false-alarm rate, and the recovery runs are also counted on their own. Prints the load average before and after:
timings on a shared machine move with it, which is why the gate only sees ratios.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from daena_pipelines import config  # noqa: E402
from daena_pipelines.nbmf.benchmark import GATED_CODECS, REFERENCES, Codec, codecs, held_out, history_key, timing_run  # noqa: E402
from daena_pipelines.nbmf.codec import NbmfCodec  # noqa: E402
from daena_pipelines.nbmf.corpus import load_corpus, with_reference  # noqa: E402
from daena_pipelines.regressions.gate import GateRule, decide  # noqa: E402
from daena_pipelines.lib.metadata import markdown_table  # noqa: E402
from daena_pipelines.db import connect  # noqa: E402

SCHEDULE = ("clean", "x1.1", "clean", "x1.2", "clean", "x1.5", "clean", "wait")
WAIT_S = 0.001


def slowed(codec: Codec, factor: float) -> Codec:
    def spin(fn):
        def call(*args):
            start = time.thread_time_ns()
            out = fn(*args)
            until = time.thread_time_ns() + (time.thread_time_ns() - start) * (factor - 1)
            while time.thread_time_ns() < until:
                pass
            return out

        return call

    return Codec(codec.name, spin(codec.encode), spin(codec.decode), codec.signature)


def waiting(codec: Codec) -> Codec:
    def decode(envelope):
        out = codec.decode(envelope)
        if isinstance(out, dict) and "points" in out:  # a telemetry record
            time.sleep(WAIT_S)
        return out

    return Codec(codec.name, codec.encode, decode, codec.signature)


def affected(kind: str, key: str, clock: str) -> bool:
    """Keys an injection must move: every NBMF key for xF; telemetry decodes on the wall clock for a wait."""
    if kind.startswith("x"):
        return True
    cls, _codec, op = key.split("/")[:3]
    return clock == "wall" and op == "decode" and cls == "telemetry"


def corpus(warehouse: Path) -> list:
    records, skipped = [], {}
    if warehouse.exists():
        with connect(warehouse, read_only=True) as con:
            records, skipped = load_corpus(con)
    records, skipped = with_reference(records, skipped)
    return records


def stop(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        process.terminate()
        process.wait()
    processes.clear()


def run_one(i, kind, schedule, args, test, variants, rule, history, counts, started, loaded) -> None:
    """Time one run of ``kind``, judge every key, count the verdicts, extend the clean history.
    Clean runs while the busy processes run are also counted as "clean, busy"."""
    samples: dict[tuple[str, str], list[float]] = defaultdict(list)
    for cls, codec, op, clock, _sample, ratio in timing_run(test, variants[kind], args.repetitions):
        samples[history_key(cls, codec, op), clock].append(ratio)
    for (key, clock), new in samples.items():
        verdict = decide(new, history[key, clock], rule)
        if key == args.trace:
            print(f"  {i:3d} {kind:5s} {clock:4s} {verdict.verdict:10s} median {verdict.median:.3f} "
                  f"baseline {verdict.baseline_median or 0:.3f} x{verdict.growth or 0:.3f} p={verdict.p_value or 0:.2g} {verdict.test} {verdict.note}")
        recovery = kind == "clean" and i > args.warmup and schedule[i - 1] != "clean"
        labels = [kind] + ["recovery"] * recovery + ["clean, busy"] * (kind == "clean" and loaded)
        for label in labels:
            if i >= args.warmup and (kind == "clean" or affected(kind, key, clock)):
                counts[label, key, clock][0] += verdict.regression
                counts[label, key, clock][1] += 1
        if kind == "clean" and not verdict.regression:  # an injected slowdown is reverted after its run
            history[key, clock].append(new)
    if i and i % 40 == 0:
        print(f"  {i}/{len(schedule)} runs, {time.monotonic() - started:.0f} s", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=30)
    parser.add_argument("--repetitions", type=int, default=7)
    parser.add_argument("--warmup", type=int, default=5, help="clean runs before the first trial")
    parser.add_argument("--warehouse", default=str(config.Settings.from_env().warehouse))
    parser.add_argument("--trace", default=None, help="print every verdict of this key (e.g. all/nbmf_lossless/encode)")
    parser.add_argument("--load-change", type=int, default=0, metavar="BUSY",
                        help="busy-looping processes to run during the second third of the trials")
    parser.add_argument("--classes", nargs="+", default=None, metavar="CLASS",
                        help="only these record classes (e.g. roast_note telemetry); default all")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    nbmf = NbmfCodec()
    test, _ = held_out(corpus(Path(args.warehouse)), nbmf)
    test = [r for r in test if args.classes is None or r.record_class in args.classes]
    all_codecs = codecs(nbmf)
    clean = {name: all_codecs[name] for name in (*REFERENCES, *GATED_CODECS)}
    variants = {
        "clean": clean,
        **{k: {**clean, **{n: slowed(clean[n], float(k[1:])) for n in GATED_CODECS}} for k in ("x1.1", "x1.2", "x1.5")},
        "wait": {**clean, **{n: waiting(clean[n]) for n in GATED_CODECS}},
    }
    rule = GateRule()
    print(f"{len(test)} held-out records; rule {rule.describe()}; {args.trials} trials x {len(SCHEDULE)} runs, "
          f"{args.repetitions} repetitions, {args.warmup} warm-up runs")
    history: dict[tuple[str, str], list[list[float]]] = defaultdict(list)  # accepted runs per key
    counts: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0])  # (kind, key, clock) -> [flagged, runs]
    started = time.monotonic()
    schedule = ["clean"] * args.warmup + list(SCHEDULE) * args.trials
    third = len(SCHEDULE) * args.trials // 3
    busy: list[subprocess.Popen] = []
    try:
        for i, kind in enumerate(schedule):
            if args.load_change and i == args.warmup + third:
                busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load_change)]
                print(f"  run {i}: {len(busy)} busy processes started, load average {os.getloadavg()}", flush=True)
            if busy and i == args.warmup + 2 * third:
                stop(busy)
                print(f"  run {i}: busy processes stopped, load average {os.getloadavg()}", flush=True)
            run_one(i, kind, schedule, args, test, variants, rule, history, counts, started, bool(busy))
    finally:
        stop(busy)
    kinds = ("x1.1", "x1.2", "x1.5", "wait", "clean", "recovery", "clean, busy")
    rows = []
    for key, clock in sorted({(k, c) for (_kind, k, c) in counts}):
        cells = []
        for kind in kinds:
            flagged, runs = counts.get((kind, key, clock), (0, 0))
            cells.append(f"{flagged / runs:.0%}" if runs else "")
        rows.append((key, clock, *cells))
    print("\nflagged runs per key (detection for injected slowdowns, false alarms for clean and recovery runs):")
    print(markdown_table(["key", "clock", *kinds], rows))
    summary = []
    for kind in kinds:
        per_key = [(f, n) for (kd, _k, _c), (f, n) in counts.items() if kd == kind and n]
        if per_key:
            rates = [f / n for f, n in per_key]
            summary.append((kind, len(rates), f"{sum(n for _f, n in per_key) / len(rates):.0f}", f"{min(rates):.0%}",
                            f"{sum(f for f, _n in per_key) / sum(n for _f, n in per_key):.1%}", f"{max(rates):.0%}"))
    print()
    print(markdown_table(["runs", "keys", "runs per key", "min rate over keys", "overall rate", "max rate over keys"], summary))
    print(f"\ntargets: x1.2 detected in >= 80 % of runs on every key; clean runs flagged <= 2 % per key")
    print(f"took {time.monotonic() - started:.0f} s; load average after: {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
