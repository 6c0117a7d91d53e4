import os
import subprocess
import sys
import threading
from concurrent.futures import Future
from datetime import datetime, timezone

import duckdb
import pytest

from daena_pipelines.telemetry import contract, ingest
from tests.telemetry.profiles import alog_bytes, profile


@pytest.fixture
def con(tmp_path):
    connection = duckdb.connect(str(tmp_path / "w.duckdb"))
    yield connection
    connection.close()


def _write(path, data):
    path.write_bytes(alog_bytes(data) if isinstance(data, dict) else data)
    return path


def _count(con, table):
    return con.execute(f"SELECT count(*) FROM telemetry.{table}").fetchone()[0]


def test_bad_files_are_recorded_and_quarantined_while_good_ones_load(con, tmp_path):
    good = _write(tmp_path / "good.alog", profile())
    truncated = _write(tmp_path / "truncated.alog", alog_bytes(profile(roastUUID="other"))[:500])
    backwards = _write(tmp_path / "backwards.alog", profile(roastUUID="b", timeindex=[300, 0, 0, 0, 0, 0, 100, 0]))
    report = ingest.ingest(con, [good, truncated, backwards], tmp_path / "q", workers=1)
    assert len(report.loaded) == 1 and len(report.rejected) == 2
    errors = dict(con.execute("SELECT source_path, error_kind FROM telemetry.ingest_errors").fetchall())
    assert errors == {str(truncated): "syntax", str(backwards): "event_order"}
    quarantined = sorted(p.name.split("-", 1)[1] for p in (tmp_path / "q").glob("*.alog"))
    assert quarantined == ["backwards.alog", "truncated.alog"]
    assert _count(con, "sessions") == 1 and _count(con, "points") == len(profile()["timex"])


def test_renamed_copy_is_a_duplicate_not_a_second_session(con, tmp_path):
    original = _write(tmp_path / "a.alog", profile())
    copy = _write(tmp_path / "b.alog", profile())  # same bytes, other name
    resaved = _write(tmp_path / "c.alog", profile(title="edited later"))  # same roast, retitled: no richer
    report = ingest.ingest(con, [original, copy, resaved], tmp_path / "q", workers=1)
    assert len(report.loaded) == 1
    details = dict(report.duplicates)
    assert "identical bytes as" in details[str(copy)] and "same roast measurements" in details[str(resaved)]
    assert _count(con, "sessions") == 1


def test_a_file_changed_in_place_replaces_its_session(con, tmp_path):
    path = _write(tmp_path / "a.alog", profile())
    first = ingest.ingest(con, [path], tmp_path / "q", workers=1)
    data = profile()
    data["temp2"][200] += 0.5  # re-recorded: different measurements, same file name
    _write(path, data)
    second = ingest.ingest(con, [path], tmp_path / "q", workers=1)
    assert second.replaced == first.loaded and second.loaded != first.loaded
    assert _count(con, "sessions") == 1 and _count(con, "roast_metrics") == 1
    assert con.execute("SELECT session_id FROM telemetry.sessions").fetchone()[0] == second.loaded[0]


def test_a_failed_write_leaves_no_half_session(con, tmp_path, monkeypatch):
    path = _write(tmp_path / "a.alog", profile())

    # The metrics insert (after sessions and points, in the same transaction) now names a
    # column the table lacks, so it fails half-way through the session's write.
    monkeypatch.setitem(contract.METRIC_COLUMNS, "no_such_column", "DOUBLE")
    con.execute("SET disabled_compression_methods = 'rle'")
    with pytest.raises(duckdb.BinderException):
        ingest.ingest(con, [path], tmp_path / "q", workers=1)
    # the ingest leaves FSST out while it writes (_duckdb_settings): the caller's value is back after a failure too
    assert con.execute("SELECT current_setting('disabled_compression_methods')").fetchone()[0] == "RLE"
    assert _count(con, "sessions") == 0 and _count(con, "points") == 0 and _count(con, "source_files") == 0
    monkeypatch.undo()
    assert len(ingest.ingest(con, [path], tmp_path / "q", workers=1).loaded) == 1


def test_parallel_workers_give_the_same_warehouse_as_one(tmp_path, monkeypatch):
    monkeypatch.setattr(ingest, "PARALLEL_FROM", 40)  # a smaller batch takes the parser processes too
    paths = []
    for i in range(ingest.PARALLEL_FROM + 4):
        data = profile(roastUUID=f"roast-{i}")
        data["temp2"][100] += i / 10
        paths.append(_write(tmp_path / f"r{i:03d}.alog", data))
    paths.append(_write(tmp_path / "broken.alog", b"{'mode': 'C', 'timex': ["))
    results = []
    for workers in (1, 2):
        with duckdb.connect(str(tmp_path / f"w{workers}.duckdb")) as con:
            con.execute("SET threads = 3")
            ingest.ingest(con, paths, tmp_path / "q", workers=workers)
            # the ingest limits DuckDB's threads while parser processes run, and leaves FSST out, then restores both
            assert con.execute("SELECT current_setting('threads'), current_setting('disabled_compression_methods')").fetchone() == (3, "")
            results.append(con.execute(
                "SELECT (SELECT list(session_id ORDER BY session_id) FROM telemetry.sessions),"
                " (SELECT sum(bt_c) FROM telemetry.points), (SELECT count(*) FROM telemetry.ingest_errors)"
            ).fetchone())
    assert results[0] == results[1] and len(results[0][0]) == ingest.PARALLEL_FROM + 4 and results[0][2] == 1


def test_points_of_sessions_with_and_without_extra_channels(con, tmp_path):
    # each session's samples stay together and in order; map(extra_channels, extra_values) is the
    # sample's channel map, empty (not NULL) for a session without extra channels
    timex = profile()["timex"]
    exhaust = [150.0 + i / 10 for i in range(len(timex))]
    with_extra = profile(roastUUID="x", extratimex=[timex], extraname1=["Exhaust"], extraname2=["Inlet"],
                         extratemp1=[exhaust], extratemp2=[[-1] * len(timex)])
    paths = [_write(tmp_path / "a.alog", profile()), _write(tmp_path / "b.alog", with_extra),
             _write(tmp_path / "c.alog", profile(roastUUID="y"))]
    ingest.ingest(con, paths, tmp_path / "q", workers=1)
    rows = con.execute("""SELECT s.source_path, p.t_s, cardinality(m.extra), m.extra['Exhaust']
                          FROM telemetry.points p JOIN telemetry.sessions s USING (session_id),
                          LATERAL (SELECT map(s.extra_channels, p.extra_values) AS extra) m""").fetchall()
    by_file = {}
    for path, t_s, channels, value in rows:
        by_file.setdefault(path, []).append((t_s, channels, value))
    assert [len(v) for v in by_file.values()] == [len(timex)] * 3
    for path, points in by_file.items():
        assert [t for t, _c, _v in points] == sorted(t for t, _c, _v in points)
        if path.endswith("b.alog"):
            assert [(c, v) for _t, c, v in points] == [(1, e) for e in exhaust]
        else:
            assert {(c, v) for _t, c, v in points} == {(0, None)}
    # in the order written, each session's samples are one run
    written = [sid for (sid,) in con.execute("SELECT session_id FROM telemetry.points").fetchall()]
    assert len([i for i in range(len(written)) if i == 0 or written[i] != written[i - 1]]) == 3


def test_notes_edited_in_place_update_the_same_session(con, tmp_path):
    path = _write(tmp_path / "a.alog", profile())
    first = ingest.ingest(con, [path], tmp_path / "q", workers=1)
    _write(path, profile(roastingnotes="cupped: bright, juicy"))
    second = ingest.ingest(con, [path], tmp_path / "q", workers=1)
    assert second.loaded == first.loaded == second.replaced  # same roast, same id, rewritten in place
    assert con.execute("SELECT notes FROM telemetry.sessions").fetchall() == [("cupped: bright, juicy",)]
    assert _count(con, "points") == len(profile()["timex"])


@pytest.mark.parametrize("separate_runs", [False, True])
def test_of_two_copies_of_a_roast_the_richer_is_kept(con, tmp_path, separate_runs):
    poor = _write(tmp_path / "a.alog", profile(weight=[250.0, 0, "g"]))  # sorts first, lacks the roasted weight
    rich = _write(tmp_path / "b.alog", profile())
    if separate_runs:
        ingest.ingest(con, [poor], tmp_path / "q", workers=1)
        report = ingest.ingest(con, [rich], tmp_path / "q", workers=1)
    else:
        report = ingest.ingest(con, [poor, rich], tmp_path / "q", workers=1)
    assert dict(report.duplicates).keys() == {str(poor)}
    assert con.execute("SELECT source_path, roasted_weight_g FROM telemetry.sessions").fetchall() == [(str(rich), 212.0)]
    assert con.execute("SELECT weight_loss_pct FROM telemetry.roast_metrics").fetchone()[0] == pytest.approx(15.2)
    files = dict(con.execute("SELECT source_path, status FROM telemetry.source_files").fetchall())
    assert files == {str(poor): "duplicate", str(rich): "loaded"}
    assert _count(con, "points") == len(profile()["timex"])
    again = ingest.ingest(con, [poor, rich], tmp_path / "q", workers=1)  # nothing flips back
    assert again.unchanged == 2 and not again.loaded


def test_on_batch_reports_each_committed_batch_with_the_files_handled_so_far(con, tmp_path):
    paths = [_write(tmp_path / f"{i}.alog", profile(roastUUID=f"r{i}")) for i in range(5)]
    paths.append(_write(tmp_path / "bad.alog", b"{not a profile"))  # a rejected file counts as handled
    seen = []

    def on_batch(handled):
        seen.append((handled, con.execute("SELECT count(*) FROM telemetry.source_files").fetchone()[0]))

    ingest.ingest(con, paths, tmp_path / "q", workers=1, batch_size=2, on_batch=on_batch)
    assert seen == [(2, 2), (4, 4), (6, 6)]  # called after the commit: its rows are there
    seen.clear()
    ingest.ingest(con, paths, tmp_path / "q", workers=1, batch_size=2, on_batch=on_batch)
    assert seen == []  # every file unchanged: no batch written


def test_a_batch_committed_by_another_writer_between_two_batches_is_seen_by_the_next(con, tmp_path, monkeypatch):
    # the state kept from this run's last commit is stale once another writer commits: the copy
    # of the roast the other writer stored must be recognised as its duplicate, not loaded again
    # (on a DuckDB file the session key would refuse it and the per-session retry hide the mistake;
    # DuckLake has no keys, so the batch must get it right)
    monkeypatch.setattr(ingest, "_write_isolated", lambda *a: pytest.fail("a batch write was refused"))
    (tmp_path / "other").mkdir()
    original = _write(tmp_path / "other" / "original.alog", profile(roastUUID="shared"))
    paths = [_write(tmp_path / "first.alog", profile(roastUUID="first")), _write(tmp_path / "copy.alog", profile(roastUUID="shared"))]

    def other_writer(handled):
        if handled == 1:
            other = con.cursor()  # its own connection and transactions
            ingest.ingest(other, [original], tmp_path / "q", workers=1)
            other.close()

    report = ingest.ingest(con, paths, tmp_path / "q", workers=1, batch_size=1, on_batch=other_writer)
    assert [p for p, _why in report.duplicates] == [str(paths[1])] and len(report.loaded) == 1
    assert con.execute("SELECT status FROM telemetry.source_files WHERE source_path = ?", [str(paths[1])]).fetchone() == ("duplicate",)
    assert con.execute("SELECT count(*) FROM telemetry.sessions").fetchone()[0] == 2


@pytest.mark.skipif((os.cpu_count() or 1) < 2, reason="OpenBLAS starts no further threads on one core")
def test_importing_the_package_starts_no_openblas_threads():
    # OpenBLAS's pool (one thread per further core) spins ~0.1 s of CPU after numpy's import; no
    # code here does linear algebra, so a process that imports numpy through the package has only
    # its own thread, unless the caller asked for OpenBLAS threads
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS")}
    script = "import os, daena_pipelines.telemetry.metrics; print(len(os.listdir('/proc/self/task')))"
    threads = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env=env | extra)
               for extra in ({}, {"OPENBLAS_NUM_THREADS": "2"})]
    assert [t.stdout.strip() for t in threads] == ["1", "2"], [t.stderr for t in threads]


def test_an_ingest_imports_no_pandas(tmp_path):
    # pandas takes ~0.35 s to import, most of a small ingest's time: neither pyarrow's converter
    # (pa.array) nor DuckDB's scan of a pyarrow object (through pyarrow.dataset) may pull it in
    _write(tmp_path / "a.alog", profile())
    script = ("import sys, duckdb; from pathlib import Path; from daena_pipelines.telemetry import ingest; "
              f"con = duckdb.connect({str(tmp_path / 'w.duckdb')!r}); "
              f"r = ingest.ingest(con, [Path({str(tmp_path / 'a.alog')!r})], Path({str(tmp_path / 'q')!r}), workers=1); "
              "print(len(r.loaded), 'pandas' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.split() == ["1", "False"], done.stderr


def test_columns_built_from_buffers_hold_what_pyarrow_converts():
    import math
    from datetime import datetime, timedelta, timezone

    import pyarrow as pa

    from daena_pipelines.telemetry import store

    plus2 = timezone(timedelta(hours=2))
    cases = {
        "DOUBLE": [1.5, None, float("nan"), 3, -0.0, 1e308, float("inf")],
        "INTEGER": [1, None, -(2**31), 2**31 - 1], "BIGINT": [2**40, None, 0],
        "BOOLEAN": [True, None, False, True, True, False, False, True, None, True],
        "TIMESTAMPTZ": [datetime(2025, 8, 17, 22, 12, 45, 123456, tzinfo=plus2), None, datetime(1970, 1, 1, tzinfo=timezone.utc)],
        "VARCHAR NOT NULL": ["a", None, "é😀 \\u00e9", ""], "JSON": ['{"a": 1}', None],
        "VARCHAR[]": [["x", "y"], [], None, ["é", ""]],
    }
    for sql_type, values in cases.items():
        built = store._column(values, sql_type)
        expected = pa.array(values, type=built.type)  # pyarrow's own conversion
        assert built.null_count == expected.null_count, sql_type
        for got, want in zip(built.to_pylist(), expected.to_pylist()):
            assert got == want or (isinstance(got, float) and math.isnan(got) and math.isnan(want)), (sql_type, got, want)
    with pytest.raises(UnicodeError):  # a value the warehouse would refuse: the batch falls back per session
        store._column(["\udc80"], "VARCHAR")
    with pytest.raises(OverflowError):
        store._column([2**31], "INTEGER")
    with pytest.raises(TypeError):  # refused, not silently cut to 1
        store._column([1.5], "INTEGER")
    # a list where a number belongs is refused (the batch falls back per session), not flattened
    # into the column: each row's first value, or the first row's values spread over the rows
    for values in ([[1.0, 2.0], [3.0, 4.0]], [(5.0,), (6.0,)]):
        with pytest.raises(store.VALUE_ERRORS):
            store._column(values, "DOUBLE")
        with pytest.raises(store.VALUE_ERRORS):
            store._rows_table([{"id": str(i), "w": v} for i, v in enumerate(values)], {"id": "VARCHAR", "w": "DOUBLE"})
    with pytest.raises(store.VALUE_ERRORS):  # a text column: no AttributeError, which would fail the whole run
        store._column(["a", 5], "VARCHAR")


def test_a_chunk_stages_its_files_together_only_up_to_a_byte_budget(tmp_path, monkeypatch):
    # 32 files near MAX_FILE_BYTES must not all be held (bytes and parsed sessions) at once
    paths = [_write(tmp_path / f"r{i}.alog", profile(roastUUID=f"u{i}")) for i in range(5)]
    paths.insert(2, _write(tmp_path / "bad.alog", b"{'timex': ["))
    calls = []
    read, parsed = ingest._read, ingest._parsed
    monkeypatch.setattr(ingest, "_read", lambda path, known: calls.append("read") or read(path, known))
    monkeypatch.setattr(ingest, "_parsed", lambda item: calls.append("parse") or parsed(item))
    jobs = [(str(p), ()) for p in paths]
    now = datetime.now(timezone.utc)
    together = ingest._prepare_chunk(jobs, now, tmp_path / "q")
    assert calls == ["read"] * 6 + ["parse"] * 6
    calls.clear()
    monkeypatch.setattr(ingest, "STAGED_BYTES", paths[0].stat().st_size * 2)  # two profiles' worth
    budgeted = ingest._prepare_chunk(jobs, now, tmp_path / "q")
    assert calls == ["read", "read", "parse", "parse", "read", "read", "read", "parse", "parse", "parse", "read", "parse"]
    assert [(p.path, p.sha256, p.error_kind, p.rows and p.rows.session["session_id"]) for p in budgeted] == \
           [(p.path, p.sha256, p.error_kind, p.rows and p.rows.session["session_id"]) for p in together]


def test_parser_processes_run_openblas_single_threaded():
    # the package is imported by the fork server before numpy: OpenBLAS starts no spinning threads
    # there (the caller's own setting, if any, is kept)
    with ingest._parser_pool(1) as parsers:
        assert parsers.pool.submit(os.getenv, "OPENBLAS_NUM_THREADS").result() == os.environ.get("OPENBLAS_NUM_THREADS", "1")
        assert parsers.up.wait(60)  # set once the parser process ran its first task


def test_files_are_prepared_here_until_a_parser_process_is_up(tmp_path):
    # the main process takes the first files, one at a time, while the fork server starts; once a
    # parser process is up, the rest of the chunk and every later one go to the pool; the results
    # come in input order either way
    paths = [str(_write(tmp_path / f"r{i}.alog", profile(roastUUID=f"u{i}"))) for i in range(5)]
    chunks = [[(p, ()) for p in paths[:3]], [(p, ()) for p in paths[3:]]]
    now = datetime.now(timezone.utc)
    submitted = []

    class Pool:  # runs a task at once, as a pool whose process is up would
        def submit(self, fn, chunk, *args):
            submitted.append([path for path, _known in chunk])
            done = Future()
            done.set_result(fn(chunk, *args))
            return done

    parsers = ingest._Parsers(Pool(), threading.Event())
    stream = ingest._drain(parsers, chunks, (now, tmp_path / "q"), in_flight=2)
    first = next(stream)  # prepared here: no parser process up
    assert submitted == []
    parsers.up.set()
    prepared = [first, *stream]
    assert submitted == [paths[1:3], paths[3:]]
    assert [p.path for p in prepared] == paths
    assert [p.rows.session["session_id"] for p in prepared] == \
           [ingest.prepare(p, (), now, tmp_path / "q").rows.session["session_id"] for p in paths]


def test_writes_into_a_duckdb_file_use_one_duckdb_thread_even_without_parser_processes(tmp_path, monkeypatch):
    """One DuckDB thread wrote a small run's points with ~25 % less CPU than two (docs/telemetry.md, Performance);
    an in-memory database keeps the caller's setting (not measured there), and the caller's value is back after."""
    from daena_pipelines.telemetry import store

    seen = []
    write_batch = store.write_batch
    monkeypatch.setattr(store, "write_batch", lambda con, *args: (
        seen.append(con.execute("SELECT current_setting('threads')").fetchone()[0]), write_batch(con, *args)))
    path = _write(tmp_path / "r.alog", profile())
    for target, expected in ((str(tmp_path / "w.duckdb"), 1), (":memory:", 3)):
        seen.clear()
        with duckdb.connect(target) as con:
            con.execute("SET threads = 3")
            assert len(ingest.ingest(con, [path], tmp_path / "q", workers=1).loaded) == 1
            assert seen == [expected], target
            assert con.execute("SELECT current_setting('threads')").fetchone()[0] == 3
