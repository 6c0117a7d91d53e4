"""Warehouses left by earlier code open with today's, migrate on first connection and take writes.

- ``data/main-warehouse.duckdb.gz``: made by main before the regressions, nbmf and evals schema
  histories became migrations only (recipe in data/make_main_warehouse.py): the timing gate's
  tables made at run time outside the ledger, nbmf.runs.reference_records and the evals columns
  made by those domains' old migration 1.
- a warehouse from before the ledger, built here from the DDL text of that time (nbmf.runs
  without reference_records, evals without the judge's later columns and fc_crash_pass).
- a warehouse whose commands tables the runs of an earlier main made (before commands migration 4),
  built here from the DDL those runs executed.
The telemetry domain's old warehouse is tests/telemetry/test_migrations.py's.
"""
import datetime as dt
import gzip
import shutil
from pathlib import Path

import duckdb
import pytest

from daena_pipelines import migrations
from daena_pipelines.commands import tables as commands_tables
from daena_pipelines.db import connect
from daena_pipelines.device.command_store import WarehouseIO
from daena_pipelines.evals import tables as evals
from daena_pipelines.regressions import history

MAIN_WAREHOUSE = Path(__file__).parent / "data" / "main-warehouse.duckdb.gz"
TOUCHED = ("regressions", "nbmf", "evals", "device", "commands", "meta")
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
        assert sorted((d, v) for d, v, _text in applied) == [
            ("commands", 2), ("commands", 3), ("commands", 4), ("commands", 5), ("commands", 6), ("device", 4), ("device", 5), ("device", 6),
            ("evals", 3), ("evals", 4), ("evals", 5), ("evals", 6), ("nbmf", 2),
            ("nbmf", 3), ("nbmf", 4), ("regressions", 5), ("regressions", 6)]
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


# The commands tables as the runs of main before commands migrations 3 and 4 left them: the ingest's four made
# by its CREATE OR REPLACE with the DDL of that time (invalid_transitions with the two columns migration 2
# appended to an older table), outcome_metrics by a CREATE TABLE AS of an older build (no n_partial, a
# column since dropped, n_expired appended by migration 1), alerts by the alerts build.
RUN_TIME_COMMANDS_TABLES = f"""
CREATE SCHEMA commands;
CREATE TABLE commands.proposals ({commands_tables.DDL["commands.proposals"]});
CREATE TABLE commands.audit_log ({commands_tables.DDL["commands.audit_log"]});
CREATE TABLE commands.invalid_transitions (
    proposal_id VARCHAR NOT NULL, source VARCHAR NOT NULL, location VARCHAR NOT NULL, from_status VARCHAR, to_status VARCHAR,
    changed_at TIMESTAMPTZ, problem VARCHAR NOT NULL, seen_at TIMESTAMPTZ NOT NULL, machine_id VARCHAR, command_type VARCHAR);
CREATE TABLE commands.ingest_errors ({commands_tables.DDL["commands.ingest_errors"]});
CREATE TABLE commands.outcome_metrics AS SELECT DATE '2026-11-17' AS day, 'm1' AS machine_id, 'SET_FAN' AS command_type,
    3 AS n_proposals, 2 AS n_completed, 2 / 3 AS success_rate, 1.0 AS retired_measure, 0 AS n_expired;
CREATE TABLE commands.alerts (
    alert_id VARCHAR PRIMARY KEY, alert_type VARCHAR NOT NULL, severity VARCHAR NOT NULL, day DATE, machine_id VARCHAR NOT NULL,
    command_type VARCHAR, proposal_id VARCHAR, alert_at TIMESTAMPTZ, observed_value DOUBLE, threshold DOUBLE, message VARCHAR NOT NULL);
INSERT INTO commands.proposals (proposal_id, machine_id, command_type, status, created_at, origin, source)
    VALUES ('old-p', 'm1', 'SET_FAN', 'PROPOSED', '2026-11-17 08:00:00+00', 'generated', 'jsonl:old.jsonl');
INSERT INTO commands.audit_log VALUES ('old-p', 0, '2026-11-17 08:00:00+00', NULL, 'PROPOSED', 'agent', NULL, 'jsonl:old.jsonl');
INSERT INTO commands.invalid_transitions VALUES ('old-bad', 'jsonl:old.jsonl', 'old.jsonl:3', 'PROPOSED', 'COMPLETED',
    '2026-11-17 08:01:00+00', 'illegal transition', '2026-11-17 09:00:00+00', 'm1', 'SET_FAN');
INSERT INTO commands.ingest_errors VALUES ('jsonl:old.jsonl', 'old.jsonl:4', NULL, 'bad_json', 'cut short', '2026-11-17 09:00:00+00');
INSERT INTO commands.alerts VALUES ('a1', 'APPROVAL_TIMEOUT', 'WARNING', '2026-11-17', 'm1', 'SET_FAN', 'old-p',
    '2026-11-17 08:00:00+00', 600, 120, 'old-p waited 600 s');
"""


def _commands_shape(con) -> tuple[list, list]:
    """The commands tables' columns in order (type, nullability, description) and their constraints."""
    columns = con.execute("SELECT table_name, column_index, column_name, data_type, is_nullable, comment FROM duckdb_columns() "
                          "WHERE schema_name = 'commands' ORDER BY ALL").fetchall()
    keys = con.execute("SELECT table_name, constraint_type, constraint_column_names FROM duckdb_constraints() "
                       "WHERE schema_name = 'commands' ORDER BY ALL").fetchall()
    return columns, keys


def test_commands_tables_made_at_run_time_become_the_migrations_tables_and_keep_their_rows(tmp_path):
    path = tmp_path / "run-time.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute(migrations.LEDGER + RUN_TIME_COMMANDS_TABLES)
        con.execute("INSERT INTO meta.schema_migrations VALUES ('commands', 1, 'm1', now()), ('commands', 2, 'm2', now())")
    with connect(path) as con:
        assert _ledger(con)["commands"] == 6
        with connect(tmp_path / "fresh.duckdb") as fresh:
            assert _commands_shape(con) == _commands_shape(fresh)
            assert len(_commands_shape(fresh)[0]) == 103  # 102 before commands migration 6 (proposals.command_timeout_s)
        assert con.execute("SELECT proposal_id, status, source FROM commands.proposals").fetchall() == [("old-p", "PROPOSED", "jsonl:old.jsonl")]
        assert con.execute("SELECT proposal_id, seq, to_status FROM commands.audit_log").fetchall() == [("old-p", 0, "PROPOSED")]
        assert con.execute("SELECT proposal_id, machine_id, command_type, problem FROM commands.invalid_transitions").fetchall() == [
            ("old-bad", "m1", "SET_FAN", "illegal transition")]
        assert con.execute("SELECT location, error_kind FROM commands.ingest_errors").fetchall() == [("old.jsonl:4", "bad_json")]
        assert con.execute("SELECT day, n_proposals, n_completed, n_partial, n_expired FROM commands.outcome_metrics").fetchall() == [
            (dt.date(2026, 11, 17), 3, 2, None, 0)]
        assert con.execute("SELECT alert_id, proposal_id, observed_value FROM commands.alerts").fetchall() == [("a1", "old-p", 600.0)]
