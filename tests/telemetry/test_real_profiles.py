"""The whole shared folder of real Artisan profiles, against Artisan's own `computed` values."""
from pathlib import Path

import duckdb
import pytest

from daena_pipelines.telemetry import ingest, quality


@pytest.fixture(scope="module")
def real_warehouse(tmp_path_factory):
    from tests.conftest import require_artisan_dir

    artisan_dir = require_artisan_dir()
    tmp = tmp_path_factory.mktemp("real")
    con = duckdb.connect(str(tmp / "w.duckdb"))
    roasts, others = ingest.discover(artisan_dir)
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


def _to_fahrenheit(profile: dict) -> dict:
    """The same roast as Artisan would have saved it in °F (AUC values stay °C·min, as Artisan's do)."""
    from daena_pipelines.telemetry.alog import _COMPUTED_DELTAS, _COMPUTED_TEMPS

    def f(x):
        return x if x == -1 else round(x * 9 / 5 + 32, 4)

    converted = dict(profile, mode="F", temp1=[f(x) for x in profile["temp1"]], temp2=[f(x) for x in profile["temp2"]])
    def computed(key, value):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return value
        return f(value) if key in _COMPUTED_TEMPS else value * 9 / 5 if key in _COMPUTED_DELTAS else value

    converted["computed"] = {k: computed(k, v) for k, v in profile["computed"].items()}
    return converted


def test_fahrenheit_copies_of_real_profiles_give_the_same_metrics(artisan_dir):
    import ast

    import numpy as np

    from daena_pipelines.telemetry.ingest import session_rows
    from daena_pipelines.telemetry.alog import profile_to_session

    names = ["roast_25-10-04_1600.alog", "roast_25-09-21_1408.alog", "roast_26-08-09_R68_caturra_26.alog"]
    for name in names:
        profile = ast.literal_eval((artisan_dir / name).read_text(encoding="utf-8"))
        celsius = session_rows(profile_to_session(profile), name, "c", None).metrics
        fahrenheit = session_rows(profile_to_session(_to_fahrenheit(profile)), name, "f", None).metrics
        for column, value in celsius.items():
            if isinstance(value, float):
                assert np.isclose(fahrenheit[column], value, atol=0.02, rtol=1e-4), (name, column, value, fahrenheit[column])
            else:
                assert fahrenheit[column] == value, (name, column)
