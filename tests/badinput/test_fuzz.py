"""Seeded fuzz suite: corrupt .alog, sidecar, RoasTime and command inputs beside good ones (faults.py).

For each input kind, one run with every case: the run succeeds, every good file's rows are
present, every bad file has exactly one error row naming it and the problem (or, where the
decision is to load with a flag, a quality flag the check reports), nothing is admitted silently.
"""
import os
import random
from pathlib import Path

import duckdb
import pytest

from daena_pipelines.telemetry import ingest, quality
from tests.badinput import faults, harness
from tests.conftest import require_artisan_dir

SEED = int(os.environ.get("DAENA_FUZZ_SEED", "11"))


@pytest.fixture
def shared() -> Path:
    return require_artisan_dir()  # harness.SHARED is the same folder


def test_telemetry_faults_are_rejected_or_flagged_and_good_files_load(shared, tmp_path):
    cases = faults.telemetry_cases(shared, SEED)
    verdict = harness.run_telemetry(tmp_path, cases)
    assert verdict.run_failed is None
    assert verdict.good_lost == 0
    assert verdict.admitted == []
    assert verdict.wrong == []

    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    # the good files' rows are all there: the same points as a run on the good files alone
    good_points = con.execute(
        "SELECT count(*) FROM telemetry.points JOIN telemetry.sessions USING (session_id) "
        "WHERE NOT regexp_matches(source_path, '/(alog|sidecar|roastime)-[^/]*$')"
    ).fetchone()[0]
    with duckdb.connect(str(tmp_path / "good-only.duckdb")) as clean:
        good, _bad = faults.write_landing(tmp_path / "good-only", shared, [])
        ingest.ingest(clean, good, tmp_path / "q2", workers=1)
        assert good_points == clean.execute("SELECT count(*) FROM telemetry.points").fetchone()[0] > 0

    # the flagged cases are what the quality_flags check reports
    flagged = {Path(row["source_path"]).name for row in quality.flagged_sessions(con)}
    expected = {f"{c.name}{c.suffix}" for c in cases if c.expect == faults.FLAG}
    assert expected <= flagged

    # every rejected file has its quarantined copy and reason, none is left pending
    rejected = con.execute("SELECT quarantined_path FROM telemetry.ingest_errors").fetchall()
    assert all(path and Path(path).is_file() and Path(path + ".reason.txt").is_file() for (path,) in rejected)
    assert not list((tmp_path / "quarantine" / ".pending").glob("*"))

    # a second run over the same files changes nothing: no second error row, no new session
    before = con.execute("SELECT (SELECT count(*) FROM telemetry.ingest_errors), (SELECT count(*) FROM telemetry.sessions)").fetchone()
    report = ingest.ingest(con, sorted((tmp_path / "landing").iterdir()), tmp_path / "quarantine", workers=1)
    assert not report.loaded and not report.rejected
    assert con.execute("SELECT (SELECT count(*) FROM telemetry.ingest_errors), (SELECT count(*) FROM telemetry.sessions)").fetchone() == before
    con.close()


def test_commands_faults_each_give_one_error_row_and_good_rows_load(tmp_path):
    rng = random.Random(SEED)
    baseline = harness.command_baseline()
    assert baseline
    verdict = harness.run_commands(tmp_path / "fuzz", faults.jsonl_cases(rng), True, faults.sqlite_file_cases(rng), baseline)
    assert verdict.run_failed is None
    assert verdict.good_lost == 0
    assert verdict.admitted == []
    assert verdict.wrong == []
