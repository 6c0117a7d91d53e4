"""The whole shared folder of real Artisan profiles, against Artisan's own `computed` values."""
from pathlib import Path

import duckdb
import pytest

from daena_pipelines.telemetry import ingest, quality


@pytest.fixture(scope="module")
def real_warehouse(tmp_path_factory):
    from tests.conftest import ARTISAN_DIR

    if not ARTISAN_DIR.is_dir():
        pytest.skip(f"real Artisan profiles not found at {ARTISAN_DIR} (../shared is absent)")
    tmp = tmp_path_factory.mktemp("real")
    con = duckdb.connect(str(tmp / "w.duckdb"))
    roasts, others = ingest.discover(ARTISAN_DIR)
    report = ingest.ingest(con, roasts, tmp / "quarantine", workers=1)
    yield con, report, roasts, tmp
    con.close()


def test_every_file_ingests_or_is_rejected_with_a_reason(real_warehouse):
    con, report, roasts, tmp = real_warehouse
    statuses = dict(con.execute("SELECT source_path, status FROM telemetry.source_files").fetchall())
    assert set(statuses) == {str(p) for p in roasts}  # nothing silently dropped
    errors = con.execute("SELECT source_path, error_kind, message, quarantined_path FROM telemetry.ingest_errors").fetchall()
    assert {e[0] for e in errors} == {p for p, s in statuses.items() if s == "rejected"}
    for path, kind, message, quarantined in errors:
        assert kind and len(message) > 10
        assert Path(quarantined).read_bytes() == Path(path).read_bytes()
        assert kind in Path(quarantined + ".reason.txt").read_text()
    assert len(report.loaded) >= 60


def test_the_duplicate_copies_are_recognised(real_warehouse):
    con, *_ = real_warehouse
    duplicates = dict(con.execute("SELECT source_path, detail FROM telemetry.source_files WHERE status = 'duplicate'").fetchall())
    names = {Path(p).name for p in duplicates}
    # dupe-coffee_* and roast_25-08-17_1612 hold the same roast: whichever sorts second is the duplicate
    assert "roast_25-08-17_1612.alog" in names
    assert all("same roast" in d or "identical bytes" in d for d in duplicates.values())
    sessions = con.execute("SELECT count(*), count(DISTINCT session_id) FROM telemetry.sessions").fetchone()
    assert sessions[0] == sessions[1]


@pytest.mark.parametrize("metric", [t[0] for t in quality.ARTISAN_TOLERANCES])
def test_our_metrics_match_artisan_on_95_percent_of_files(real_warehouse, metric):
    con, *_ = real_warehouse
    row = next(r for r in quality.artisan_agreement(con) if r["metric"] == metric)
    assert row["compared"] >= 50
    assert row["within_tolerance"] / row["compared"] >= 0.95, row


def test_reingesting_changes_nothing(real_warehouse):
    con, _report, roasts, tmp = real_warehouse
    before = con.execute("SELECT count(*) FROM telemetry.points").fetchone()[0]
    again = ingest.ingest(con, roasts, tmp / "quarantine", workers=1)
    assert again.loaded == [] and again.rejected == [] and again.unchanged == len(roasts)
    assert con.execute("SELECT count(*) FROM telemetry.points").fetchone()[0] == before
