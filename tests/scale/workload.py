"""Workloads for the multi-writer tests and scripts/bench_scale.py.

`make_copies` derives distinct sessions from the shared real profiles: copy k of a profile gets
the roast UUID ``generated-copy-<k>-<original uuid>`` (so a different session id, which is built
from the UUID and the series) and a title saying it is a generated copy; the measured series are
the real ones. The copies are labelled as generated in their file name, title and UUID.

    python -m tests.scale.workload ingest TARGET FOLDER [--batch-size N]

ingests a folder into a warehouse (a DuckDB file or a ``ducklake:`` target) in its own process and
prints one line per committed batch, for the concurrency and kill -9 tests.
"""
from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from daena_pipelines.db import connect
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("ingest")
    run.add_argument("target")
    run.add_argument("folder", type=Path)
    run.add_argument("--batch-size", type=int, default=500)
    run.add_argument("--workers", type=int, default=1)
    args = parser.parse_args(argv)
    report = ingest_folder(args.target, args.folder, args.batch_size, args.workers)
    print(f"done loaded={len(report.loaded)} duplicates={len(report.duplicates)} rejected={len(report.rejected)} unchanged={report.unchanged}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
