"""Workloads for the multi-writer tests and scripts/bench_scale.py.

`make_copies` derives distinct sessions from the shared real profiles: copy k of a profile gets
the roast UUID ``generated-copy-<k>-<original uuid>`` (so a different session id, which is built
from the UUID and the series) and a title saying it is a generated copy; the measured series are
the real ones. The copies are labelled as generated in their file name, title and UUID.

    python -m tests.scale.workload ingest TARGET FOLDER [--batch-size N] [--workers N] [--announce-batches]

ingests a folder into a warehouse (a DuckDB file or a ``ducklake:`` target) in its own process,
for the concurrency and kill -9 tests; it ends with one JSON line of its numbers.
"""
from __future__ import annotations

import argparse
import ast
import json
import logging
import resource
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from daena_pipelines.db import connect
from daena_pipelines.procstats import DescendantPeakRss
from daena_pipelines.telemetry import ingest

COPY_PREFIX = "generated-copy"


def make_copies(source_dir: Path, dest: Path, copies: int, originals: int | None = None) -> list[Path]:
    """`copies` labelled, distinct copies of every .alog under `source_dir` (or of the first
    `originals` of them), written to `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for original in sorted(source_dir.glob("*.alog"))[:originals]:
        profile = ast.literal_eval(original.read_text(encoding="utf-8"))
        uuid, title = profile.get("roastUUID") or "", profile.get("title") or ""
        for k in range(copies):
            profile["roastUUID"] = f"{COPY_PREFIX}-{k}-{uuid}"
            profile["title"] = f"[{COPY_PREFIX} {k} of {original.name}] {title}"
            target = dest / f"{COPY_PREFIX}-{k:03d}-{original.name}"
            target.write_text(repr(profile), encoding="utf-8")
            written.append(target)
    return written


def integrity(target: str | Path) -> dict[str, int]:
    """Row counts and every way a session could be half-written or duplicated (all should be 0)."""
    queries = {
        "sessions": "SELECT count(*) FROM telemetry.sessions",
        "points": "SELECT count(*) FROM telemetry.points",
        "roast_metrics": "SELECT count(*) FROM telemetry.roast_metrics",
        "source_files": "SELECT count(*) FROM telemetry.source_files",
        "ingest_errors": "SELECT count(*) FROM telemetry.ingest_errors",
        "duplicate_sessions": "SELECT count(*) - count(DISTINCT session_id) FROM telemetry.sessions",
        "duplicate_files": "SELECT count(*) FROM (SELECT 1 FROM telemetry.source_files GROUP BY source_path, content_sha256 HAVING count(*) > 1)",
        "sessions_without_points": "SELECT count(*) FROM telemetry.sessions s WHERE NOT EXISTS (SELECT 1 FROM telemetry.points p WHERE p.session_id = s.session_id)",
        "sessions_without_metrics": "SELECT count(*) FROM telemetry.sessions s WHERE NOT EXISTS (SELECT 1 FROM telemetry.roast_metrics m WHERE m.session_id = s.session_id)",
        "orphan_points": "SELECT count(*) FROM telemetry.points p WHERE NOT EXISTS (SELECT 1 FROM telemetry.sessions s WHERE s.session_id = p.session_id)",
        "orphan_metrics": "SELECT count(*) FROM telemetry.roast_metrics m WHERE NOT EXISTS (SELECT 1 FROM telemetry.sessions s WHERE s.session_id = m.session_id)",
        "sessions_without_file": "SELECT count(*) FROM telemetry.sessions s WHERE NOT EXISTS (SELECT 1 FROM telemetry.source_files f WHERE f.session_id = s.session_id AND f.status IN ('loaded', 'replaced'))",
    }
    with connect(target, read_only=True) as con:
        return {name: con.execute(sql).fetchone()[0] for name, sql in queries.items()}


def points_per_session(target: str | Path) -> dict[str, int]:
    with connect(target, read_only=True) as con:
        return dict(con.execute("SELECT session_id, count(*) FROM telemetry.points GROUP BY session_id").fetchall())


def ingest_folder(target: str | Path, folder: Path, batch_size: int, workers: int = 1) -> ingest.IngestReport:
    paths, _others = ingest.discover(folder)
    with connect(target) as con:
        return ingest.ingest(con, paths, folder.parent / "quarantine", workers=workers, batch_size=batch_size)


ROOT = Path(__file__).resolve().parents[2]
HALF_WRITTEN = ("duplicate_sessions", "duplicate_files", "sessions_without_points", "sessions_without_metrics",
                "orphan_points", "orphan_metrics", "sessions_without_file")


def writer(target: str | Path, folder: Path, batch_size: int, announce: bool = False, workers: int = 1, **popen) -> subprocess.Popen:
    """`ingest` below in a process of its own."""
    command = [sys.executable, "-m", "tests.scale.workload", "ingest", str(target), str(folder),
               "--batch-size", str(batch_size), "--workers", str(workers)]
    return subprocess.Popen([*command, *(["--announce-batches"] if announce else [])], cwd=ROOT, text=True, **popen)


def kill_after_batches(target: str | Path, folder: Path, batches: int, batch_size: int) -> dict[str, int]:
    """Start an ingest, kill -9 it as soon as `batches` batches have committed (so inside the next
    one: parsing or writing it), and return the warehouse's `integrity` afterwards."""
    process = writer(target, folder, batch_size, announce=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    for _ in range(batches):
        if not process.stdout.readline().startswith("committed"):
            raise AssertionError("the writer ended before the kill point")
    process.send_signal(signal.SIGKILL)
    process.wait()
    return integrity(target)


def at_once(call, connections) -> list:
    """``call(con)`` on each connection, each in its own thread at the same time; what each returned
    or raised, in no particular order."""
    outcomes = []

    def run(con):
        try:
            outcomes.append(call(con))
        except Exception as exc:  # noqa: BLE001 - the caller's assertions name it
            outcomes.append(exc)

    threads = [threading.Thread(target=run, args=(con,)) for con in connections]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return outcomes


class Reader(threading.Thread):
    """A read-only reader counting sessions every `interval_s` on one connection (each query its own
    transaction, so it sees the latest committed state); every failure is kept in `errors`."""

    def __init__(self, target: str | Path, interval_s: float = 0.1):
        super().__init__(daemon=True)
        self.target, self.interval_s = target, interval_s
        self.counts: list[int] = []
        self.errors: list[str] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        try:
            with connect(self.target, read_only=True) as con:
                while not self._stop_event.is_set():
                    try:
                        self.counts.append(con.execute("SELECT count(*) FROM telemetry.sessions").fetchone()[0])
                    except Exception as exc:  # counted; the callers require none
                        self.errors.append(repr(exc))
                    time.sleep(self.interval_s)
        except Exception as exc:
            self.errors.append(repr(exc))

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


def _announce_commits() -> None:
    """Print "committed" after each batch transaction commits (the kill -9 tests kill on these)."""
    from daena_pipelines import db

    commit = db.retrying_transaction

    def announcing(con, body, *args, **kwargs):
        result = commit(con, body, *args, **kwargs)
        print("committed", flush=True)
        return result

    db.retrying_transaction = announcing  # ingest imports it when it starts


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("ingest")
    run.add_argument("target")
    run.add_argument("folder", type=Path)
    run.add_argument("--batch-size", type=int, default=500)
    run.add_argument("--workers", type=int, default=1)
    run.add_argument("--announce-batches", action="store_true", help="print a line as each batch commits")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s %(message)s")  # conflicts and lock waits, counted by the benchmark
    with connect(args.target):  # schema migrations first: they commit too, and are not batches
        pass
    if args.announce_batches:
        _announce_commits()
    started = time.perf_counter()
    with DescendantPeakRss() as workers_rss:
        report = ingest_folder(args.target, args.folder, args.batch_size, args.workers)
    print(json.dumps({
        "seconds": time.perf_counter() - started, "loaded": len(report.loaded), "duplicates": len(report.duplicates),
        "rejected": len(report.rejected), "unchanged": report.unchanged,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "peak_rss_workers_mb": workers_rss.mb,  # the largest parser worker
    }), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
