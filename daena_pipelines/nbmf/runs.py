"""One benchmark run end to end: corpus from the warehouse (plus the shared real profiles),
measure, write rows and artifacts, and add the run's timing ratios to the gate's history.

Connections are short: one read of the corpus, then (after measuring, with no connection
open) one transaction that writes the run, its results and its latency samples; then the
history: the carried artifact's runs are imported first (a fresh CI warehouse starts from
them), this run's ratios appended, and the artifact written back.
"""
from __future__ import annotations

import csv
import datetime as dt
import json
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import duckdb
import pandas as pd

from daena_pipelines.config import Settings
from daena_pipelines.db import transaction
from daena_pipelines.migrations import Migration
from daena_pipelines.nbmf.benchmark import DEFAULT_REPETITIONS, history_key, run_benchmark, targets
from daena_pipelines.nbmf.codec import CODEC_VERSION, CodecSettings, NbmfCodec
from daena_pipelines.nbmf.dictionaries import DictionaryStore
from daena_pipelines.nbmf.corpus import corpus_fingerprint, load_corpus, origin_counts, with_reference
from daena_pipelines.regressions import history

HISTORY_SUITE = "nbmf"

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

RESULTS_COLUMNS = ("run_id VARCHAR, record_class VARCHAR, size_bucket VARCHAR, codec VARCHAR, metric VARCHAR, origin VARCHAR, "
                   "value DOUBLE, unit VARCHAR")
ORIGIN_COMMENT = ("origin of the records measured: real, reference (the shared real profiles), simulator, generated or "
                  "unlabelled; several joined by + (reference+simulator) for a row that pools them, beside one row per "
                  "origin; unrecorded: a run from before nbmf migration 4, which pooled the origins of its class unnamed")
RESULT_FIELDS = ["run_id", "record_class", "size_bucket", "codec", "metric", "origin", "value", "unit"]
SAMPLE_FIELDS = ["record_class", "size_bucket", "codec", "origin", "op", "ns"]

MIGRATIONS = (
    Migration(1, "nbmf tables as first created", (
        "CREATE SCHEMA IF NOT EXISTS nbmf",
        """CREATE TABLE IF NOT EXISTS nbmf.runs (
        run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
        codec_version INTEGER, settings JSON, dictionaries JSON, corpus_sha256 VARCHAR,
        corpus_records INTEGER, test_records INTEGER, excluded_training_overlap INTEGER,
        skipped_classes JSON, repetitions INTEGER, machine JSON, targets JSON,
        artifact_json VARCHAR, artifact_csv VARCHAR)""",
        """CREATE TABLE IF NOT EXISTS nbmf.results (
        run_id VARCHAR, record_class VARCHAR, size_bucket VARCHAR, codec VARCHAR, metric VARCHAR,
        value DOUBLE, unit VARCHAR, PRIMARY KEY (run_id, record_class, size_bucket, codec, metric))""",
        """CREATE TABLE IF NOT EXISTS nbmf.latency_samples (
        run_id VARCHAR, record_class VARCHAR, size_bucket VARCHAR, codec VARCHAR, op VARCHAR, ns BIGINT)""",
    )),
    # IF NOT EXISTS: the migration 1 of earlier mains created the column already
    Migration(2, "nbmf.runs.reference_records: corpus records from the shared real profiles",
              "ALTER TABLE nbmf.runs ADD COLUMN IF NOT EXISTS reference_records INTEGER"),
    Migration(3, "nbmf.runs.records_by_origin: the corpus per record class and origin (real, reference, simulator, generated)", [
        "ALTER TABLE nbmf.runs ADD COLUMN IF NOT EXISTS records_by_origin JSON",
        "COMMENT ON COLUMN nbmf.runs.records_by_origin IS '{record class: {origin: records}} of the corpus measured: real, "
        "reference (the shared real profiles), simulator, generated or unlabelled; NULL: a run from before it was counted'",
    ]),
    # The key gains the origin, so the table is made afresh (DuckDB cannot change a primary key); rows of
    # earlier runs pooled whatever origins their class held and did not say which: 'unrecorded'.
    Migration(4, "nbmf.results and nbmf.latency_samples per origin: a row over several origins names them all", [
        "CREATE TABLE nbmf.results_before_migration_4 AS FROM nbmf.results",
        "DROP TABLE nbmf.results",
        f"CREATE TABLE nbmf.results ({RESULTS_COLUMNS}, PRIMARY KEY (run_id, record_class, size_bucket, codec, metric, origin))",
        "INSERT INTO nbmf.results SELECT run_id, record_class, size_bucket, codec, metric, 'unrecorded', value, unit "
        "FROM nbmf.results_before_migration_4",
        "DROP TABLE nbmf.results_before_migration_4",
        f"COMMENT ON COLUMN nbmf.results.origin IS '{ORIGIN_COMMENT}'",
        "ALTER TABLE nbmf.latency_samples ADD COLUMN IF NOT EXISTS origin VARCHAR",
        "UPDATE nbmf.latency_samples SET origin = 'unrecorded' WHERE origin IS NULL",
        "COMMENT ON COLUMN nbmf.latency_samples.origin IS 'origin of the timed record (real, reference, simulator, "
        "generated, unlabelled); unrecorded: a run from before nbmf migration 4'",
    ]),
)


def new_run_id(now: dt.datetime) -> str:
    """Sortable by time (golden checks pick the latest run by max(run_id))."""
    return f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:6]}"


def write_artifacts(folder: Path, run: dict, rows: list[dict]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    json_path, csv_path = folder / "results.json", folder / "results.csv"
    json_path.write_text(json.dumps({"run": run, "results": rows}, indent=1, ensure_ascii=False, default=str) + "\n")
    with csv_path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=RESULT_FIELDS)
        writer.writeheader()
        writer.writerows({"run_id": run["run_id"], **row} for row in rows)
    return json_path, csv_path


def execute_run(
    connect: Connect, settings: Settings, codec: NbmfCodec | None = None, repetitions: int = DEFAULT_REPETITIONS
) -> dict:
    """Measure every codec on the warehouse's held-out records; returns the run's row as a dict."""
    codec = codec or NbmfCodec(DictionaryStore(settings.nbmf_dict_dir), CodecSettings.from_env(settings))
    started = dt.datetime.now(dt.timezone.utc)
    with connect() as con:
        records, skipped = load_corpus(con)
    records, skipped = with_reference(records, skipped, settings.nbmf_reference_dir)
    outcome = run_benchmark(records, codec, repetitions)
    finished = dt.datetime.now(dt.timezone.utc)
    run_id = new_run_id(started)
    present = sorted({r.record_class for r in records})
    run = {
        "run_id": run_id,
        "started_at": started,
        "finished_at": finished,
        "codec_version": CODEC_VERSION,
        "settings": codec.settings.describe(),
        "dictionaries": {c: codec.dict_id(c) for c in present},
        "corpus_sha256": corpus_fingerprint(records),
        "corpus_records": len(records),
        "reference_records": sum(r.origin == "reference" for r in records),
        "records_by_origin": origin_counts(records),
        "test_records": outcome.test_records,
        "excluded_training_overlap": outcome.excluded_training_overlap,
        "skipped_classes": skipped,
        "repetitions": repetitions,
        "machine": json.loads(history.this_machine()),
        "targets": targets(outcome.rows),
    }
    json_path, csv_path = write_artifacts(settings.results_dir / "nbmf" / run_id, run, outcome.rows)
    run |= {"artifact_json": str(json_path), "artifact_csv": str(csv_path)}
    results = pd.DataFrame(outcome.rows).assign(run_id=run_id)
    samples = pd.DataFrame(outcome.samples, columns=SAMPLE_FIELDS).assign(run_id=run_id)
    with connect() as con:  # a warehouse connection: its migrations made the tables
        with transaction(con):
            con.execute(
                f"INSERT INTO nbmf.runs ({', '.join(run)}) VALUES ({', '.join('?' * len(run))})",
                [json.dumps(v, default=str) if isinstance(v, (dict, list)) else v for v in run.values()],
            )
            if len(results):
                con.execute(f"INSERT INTO nbmf.results SELECT {', '.join(RESULT_FIELDS)} FROM results")
            if len(samples):
                con.execute(f"INSERT INTO nbmf.latency_samples ({', '.join(SAMPLE_FIELDS)}, run_id) "
                            f"SELECT {', '.join(SAMPLE_FIELDS)}, run_id FROM samples")
        history.import_artifact(con, settings.bench_history_dir)
        history.record_samples(
            con, run_id, HISTORY_SUITE, [(history_key(c, k, op), clock, i, ratio) for c, k, op, clock, i, ratio in outcome.ratios], finished
        )
        history.export_artifact(con, settings.bench_history_dir)
    return run
