"""A landing file overwritten with a copy of a roast another file holds: the session the file held
before goes with the same batch (no file holds it any more), the file's row names the copy kept,
and no roast that some file still holds is lost on the way."""
from pathlib import Path

import duckdb
import pytest

from daena_pipelines.defs.telemetry import sensors
from daena_pipelines.telemetry import ingest
from daena_pipelines.telemetry.alog import parse_alog
from tests.telemetry.profiles import alog_bytes, profile

X, Y, Z = (alog_bytes(profile(roastUUID=uuid)) for uuid in ("x", "y", "z"))
Y_RETITLED = alog_bytes(profile(roastUUID="y", title="re-saved"))  # the same measurements, equally rich
Y_RICHER = alog_bytes(profile(roastUUID="y", roastingnotes="cupped: bright"))  # carries notes too
SAMPLES = len(profile()["timex"])


def sid(content: bytes) -> str:
    return parse_alog(content, "any.alog").session_id


def run(tmp_path: Path, *paths: Path, batch_size: int = 500) -> tuple[ingest.IngestReport, dict, dict]:
    """Ingest `paths`; (the report, session id -> file name, file name -> (status, session id) of
    its latest content). Every session has its points and metrics, and the landing sensor finds
    the content of every file ingested (it would request none of them again)."""
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        report = ingest.ingest(con, paths, tmp_path / "q", workers=1, batch_size=batch_size)
        sessions = {s: Path(p).name for s, p in con.execute("SELECT session_id, source_path FROM telemetry.sessions").fetchall()}
        files = {Path(p).name: (status, s) for p, status, s in con.execute(
            "SELECT source_path, status, session_id FROM telemetry.source_files "
            "QUALIFY row_number() OVER (PARTITION BY source_path ORDER BY seen_at DESC) = 1").fetchall()}
        per_table = con.execute("""SELECT (SELECT count(*) FROM telemetry.points), (SELECT count(*) FROM telemetry.roast_metrics),
                                          (SELECT list(DISTINCT session_id ORDER BY session_id) FROM telemetry.points)""").fetchone()
    assert per_table == (SAMPLES * len(sessions), len(sessions), sorted(sessions))
    assert sensors.not_yet_ingested([str(p) for p in paths], str(warehouse)) == []
    return report, sessions, files


def landed(tmp_path: Path, name: str, content: bytes) -> Path:
    """The file `name` holding `content`, ingested."""
    path = tmp_path / name
    path.write_bytes(content)
    run(tmp_path, path)
    return path


@pytest.fixture
def a_and_b(tmp_path):
    """a.alog holding roast X and b.alog holding roast Y, both ingested."""
    a, b = tmp_path / "a.alog", tmp_path / "b.alog"
    a.write_bytes(X)
    b.write_bytes(Y)
    run(tmp_path, a, b)
    return a, b


@pytest.mark.parametrize("copy", [Y, Y_RETITLED], ids=["same-bytes", "same-measurements"])
@pytest.mark.parametrize("requested", ["changed-file", "every-file"])
def test_a_file_overwritten_with_a_copy_of_another_files_roast_drops_its_old_session(tmp_path, a_and_b, copy, requested):
    a, b = a_and_b
    a.write_bytes(copy)
    report, sessions, files = run(tmp_path, *([a] if requested == "changed-file" else [a, b]))
    assert sessions == {sid(Y): "b.alog"}  # before: X stayed, held by no file
    assert files == {"a.alog": ("duplicate", sid(Y)), "b.alog": ("loaded", sid(Y))}
    assert report.removed == [sid(X)] and [p for p, _why in report.duplicates] == [str(a)]
    assert not report.loaded and not report.replaced


def test_a_file_overwritten_with_a_richer_copy_takes_the_roast_over_and_drops_its_old_session(tmp_path, a_and_b):
    a, b = a_and_b
    a.write_bytes(Y_RICHER)
    report, sessions, files = run(tmp_path, a)
    assert sessions == {sid(Y): "a.alog"}  # before: X stayed beside it
    assert files == {"a.alog": ("replaced", sid(Y)), "b.alog": ("duplicate", sid(Y))}
    assert report.loaded == [sid(Y)] and report.replaced == [sid(X)] and not report.removed


@pytest.mark.parametrize("batch_size", [500, 1])
def test_two_files_swapping_their_contents_in_one_run_keep_both_roasts(tmp_path, a_and_b, batch_size):
    a, b = a_and_b
    a.write_bytes(Y)
    b.write_bytes(X)
    _report, sessions, files = run(tmp_path, a, b, batch_size=batch_size)
    assert sessions == {sid(Y): "a.alog", sid(X): "b.alog"}  # before: only X was left (batch of 1: none of them whole)
    assert files["a.alog"][1] == sid(Y) and files["b.alog"][1] == sid(X)
    assert {status for status, _sid in files.values()} <= {"loaded", "replaced"}


@pytest.mark.parametrize("overwritten", ["a.alog", "c.alog"])  # sorting before and after the other file
@pytest.mark.parametrize("together", [True, False], ids=["one-run", "two-runs"])
def test_a_file_overwritten_with_a_copy_of_a_new_file(tmp_path, overwritten, together):
    old, new = landed(tmp_path, overwritten, X), tmp_path / "b.alog"
    new.write_bytes(Y)
    old.write_bytes(Y)
    if together:
        _report, sessions, files = run(tmp_path, *sorted([old, new]))  # in the landing folder's order
    else:
        run(tmp_path, new)
        _report, sessions, files = run(tmp_path, old)
    first = sorted([old.name, new.name])[0] if together else new.name  # of equal copies, the first seen is kept
    second = ({old.name, new.name} - {first}).pop()
    assert sessions == {sid(Y): first}  # before: X stayed too
    assert files[first][1] == files[second][1] == sid(Y) and files[second][0] == "duplicate"


def test_a_file_overwritten_then_restored_holds_its_roast_again(tmp_path, a_and_b):
    a, b = a_and_b
    a.write_bytes(Y)
    run(tmp_path, a)
    a.write_bytes(X)
    report, sessions, files = run(tmp_path, a)
    assert sessions == {sid(X): "a.alog", sid(Y): "b.alog"}
    assert files == {"a.alog": ("loaded", sid(X)), "b.alog": ("loaded", sid(Y))}
    assert report.loaded == [sid(X)] and not report.removed


@pytest.mark.parametrize("now", [Y, Z], ids=["copy-of-another-file", "new-roast"])
def test_a_roast_another_file_still_holds_a_copy_of_stays(tmp_path, a_and_b, now):
    # c.alog was recorded as a copy of a.alog's X; a.alog changes: X is read again from c.alog
    a, b = a_and_b
    c = tmp_path / "c.alog"
    c.write_bytes(X)
    run(tmp_path, c)
    a.write_bytes(now)
    report, sessions, files = run(tmp_path, a)
    assert sessions[sid(X)] == "c.alog" and files["c.alog"] == ("loaded", sid(X))  # before: X gone or left to a.alog
    assert sessions[sid(now)] == ("b.alog" if now == Y else "a.alog") and len(sessions) == (2 if now == Y else 3)
    assert files["a.alog"][1] == sid(now) and not report.removed


def test_a_deleted_copy_is_not_read_again_when_its_roasts_file_changes(tmp_path, a_and_b):
    # c.alog was recorded as a copy of a.alog's X, then deleted: a.alog changing frees X, and c is
    # no file of the landing folder to read it from (before: a 'cannot read file' error row for c,
    # and c reported as rejected by a run that was not given it)
    a, _b = a_and_b
    c = tmp_path / "c.alog"
    c.write_bytes(X)
    run(tmp_path, c)
    c.unlink()
    a.write_bytes(Z)
    report, sessions, files = run(tmp_path, a)
    assert sessions == {sid(Z): "a.alog", sid(Y): "b.alog"}
    assert files["a.alog"] == ("replaced", sid(Z)) and files["c.alog"] == ("duplicate", sid(X))
    assert report.replaced == [sid(X)] and not report.rejected
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert con.execute("SELECT count(*) FROM telemetry.ingest_errors").fetchone() == (0,)


X_RICHER = alog_bytes(profile(roastUUID="x", roastingnotes="cupped: sweet"))


@pytest.mark.parametrize("broken_name", ["a.alog", "c.alog"])  # sorting before and after the richer copy
@pytest.mark.parametrize("together", [True, False], ids=["one-batch", "copy-in-a-later-run"])
def test_a_broken_save_beside_a_richer_copy_of_its_roast_stays_the_files_latest_row(tmp_path, broken_name, together):
    # the file holding X saved broken (it keeps X), and a richer copy of X lands: the copy takes X
    # over. Before, the broken file also got a 'duplicate' row for its old content: in the same
    # batch with the seen_at of its 'rejected' row (where that tie fell to the old content), in a
    # later run as its newest row; either way the landing sensor requested the file again and the
    # next run rejected it once more
    broken, richer = landed(tmp_path, broken_name, X), tmp_path / "b.alog"
    broken.write_bytes(b"{" + X[:40])
    richer.write_bytes(X_RICHER)
    if not together:
        run(tmp_path, broken)
    report, sessions, files = run(tmp_path, *(sorted([broken, richer]) if together else [richer]))
    assert sessions == {sid(X): "b.alog"}
    assert files[broken_name] == ("rejected", None) and files["b.alog"] == ("loaded", sid(X))
    assert [p for p, *_ in report.rejected] == ([str(broken)] if together else []) and not report.duplicates
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        assert con.execute("SELECT count(*) FROM telemetry.source_files WHERE source_path = ?", [str(broken)]).fetchone() == (2,)
    again, _sessions, _files = run(tmp_path, broken, richer)
    assert again.unchanged == 2 and not again.rejected
