"""The commands asset graph through dg.materialize on a temporary DuckDB, on the bundled default log."""
import sqlite3
import subprocess
import sys
from contextlib import closing
from datetime import datetime, timedelta, timezone

import dagster as dg
import duckdb
import pytest
from proposal_builders import write_store

from daena_pipelines.commands import alerts, tables
from daena_pipelines.commands.model import STATUSES
from daena_pipelines.config import ASSETS_DIR, PROJECT_ROOT
from daena_pipelines.db import connect
from daena_pipelines.defs.commands import assets, checks
from daena_pipelines.lib.warehouse import WarehouseResource

BLOCKING = {"proposal_keys_unique", "no_invalid_transition_accepted", "terminal_rows_have_timestamps", "outcome_counts_add_up"}


def materialize(db, run_config=None):
    return dg.materialize(
        [*dg.load_assets_from_modules([assets]), *dg.load_asset_checks_from_modules([checks])],
        resources={"duckdb": WarehouseResource(database=str(db))},
        run_config=run_config,
    )


def query(db, sql):
    with connect(db, read_only=True) as con:
        return con.execute(sql).fetchall()


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    db = tmp_path_factory.mktemp("commands") / "w.duckdb"
    return db, materialize(db)


def test_default_materialisation_fills_every_table(default_run):
    db, result = default_run
    assert result.success
    counts = {e.asset_key.to_user_string(): e.materialization.metadata["dagster/row_count"].value
              for e in result.get_asset_materialization_events()}
    assert set(counts) == {"commands/proposals", "commands/audit_log", "commands/invalid_transitions",
                           "commands/ingest_errors", "commands/outcome_metrics", "commands/alerts"}
    assert all(counts[k] > 0 for k in counts), counts
    assert counts["commands/proposals"] == query(db, "SELECT count(*) FROM commands.proposals")[0][0]


def test_bundled_log_is_generated_and_covers_every_status(default_run):
    db, _ = default_run
    assert query(db, "SELECT DISTINCT origin FROM commands.proposals") == [("generated",)]
    assert {s for (s,) in query(db, "SELECT DISTINCT status FROM commands.proposals")} == set(STATUSES)
    days = query(db, "SELECT min(created_at)::DATE::VARCHAR, max(created_at)::DATE::VARCHAR FROM commands.proposals")
    assert days == [("2026-11-17", "2026-11-19")]
    # The proposals behind the bundled sidecar recordings are linked to their sessions; the other machine's are not.
    linked = query(db, "SELECT DISTINCT machine_id, count(DISTINCT session_id) FROM commands.proposals "
                       "WHERE session_id IS NOT NULL GROUP BY ALL")
    assert linked == [("r1-virtual", 6)]


def test_invalid_input_is_flagged_and_kept_out(default_run):
    db, result = default_run
    flagged = {p for (p,) in query(db, "SELECT DISTINCT proposal_id FROM commands.invalid_transitions")}
    assert len(flagged) == 6  # three planted in the JSONL export, three in the SQLite store
    assert query(db, f"SELECT count(*) FROM commands.proposals WHERE proposal_id IN ({', '.join(repr(p) for p in flagged)})") == [(0,)]
    [(location, kind)] = query(db, "SELECT location, error_kind FROM commands.ingest_errors")
    lines = (ASSETS_DIR / "commands" / "proposals_2026-11-17.jsonl").read_text().count("\n")
    assert kind == "bad_json" and location.endswith(f"proposals_2026-11-17.jsonl:{lines}")  # the cut-short last line
    checks = {e.asset_check_key.name: e for e in result.get_asset_check_evaluations()}
    assert {name for name, e in checks.items() if e.passed} == BLOCKING | {"alerts_well_formed"}
    assert checks["input_lifecycles_valid"].severity == dg.AssetCheckSeverity.WARN
    # 8 lifecycle problems, and 2 of them (PENDING_APPROVAL -> EXECUTING) started an execution without approval
    assert checks["input_lifecycles_valid"].metadata["offending_rows"].value == 10


def test_bundled_log_raises_every_alert_type(default_run):
    db, result = default_run
    assert {t for (t,) in query(db, "SELECT DISTINCT alert_type FROM commands.alerts")} == set(alerts.ALERT_TYPES)
    # the bundled sample alone is aged to its own last event, so its outputs do not depend on when it runs
    (last,) = query(db, "SELECT max(greatest(created_at, approved_at, rejected_at, expired_at, execution_started_at, "
                        "execution_completed_at)) FROM commands.proposals")[0]
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert metadata["commands/proposals"]["as_of_rule"].value == tables.AS_OF_SAMPLE_END
    assert metadata["commands/proposals"]["as_of"].value == metadata["commands/alerts"]["as_of"].value == last.isoformat()


def test_rematerialising_replaces_rows_in_the_tables_the_migrations_made(default_run, tmp_path):
    db, _ = default_run
    copy = tmp_path / "again.duckdb"
    copy.write_bytes(db.read_bytes())
    names = [name for (name,) in query(copy, "SELECT table_name FROM duckdb_tables() WHERE schema_name = 'commands' ORDER BY 1")]
    with connect(copy) as con:  # what a later migration may do to any of them
        for name in names:
            con.execute(f"ALTER TABLE commands.{name} ADD COLUMN added_later VARCHAR")
    assert materialize(copy).success
    # a run writes rows into the tables the migrations made (before, it re-created them and dropped the column)
    assert [(name, *query(copy, f"SELECT count(*), count(added_later) FROM commands.{name}")[0]) for name in names] == [
        ("alerts", 47, 0), ("audit_log", 1048, 0), ("ingest_as_of", 1, 0), ("ingest_errors", 1, 0), ("invalid_transitions", 10, 0),
        ("outcome_metrics", 42, 0), ("proposals", 223, 0)]


def test_sidecar_executions_land_in_the_same_tables(tmp_path):
    db = tmp_path / "w.duckdb"
    with closing(duckdb.connect(str(db))) as con:  # the device's table as an older sidecar wrote it
        con.execute("""
            CREATE SCHEMA device;
            CREATE TABLE device.command_executions (proposal_id VARCHAR, machine_id VARCHAR, session_id VARCHAR,
                command_type VARCHAR, target_value DOUBLE, status VARCHAR, started_at TIMESTAMPTZ,
                completed_at TIMESTAMPTZ, observed_value DOUBLE, error VARCHAR, source VARCHAR,
                execution_id VARCHAR, recording_id VARCHAR, session_t_s DOUBLE);  -- the device's extra columns
        """)
        with closing(sqlite3.connect(ASSETS_DIR / "commands" / "command_store.sqlite")) as store:
            approved = store.execute(
                "SELECT proposal_id, approved_at, command_type, target_value FROM proposals "
                "WHERE status = 'APPROVED' AND machine_id = 'bullet-r1-virtual' ORDER BY proposal_id LIMIT 1").fetchone()
        con.execute("""INSERT INTO device.command_executions VALUES
            (?, 'bullet-r1-virtual', 'sess-1', ?, ?, 'COMPLETED', CAST(? AS TIMESTAMPTZ) + INTERVAL 2 SECOND,
             CAST(? AS TIMESTAMPTZ) + INTERVAL 4 SECOND, ?, NULL, 'simulator', 'ex-1', 'rec-1', 400),
            ('sim-0001', 'bullet-r1-virtual', 'sess-1', 'SET_FAN', 6, 'FAILED', '2026-11-19 18:00:00+00',
             '2026-11-19 18:00:03+00', 5, 'fan level not confirmed', 'simulator', 'ex-2', 'rec-1', 410)""",
                    [approved[0], approved[2], approved[3], approved[1], approved[1], approved[3]])
    assert materialize(db).success
    rows = dict(((p, (s, src, origin)) for p, s, src, origin in
                 query(db, f"SELECT proposal_id, status, source, origin FROM commands.proposals WHERE proposal_id IN ('{approved[0]}', 'sim-0001')")))
    assert rows[approved[0]] == ("COMPLETED", "sqlite:command_store.sqlite + sidecar", "generated")
    assert rows["sim-0001"] == ("FAILED", "sidecar", "simulator")
    assert query(db, "SELECT count(*) FROM commands.audit_log WHERE source = 'sidecar'") == [(4,)]
    assert query(db, f"SELECT session_t_s FROM commands.proposals WHERE proposal_id = '{approved[0]}'") == [(400.0,)]
    assert query(db, "SELECT count(*) FROM commands.alerts WHERE proposal_id = 'sim-0001' AND alert_type = 'EXECUTION_FAILURE'") == [(1,)]


def test_input_paths_and_thresholds_are_run_config(tmp_path):
    db = tmp_path / "w.duckdb"
    jsonl_only = {"ops": {
        "command_proposals": {"config": {"sqlite_paths": []}},
        "commands__alerts": {"config": {"max_proposals_per_window": 100}},
    }}
    assert materialize(db, jsonl_only).success
    assert query(db, "SELECT DISTINCT source FROM commands.proposals") == [("jsonl:proposals_2026-11-17.jsonl",)]
    assert query(db, "SELECT count(*) FROM commands.alerts WHERE alert_type = 'RATE_LIMIT_EXCEEDED'") == [(0,)]


def test_lifecycle_check_catches_a_tampered_table(default_run, tmp_path):
    db, _ = default_run
    copy = tmp_path / "tampered.duckdb"
    copy.write_bytes(db.read_bytes())
    with connect(copy) as con:
        pid = con.execute("SELECT proposal_id FROM commands.proposals WHERE status = 'COMPLETED' LIMIT 1").fetchone()[0]
        con.execute("UPDATE commands.audit_log SET from_status = 'APPROVED' WHERE proposal_id = ? AND to_status = 'COMPLETED'", [pid])
        con.execute("UPDATE commands.proposals SET rejected_at = NULL WHERE status = 'REJECTED'")
    resource = WarehouseResource(database=str(copy))
    lifecycle = checks.no_invalid_transition_accepted(duckdb=resource)
    assert not lifecycle.passed and lifecycle.metadata["offending_rows"].value == 2  # illegal move + broken chain
    assert not checks.terminal_rows_have_timestamps(duckdb=resource).passed


def test_bundled_files_are_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(PROJECT_ROOT / "scripts" / "make_sample_proposals.py"), "--out", str(tmp_path)],
                   check=True, capture_output=True, env={"PYTHONPATH": str(PROJECT_ROOT)})
    bundled = ASSETS_DIR / "commands"
    assert (tmp_path / "proposals_2026-11-17.jsonl").read_bytes() == (bundled / "proposals_2026-11-17.jsonl").read_bytes()

    def dump(path):
        with closing(sqlite3.connect(path)) as con:
            return list(con.iterdump())

    assert dump(tmp_path / "command_store.sqlite") == dump(bundled / "command_store.sqlite")


def test_sidecar_table_without_the_contract_columns_is_reported(tmp_path):
    db = tmp_path / "w.duckdb"
    with closing(duckdb.connect(str(db))) as con:  # not the table the device migrations create
        con.execute("CREATE SCHEMA device; CREATE TABLE device.command_executions (proposal_id VARCHAR, state VARCHAR)")
    assert materialize(db).success
    errors = query(db, "SELECT location, error_kind, message FROM commands.ingest_errors WHERE error_kind = 'bad_schema'")
    assert errors == [("device.command_executions", "bad_schema",
                       "table lacks columns machine_id, session_id, command_type, target_value, status, started_at, "
                       "completed_at, observed_value, error, source; no execution read")]


def test_tables_an_older_version_left_are_migrated_so_metrics_and_alerts_rebuild_before_the_next_ingest(default_run, tmp_path):
    db, _ = default_run
    old = tmp_path / "old.duckdb"
    old.write_bytes(db.read_bytes())
    with closing(duckdb.connect(str(old))) as con:  # as the versions before EXPIRED and before UNAPPROVED_EXECUTION left them
        con.execute("""
            DELETE FROM commands.proposals WHERE status = 'EXPIRED';
            ALTER TABLE commands.proposals DROP COLUMN expired_at; ALTER TABLE commands.proposals DROP COLUMN expiry_reason;
            ALTER TABLE commands.outcome_metrics DROP COLUMN n_expired;
            DELETE FROM commands.invalid_transitions WHERE problem LIKE 'execution started without a valid approval%';
            ALTER TABLE commands.invalid_transitions DROP COLUMN machine_id;
            ALTER TABLE commands.invalid_transitions DROP COLUMN command_type;
            ALTER TABLE commands.invalid_transitions DROP COLUMN origin;  -- and before origins were told apart
            ALTER TABLE commands.outcome_metrics DROP COLUMN origin; ALTER TABLE commands.alerts DROP COLUMN origin;
            DELETE FROM meta.schema_migrations WHERE domain = 'commands';
        """)
        before = con.execute("SELECT count(*) FROM commands.proposals").fetchone()[0]
    downstream = [assets.outcome_metrics.key, assets.command_alerts.key]
    result = dg.materialize(
        [*dg.load_assets_from_modules([assets]), *dg.load_asset_checks_from_modules([checks])],
        resources={"duckdb": WarehouseResource(database=str(old))}, selection=downstream,
    )
    assert result.success
    evaluations = result.get_asset_check_evaluations()
    assert evaluations and all(e.passed for e in evaluations)
    assert query(old, "SELECT count(*), count(expired_at), count(expiry_reason) FROM commands.proposals") == [(before, 0, 0)]
    assert query(old, "SELECT sum(n_expired), sum(n_proposals) FROM commands.outcome_metrics") == [(0, before)]
    assert query(old, "SELECT version FROM meta.schema_migrations WHERE domain = 'commands' ORDER BY 1") == [(1,), (2,), (3,), (4,), (5,), (6,)]
    assert query(old, "SELECT DISTINCT origin FROM commands.outcome_metrics") == [("generated",)]


def test_a_log_that_stops_at_executing_an_hour_ago_raises_execution_stuck_by_default(tmp_path):
    """The sidecar died mid-command: the store's last event is the EXECUTING an hour ago, and one proposal was left
    waiting for approval. Before, as_of defaulted to the log's latest timestamp — that EXECUTING itself — so
    neither EXECUTION_STUCK nor APPROVAL_TIMEOUT could fire; a store that is not the bundled sample is live, so
    its as_of is the run's wall-clock time."""
    started = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(hours=1)

    def at(seconds):
        return (started + timedelta(seconds=seconds)).isoformat()

    path = ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "EXECUTING")
    common = {"machine_id": "bullet-r1-virtual", "command_type": "SET_FAN", "target_value": 5.0, "target_unit": "level",
              "proposed_by": "AGENT", "actor": "agent", "origin": "real"}
    store = write_store(tmp_path / "store.sqlite", [
        {"proposal_id": "running", "status": "EXECUTING", "created_at": at(-20), "approved_at": at(-10),
         "execution_started_at": at(0), **common},
        {"proposal_id": "waiting", "status": "PENDING_APPROVAL", "created_at": at(-30), **common},
    ], [("running", at(t), before, after, "agent", None) for t, before, after in zip((-20, -20, -10, 0), (None, *path), path)]
       + [("waiting", at(-30), None, "PROPOSED", "agent", None), ("waiting", at(-30), "PROPOSED", "PENDING_APPROVAL", "agent", None)])
    db = tmp_path / "w.duckdb"
    result = materialize(db, {"ops": {"command_proposals": {"config": {"sqlite_paths": [str(store)], "jsonl_paths": []}}}})
    assert result.success
    found = query(db, "SELECT alert_type, proposal_id, observed_value FROM commands.alerts ORDER BY 1")
    assert [(t, p) for t, p, _ in found] == [("APPROVAL_TIMEOUT", "waiting"), ("EXECUTION_STUCK", "running")]
    assert 3600 <= found[1][2] < 3600 + 120 and 3630 <= found[0][2] < 3630 + 120  # seconds so far, at the run's time
    metadata = {e.asset_key.to_user_string(): e.materialization.metadata for e in result.get_asset_materialization_events()}
    assert metadata["commands/proposals"]["as_of_rule"].value == tables.AS_OF_RUN_CLOCK
    assert query(db, "SELECT pending_decision_n FROM commands.outcome_metrics") == [(1,)]
