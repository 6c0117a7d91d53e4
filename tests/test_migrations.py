"""Warehouses left by earlier code open with today's, migrate on first connection and take writes.

- ``data/main-warehouse.duckdb.gz``: made by main before the regressions, nbmf and evals schema
  histories became migrations only (recipe in data/make_main_warehouse.py): the timing gate's
  tables made at run time outside the ledger, nbmf.runs.reference_records and the evals columns
  made by those domains' old migration 1.
- a warehouse from before the ledger, built here from the DDL text of that time (nbmf.runs
  without reference_records, evals without the judge's later columns and fc_crash_pass).
The telemetry domain's old warehouse is tests/telemetry/test_migrations.py's.
"""
import datetime as dt
import gzip
import shutil
from pathlib import Path

import duckdb
import pytest

from daena_pipelines import migrations
from daena_pipelines.db import connect
from daena_pipelines.device.command_store import WarehouseIO
from daena_pipelines.evals import tables as evals
from daena_pipelines.regressions import history

MAIN_WAREHOUSE = Path(__file__).parent / "data" / "main-warehouse.duckdb.gz"
TOUCHED = ("regressions", "nbmf", "evals", "device", "meta")
AT = dt.datetime(2026, 12, 2, 12, tzinfo=dt.timezone.utc)


@pytest.fixture
def main_warehouse(tmp_path) -> Path:
    path = tmp_path / "main.duckdb"
    with gzip.open(MAIN_WAREHOUSE) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def _schema(con) -> set[tuple]:
    """(table, column, type) of the touched schemas' tables and views."""
    marks = ", ".join(f"'{s}'" for s in TOUCHED)
    return set(con.execute(f"SELECT table_schema || '.' || table_name, column_name, data_type FROM information_schema.columns "
                           f"WHERE table_schema IN ({marks})").fetchall())


def _fresh_schema(tmp_path) -> set[tuple]:
    with connect(tmp_path / "fresh.duckdb") as con:
        return _schema(con)


def _ledger(con) -> dict[str, int]:
    return dict(con.execute("SELECT domain, max(version) FROM meta.schema_migrations GROUP BY ALL").fetchall())


def test_every_domain_lists_as_many_migrations_as_its_registered_version():
    for domain, (_module, newest) in migrations.DOMAINS.items():
        assert [m.version for m in migrations.migrations_of(domain)] == list(range(1, newest + 1)), domain


def test_a_warehouse_of_the_main_before_migrates_keeps_its_rows_and_takes_writes(main_warehouse, tmp_path):
    with duckdb.connect(str(main_warehouse)) as con:  # as that main left it
        assert _ledger(con) == {"telemetry": 5, "evals": 2, "nbmf": 1, "regressions": 4, "device": 3, "commands": 1}
        applied = migrations.migrate(con)  # what it lacks, and nothing else
        assert sorted((d, v) for d, v, _text in applied) == [("commands", 2), ("commands", 3), ("device", 4), ("evals", 3), ("evals", 4), ("nbmf", 2), ("nbmf", 3), ("regressions", 5), ("regressions", 6)]
    with connect(main_warehouse) as con:
        assert _ledger(con) == {d: newest for d, (_m, newest) in migrations.DOMAINS.items()}
        assert _schema(con) == _fresh_schema(tmp_path)  # the same tables and columns as a new warehouse
        # its rows, as that main wrote them
        assert con.execute(f"SELECT count(*) FROM {history.HISTORY}").fetchone()[0] == 5
        assert con.execute(f"SELECT run_id, verdict FROM {history.VERDICTS}").fetchall() == [("20261201T120000000000Z-aaaaaa", "no_history")]
        assert con.execute("SELECT reference_records FROM nbmf.runs").fetchall() == [(12,)]
        assert con.execute("SELECT session_id, fc_crash_pass FROM evals.eval_runs").fetchall() == [("old-session", True)]
        assert con.execute("SELECT endpoint, plan_clarity_mean FROM evals.judge_score_spread").fetchall() == [("messages", 80.0)]
        assert con.execute("SELECT count(*) FROM evals.golden_cases").fetchone()[0] == 4
        # today's writers: the timing gate judges a second run against the first, the evals replace a day
        history.record_samples(con, "20261202T120000000000Z-bbbbbb", "nbmf", [("k", "cpu", i, 1.0 + i / 100) for i in range(5)], AT)
        run_id, outcomes = history.gate_latest(con, "nbmf", folder=tmp_path / "bench-history")
        assert run_id == "20261202T120000000000Z-bbbbbb" and [o.passed for o in outcomes] == [True]
        assert (tmp_path / "bench-history" / "bench_verdicts.parquet").exists()
        row = {c: None for c in evals.EVAL_RUN_COLUMNS} | {"partition_date": AT.date(), "session_id": "new", "fc_crash_pass": False}
        evals.replace_partitions(con, "evals.eval_runs", AT.date(), AT.date(), evals.EVAL_RUN_COLUMNS, [list(row.values())])
        assert con.execute("SELECT session_id, fc_crash_pass FROM evals.eval_runs ORDER BY ALL").fetchall() == [
            ("new", False), ("old-session", True)]
        # evals migration 4: the descriptions the UI shows
        assert con.execute("SELECT comment FROM duckdb_columns() WHERE table_name = 'eval_runs' AND column_name = 'fc_crash_pass'"
                           ).fetchone()[0].startswith("gate: no RoR crash around first crack")
    with connect(main_warehouse) as con:
        assert migrations.migrate(con) == []


def test_the_sidecars_first_connection_with_wait_s_0_migrates_a_main_warehouse_and_reads_its_approval(main_warehouse):
    io = WarehouseIO(str(main_warehouse), "r1", "new-recording", keep_connection=False)
    io.add("session", {"recording_id": "new-recording", "machine_id": "r1", "roaster_serial": "4242", "source": "simulator",
                       "started_at": AT})
    approvals = io.cycle(read=True)
    assert io.unwritten == 0 and [c.proposal_id for c in approvals] == ["old-approval"]
    with duckdb.connect(str(main_warehouse), read_only=True) as con:
        assert _ledger(con) == {d: newest for d, (_m, newest) in migrations.DOMAINS.items()}
        assert con.execute("SELECT recording_id FROM device.sidecar_sessions").fetchall() == [("new-recording",)]


# nbmf.runs before reference_records (the code's DDL then); the evals tables as first created
# (evals migration 1: eval_runs before fc_crash_pass, judge_scores before the judge's endpoint,
# effort, ... columns) with the view of that time.
BEFORE_THE_LEDGER = """
CREATE SCHEMA nbmf;
CREATE TABLE nbmf.runs (
    run_id VARCHAR PRIMARY KEY, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
    codec_version INTEGER, settings JSON, dictionaries JSON, corpus_sha256 VARCHAR,
    corpus_records INTEGER, test_records INTEGER, excluded_training_overlap INTEGER,
    skipped_classes JSON, repetitions INTEGER, machine JSON, targets JSON,
    artifact_json VARCHAR, artifact_csv VARCHAR);
INSERT INTO nbmf.runs (run_id, corpus_records) VALUES ('old-run', 40);
CREATE OR REPLACE VIEW evals.judge_score_spread AS
SELECT partition_date, session_id, case_id, model, prompt_version, count(*) AS n_samples
FROM evals.judge_scores WHERE status = 'judged' GROUP BY ALL;
"""


def test_nbmf_and_evals_tables_from_before_the_ledger_get_their_later_columns(tmp_path):
    path = tmp_path / "before.duckdb"
    with duckdb.connect(str(path)) as con:
        migrations.migrations_of("evals")[0].run(con)
        con.execute(BEFORE_THE_LEDGER)
        con.execute("INSERT INTO evals.eval_runs (session_id, outcome) VALUES ('old-session', 'FAIL')")
        later = {("nbmf.runs", "reference_records"), ("evals.eval_runs", "fc_crash_pass"), ("evals.judge_scores", "endpoint")}
        assert not later & {(t, c) for t, c, _ty in _schema(con)}
    with connect(path) as con:
        assert _schema(con) == _fresh_schema(tmp_path)
        assert con.execute("SELECT run_id, corpus_records, reference_records FROM nbmf.runs").fetchall() == [("old-run", 40, None)]
        assert con.execute("SELECT session_id, outcome, fc_crash_pass FROM evals.eval_runs").fetchall() == [("old-session", "FAIL", None)]
        assert "endpoint" in {c for _t, c, _ty in _schema(con) if _t == "evals.judge_score_spread"}


def test_a_new_warehouse_has_the_timing_gates_tables_before_anything_writes_them(tmp_path):
    # they were made by history.py's first write: a reader before it (the gate's history, a CI
    # step reading verdicts) met a missing table
    with connect(tmp_path / "new.duckdb") as con:
        assert history.runs_of(con, "nbmf") == [] and history.verdicts(con, "nbmf") == {}
        assert history.gate_run(con, "nbmf", "any-run") == {}
