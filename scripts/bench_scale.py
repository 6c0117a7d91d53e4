"""Benchmark: the embedded DuckDB file against the DuckLake warehouse (catalog in PostgreSQL).

    python scripts/bench_scale.py                       # 100 copies of the shared profiles, 4 writers
    python scripts/bench_scale.py --copies 10 --load-copies 2 --kill-copies 1   # a quick look

Starts its own PostgreSQL server (tests/scale/pg.py) and prints three tables:

1. throughput: `--copies` generated copies of every shared real profile (labelled as generated in
   file name, title and roast UUID; tests/scale/workload.py) ingested by one writer process into
   each backend, one after the other in this run: sessions/s and the writer's peak RSS (its
   parser workers' largest peak beside it), the DuckDB file as the baseline of the ratio;
2. load: four writer processes ingesting the same `--load-copies` folder into one DuckLake
   warehouse at once, beside the landing sensor's run (in this process) and a read-only reader
   querying every 100 ms: lock errors, commit conflicts retried, lost and duplicated
   sessions, and the counts against a serial ingest of the same folder;
3. kill -9: a writer killed right after its 1st, 3rd and 6th batch commit, in each backend: the
   half-written/duplicated rows found afterwards (each kill continues from the state the previous
   one left), then a full re-run's counts against the serial ones.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from daena_pipelines.db import connect  # noqa: E402
from tests.scale import workload  # noqa: E402
from tests.scale.pg import PostgresServer  # noqa: E402

SHARED = PROJECT.parent / "shared" / "data" / "artisan-scottjames"


def new_lake(pg: PostgresServer, work: Path, name: str) -> str:
    """A DuckLake warehouse of its own: a new catalog database and its own data folder."""
    os.environ["DAENA_LAKE_DATA_PATH"] = str(work / f"lake-{name}") + "/"  # read when the catalog is created
    pg.create_database(name)
    target = pg.lake_target(name)
    with connect(target):  # creates the catalog and the schema
        pass
    return target


def run_writer(target: str | Path, folder: Path, batch_size: int, workers: int) -> dict:
    process = workload.writer(target, folder, batch_size, workers=workers, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = process.communicate()
    if process.returncode:
        raise RuntimeError(f"writer failed: {err[-2000:]}")
    return json.loads(out.strip().splitlines()[-1]) | {"log": err}


def throughput(pg: PostgresServer, work: Path, copies: int, batch_size: int) -> None:
    landing = work / "throughput"
    files = workload.make_copies(SHARED, landing, copies)
    size_mb = sum(p.stat().st_size for p in files) / 1e6
    print(f"\n1. throughput: {len(files)} files ({size_mb:.0f} MB), {copies} generated copies of each shared profile, batch {batch_size}")
    rows = []
    targets = {"duckdb file": work / "throughput.duckdb", "ducklake": new_lake(pg, work, "throughput")}
    for name, target in targets.items():
        started = time.perf_counter()
        numbers = run_writer(target, landing, batch_size, workers=2)
        wall = time.perf_counter() - started
        counts = workload.integrity(target)
        rows.append((name, counts["sessions"], counts["points"], numbers["seconds"], wall, numbers["peak_rss_mb"], numbers["peak_rss_workers_mb"]))
    base = rows[0][1] / rows[0][3]
    print(f"{'backend':12s} {'sessions':>9s} {'points':>10s} {'ingest s':>9s} {'sessions/s':>11s} {'vs file':>8s} {'peak RSS MB':>12s} {'workers MB':>11s}")
    for name, sessions, points, seconds, wall, rss, rss_workers in rows:
        rate = sessions / seconds
        print(f"{name:12s} {sessions:9d} {points:10d} {seconds:9.1f} {rate:11.1f} {rate / base:7.2f}x {rss:12.0f} {rss_workers:11.0f}")
    on_file, on_lake = (workload.integrity(t) for t in targets.values())
    print(f"every count equal in both backends: {on_file == on_lake}; half-written or duplicated rows: "
          f"{sum(on_file[k] + on_lake[k] for k in workload.HALF_WRITTEN)}")


def load(pg: PostgresServer, work: Path, copies: int, writers: int, batch_size: int) -> None:
    import dagster as dg

    from daena_pipelines.definitions import defs
    from daena_pipelines.defs.telemetry.assets import telemetry_ingest
    from daena_pipelines.lib.settings import DaenaSettings
    from daena_pipelines.lib.warehouse import WarehouseResource

    landing = work / "load"
    files = workload.make_copies(SHARED, landing, copies)
    serial = work / "serial.duckdb"
    started = time.perf_counter()
    workload.ingest_folder(serial, landing, batch_size)
    serial_s = time.perf_counter() - started
    target = new_lake(pg, work, "load")

    os.environ["DAENA_LANDING_DIR"] = str(landing)
    request = defs.resolve_sensor_def("landing_folder_sensor").evaluate_tick(dg.build_sensor_context(resources=defs.resources)).run_requests[0]
    started = time.perf_counter()
    reader = workload.Reader(target)
    reader.start()
    processes = [workload.writer(target, landing, batch_size, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(writers)]
    sensor_run = dg.materialize([telemetry_ingest], resources={"duckdb": WarehouseResource(database=target), "daena_settings": DaenaSettings()},
                                run_config=request.run_config, raise_on_error=False)
    results = [p.communicate() for p in processes]
    elapsed = time.perf_counter() - started
    reader.stop()
    logs = "".join(err for _out, err in results)
    lake_counts, serial_counts = workload.integrity(target), workload.integrity(serial)
    lost = len(set(workload.points_per_session(serial)) - set(workload.points_per_session(target)))
    print(f"\n2. load: {len(files)} files, {writers} writer processes + the landing sensor's run + a reader every 100 ms, batch {batch_size}")
    print(f"  writers exit codes {[p.returncode for p in processes]}, sensor run success {sensor_run.success}, wall {elapsed:.1f} s (serial ingest into a file {serial_s:.1f} s)")
    print(f"  lock errors: {logs.count('locked') + sum('lock' in e.lower() for e in reader.errors)}, reader errors: {len(reader.errors)}, "
          f"reads: {len(reader.counts)} ({len(reader.counts) / elapsed:.1f}/s), read counts never went back: {reader.counts == sorted(reader.counts)}")
    print(f"  commit conflicts retried: {logs.count('transaction conflict')}")
    print(f"  sessions: DuckLake {lake_counts['sessions']}, serial {serial_counts['sessions']}; lost {lost}, "
          f"duplicated {lake_counts['duplicate_sessions']}; every count equal to the serial run: {lake_counts == serial_counts}")


def kills(pg: PostgresServer, work: Path, copies: int, batch_size: int, points: tuple[int, ...]) -> None:
    landing = work / "kill"
    files = workload.make_copies(SHARED, landing, copies)
    serial = work / "kill-serial.duckdb"
    workload.ingest_folder(serial, landing, batch_size)
    expected = workload.integrity(serial)
    print(f"\n3. kill -9: {len(files)} files, batch {batch_size}; serial ingest: {expected['sessions']} sessions, {expected['points']} points")
    print(f"{'backend':12s} {'killed after batch':>19s} {'sessions then':>14s} {'half/dup rows':>14s}")
    for name, target in (("duckdb file", work / "kill.duckdb"), ("ducklake", new_lake(pg, work, "kill"))):
        for batches in points:
            after = workload.kill_after_batches(target, landing, batches, batch_size)
            print(f"{name:12s} {batches:19d} {after['sessions']:14d} {sum(after[k] for k in workload.HALF_WRITTEN):14d}")
        workload.ingest_folder(target, landing, batch_size)
        final = workload.integrity(target)
        print(f"{name:12s} re-run to the end: {final['sessions']} sessions, {final['points']} points; equal to serial: {final == expected}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copies", type=int, default=100)
    parser.add_argument("--load-copies", type=int, default=5)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--kill-copies", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=500)
    args = parser.parse_args()
    load_before = os.getloadavg()
    pg = PostgresServer().start()
    work = Path(tempfile.mkdtemp(prefix="daena-bench-scale-"))
    os.environ["DAENA_DATA_DIR"] = str(work / "data")  # quarantine copies of the sensor run
    try:
        throughput(pg, work, args.copies, args.batch_size)
        load(pg, work, args.load_copies, args.writers, batch_size=25)
        kills(pg, work, args.kill_copies, batch_size=10, points=(1, 3, 6))
    finally:
        pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\nload average 1/5/15 min: before {:.2f} {:.2f} {:.2f}, after {:.2f} {:.2f} {:.2f}".format(*load_before, *os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
