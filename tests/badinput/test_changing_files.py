"""A landing file whose content changes between runs and comes back to one ingested before (a roast
re-saved, an edit undone, a broken save repaired): the warehouse holds what the file holds now."""
import duckdb

from daena_pipelines.defs.telemetry import sensors
from daena_pipelines.telemetry import ingest, quality
from tests.telemetry.profiles import alog_bytes, profile

FIRST, SECOND = alog_bytes(profile(title="first")), alog_bytes(profile(title="second", roastUUID="second"))
BROKEN = FIRST[: len(FIRST) // 2]  # a save cut short


def test_a_file_back_to_an_earlier_content_is_ingested_again(tmp_path):
    path, warehouse = tmp_path / "roast.alog", str(tmp_path / "w.duckdb")

    def holds(content: bytes) -> tuple[list, list]:
        """(session titles, files the landing_files_loaded rule reports) after ingesting `content`."""
        path.write_bytes(content)
        with duckdb.connect(warehouse) as con:
            ingest.ingest(con, [path], tmp_path / "q", workers=1)
            return [t for (t,) in con.execute("SELECT title FROM telemetry.sessions").fetchall()], [r["file"] for r in quality.rejected_files(con)]

    assert holds(FIRST) == (["first"], [])
    assert holds(SECOND) == (["second"], [])
    path.write_bytes(FIRST)  # the edit undone
    assert sensors.not_yet_ingested([str(path)], warehouse) == [str(path)]  # before: [] (seen once)
    assert holds(FIRST) == (["first"], [])  # before: ['second'], a roast the file no longer holds
    assert holds(BROKEN) == (["first"], [str(path)])
    assert holds(FIRST) == (["first"], [])  # repaired; before: still reported as rejected
    assert holds(BROKEN) == (["first"], [str(path)])  # broken again; before: not reported
    # unchanged content is still skipped: no new row of any kind
    with duckdb.connect(warehouse) as con:
        rows = "SELECT (SELECT count(*) FROM telemetry.ingest_errors), (SELECT count(*) FROM telemetry.source_files)"
        counts = con.execute(rows).fetchone()
        assert ingest.ingest(con, [path], tmp_path / "q", workers=1).unchanged == 1
        assert con.execute(rows).fetchone() == counts
