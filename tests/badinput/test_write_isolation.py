"""The batch write's end states: a session the warehouse refuses, an unreadable file, a crash
between quarantining and committing."""
import duckdb
import pytest

from daena_pipelines.telemetry import ingest, store, validate
from tests.telemetry.profiles import alog_bytes, profile


def _count(con, sql: str) -> int:
    return con.execute(f"SELECT count(*) FROM {sql}").fetchone()[0]


@pytest.fixture
def con(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        yield con


def test_a_session_the_warehouse_refuses_is_one_error_row_and_the_rest_is_written(con, tmp_path, monkeypatch):
    paths = []
    for i in range(4):
        paths.append(tmp_path / f"r{i}.alog")
        paths[-1].write_bytes(alog_bytes(profile(roastUUID=f"r{i}", title="bad \ud800" if i == 2 else f"roast {i}")))
    # a validation gap: the lone surrogate reaches the write, where Arrow cannot encode it
    monkeypatch.setattr(validate, "validate", lambda session, path: session)
    report = ingest.ingest(con, paths, tmp_path / "q", workers=1)
    assert len(report.loaded) == 3
    assert [(kind, path) for path, kind, _ in report.rejected] == [("write_error", str(paths[2]))]
    assert _count(con, "telemetry.sessions") == 3
    assert _count(con, "telemetry.points") == 3 * len(profile()["timex"])
    errors = con.execute("SELECT source_path, error_kind, message FROM telemetry.ingest_errors").fetchall()
    assert len(errors) == 1 and errors[0][:2] == (str(paths[2]), "write_error") and "surrogates not allowed" in errors[0][2]
    assert con.execute("SELECT status FROM telemetry.source_files WHERE source_path = ?", [str(paths[2])]).fetchone() == ("rejected",)
    # re-running changes nothing: the refused file is known by its content
    assert not ingest.ingest(con, paths, tmp_path / "q", workers=1).rejected
    assert _count(con, "telemetry.ingest_errors") == 1


def test_an_unreadable_file_gets_one_error_row_and_one_source_files_row(con, tmp_path):
    path = tmp_path / "gone.alog"
    path.symlink_to(tmp_path / "missing-target.alog")  # reading fails on every run
    for _ in range(3):
        ingest.ingest(con, [path], tmp_path / "q", workers=1)
    assert _count(con, "telemetry.ingest_errors") == 1
    assert con.execute("SELECT status, content_sha256 FROM telemetry.source_files").fetchall() == [("rejected", "unread:missing")]
    path.unlink()
    path.write_bytes(alog_bytes(profile()))  # repaired: read again, and it loads
    assert len(ingest.ingest(con, [path], tmp_path / "q", workers=1).loaded) == 1


def test_a_crash_before_the_commit_leaves_no_quarantined_copy_without_its_error_row(con, tmp_path, monkeypatch):
    bad = tmp_path / "broken.alog"
    bad.write_bytes(b"{'mode': 'C', 'timex': [")
    quarantine = tmp_path / "q"

    def crash(*args):
        raise duckdb.IOException("disk gone")  # not about a value: the whole write fails

    monkeypatch.setattr(store, "write_batch", crash)
    with pytest.raises(duckdb.IOException):
        ingest.ingest(con, [bad], quarantine, workers=1)
    assert not list(quarantine.glob("*.alog"))  # only a pending copy, which is no quarantined copy
    monkeypatch.undo()
    ingest.ingest(con, [bad], quarantine, workers=1)
    (copy,) = quarantine.glob("*.alog")
    assert con.execute("SELECT quarantined_path FROM telemetry.ingest_errors").fetchall() == [(str(copy),)]
    assert copy.with_name(copy.name + ".reason.txt").read_text().startswith(str(bad))
