"""Landing-folder entries that are not plain files, and a file over the size limit, judged by end
state: the ingest run and the sensor's tick finish, the good roast loads, the odd entry is one
named error (or a named ignored file), and the sensor does not read what the ingest never reads."""
import os
import threading
import tracemalloc
from pathlib import Path

import dagster as dg
import duckdb

from daena_pipelines.definitions import defs
from daena_pipelines.defs.telemetry import sensors
from daena_pipelines.telemetry import ingest
from tests.telemetry.profiles import alog_bytes, profile


def _finishes(work, fifos, timeout_s=60.0):
    """Run `work` in a thread; True if it ended within `timeout_s` (generous: a sensor tick on a loaded
    machine takes seconds; waiting on a pipe never ends). One stuck opening a named pipe is let go (a
    writer opens and closes the pipe: the reader sees an empty file) so the test ends."""
    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    thread.join(timeout_s)
    finished = not thread.is_alive()
    while thread.is_alive():
        for fifo in fifos:
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
            except OSError:  # no reader has it open (yet)
                pass
        thread.join(0.1)
    return finished


def test_a_named_pipe_named_like_a_roast_is_an_error_not_a_hang(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "good.alog").write_bytes(alog_bytes(profile()))
    fifos = [landing / "pipe.alog", landing / "pipe.json"]
    for fifo in fifos:
        os.mkfifo(fifo)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    reports = []
    assert _finishes(lambda: reports.append(ingest.ingest(con, list(ingest.walk(landing)), tmp_path / "q", workers=1)), fifos)  # before: waited for a writer
    (report,) = reports
    assert len(report.loaded) == 1
    assert report.rejected == [(str(fifos[0]), "unreadable", "cannot read file: not a regular file but a named pipe")]
    assert (str(fifos[1]), "cannot read file: not a regular file but a named pipe") in report.ignored
    assert con.execute("SELECT source_path, error_kind FROM telemetry.ingest_errors").fetchall() == [(str(fifos[0]), "unreadable")]
    # the next run knows it: no second error row
    assert not ingest.ingest(con, list(ingest.walk(landing)), tmp_path / "q", workers=1).rejected
    assert con.execute("SELECT count(*) FROM telemetry.ingest_errors").fetchone()[0] == 1
    con.close()


def test_the_landing_sensor_tick_finishes_beside_a_named_pipe(data_env):
    landing = data_env / "landing"
    (landing / "good.alog").write_bytes(alog_bytes(profile()))
    (data_env / "data").mkdir()
    with duckdb.connect(str(data_env / "data" / "warehouse.duckdb")) as con:  # the warehouse has seen good.alog
        ingest.ingest(con, [landing / "good.alog"], data_env / "q", workers=1)
    fifos = [landing / "pipe.alog", landing / "pipe.json"]
    for fifo in fifos:
        os.mkfifo(fifo)
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    ticks = []
    assert _finishes(lambda: ticks.append(sensor.evaluate_tick(dg.build_sensor_context(resources=defs.resources))), fifos)  # before: blocked
    (request,) = ticks[0].run_requests  # the pipe named as a roast goes to a run, which records why it is not one
    assert request.run_config["ops"]["telemetry_ingest"]["config"]["paths"] == [str(fifos[0])]


def test_the_sensor_does_not_read_a_file_the_ingest_will_not_read(tmp_path):
    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "good.alog").write_bytes(alog_bytes(profile()))
    warehouse = tmp_path / "w.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        ingest.ingest(con, [landing / "good.alog"], tmp_path / "q", workers=1)
    huge = landing / "huge.alog"
    with huge.open("wb") as file:  # sparse: no disk used
        file.truncate(ingest.MAX_FILE_BYTES + 1)
    tracemalloc.start()
    try:
        assert sensors.not_yet_ingested([str(huge)], str(warehouse)) == [str(huge)]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * 1024 * 1024  # before: the whole file, 64 MiB, was read to hash it


def test_a_landing_folder_that_does_not_exist_is_named_not_read_as_empty(data_env, monkeypatch):
    from daena_pipelines.defs.telemetry.assets import telemetry_ingest
    from daena_pipelines.lib.settings import DaenaSettings
    from daena_pipelines.lib.warehouse import WarehouseResource

    typo = data_env / "Artsian"  # DAENA_LANDING_DIR mistyped
    monkeypatch.setenv("DAENA_LANDING_DIR", str(typo))
    why = f"the landing folder {typo} does not exist: no roast file is read from it (set DAENA_LANDING_DIR)"
    tick = defs.resolve_sensor_def("landing_folder_sensor").evaluate_tick(dg.build_sensor_context(resources=defs.resources))
    assert tick.run_requests == [] and tick.skip_message.endswith(why)  # before: "... among 0 in ...", as for an empty folder
    result = dg.materialize([telemetry_ingest], resources={"duckdb": WarehouseResource(database=str(data_env / "w.duckdb")),
                                                           "daena_settings": DaenaSettings()})
    sessions = next(m for m in result.asset_materializations_for_node("telemetry_ingest") if m.asset_key.path[-1] == "sessions")
    assert result.success and why in sessions.metadata["landing_dirs"].value
    assert sessions.metadata["sessions_loaded"].value == 0


def test_the_recompute_does_not_wait_on_a_named_pipe_where_a_source_file_was(tmp_path):
    """The recompute reads an Artisan session's file-derived settings back from its source path:
    a named pipe put there since (or a file grown past MAX_FILE_BYTES) is not the stored content,
    so the stored settings stand; opening the pipe waited for a writer for ever."""
    from daena_pipelines.telemetry import recompute

    paths = [tmp_path / "pipe.alog", tmp_path / "big.alog"]
    for n, path in enumerate(paths):
        path.write_bytes(alog_bytes(profile(roastUUID=str(n))))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    assert len(ingest.ingest(con, paths, tmp_path / "q", workers=1).loaded) == 2
    before = con.execute("SELECT * FROM telemetry.roast_metrics ORDER BY session_id").fetchall()
    paths[0].unlink()
    os.mkfifo(paths[0])
    with open(paths[1], "ab") as big:
        big.truncate(ingest.MAX_FILE_BYTES + 1)  # sparse: no disk, but read whole it takes 64 MiB
    con.execute("UPDATE telemetry.roast_metrics SET metrics_version = 6")
    counts = []
    tracemalloc.start()
    assert _finishes(lambda: counts.append(recompute.recompute_metrics(con)), paths[:1])  # before: waited for a writer
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert counts == [2]
    assert con.execute("SELECT * FROM telemetry.roast_metrics ORDER BY session_id").fetchall() == before
    assert peak < 16 * 1024 * 1024, peak  # before: the 64 MiB+ file read whole
    con.close()


def test_a_subfolder_that_cannot_be_listed_is_an_error_and_the_rest_loads(data_env, monkeypatch):
    """Tests run as root, who lists any folder: listing one folder fails here as it does for
    another user (PermissionError). os.walk skipped it without a word, so its roasts never loaded."""
    landing = data_env / "landing"
    (landing / "good.alog").write_bytes(alog_bytes(profile(roastUUID="a")))
    (landing / "2024").mkdir()
    (landing / "2024" / "other.alog").write_bytes(alog_bytes(profile(roastUUID="b")))
    locked = landing / "2023.old"  # a name in no roast format
    locked.mkdir()
    (locked / "hidden.alog").write_bytes(alog_bytes(profile(roastUUID="c")))
    scandir = os.scandir

    def refusing(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return scandir(path)

    monkeypatch.setattr(os, "scandir", refusing)
    warehouse = data_env / "data" / "warehouse.duckdb"
    warehouse.parent.mkdir()
    why = ("cannot list folder: Permission denied; none of its files is read: let the ingest's user list it "
           "(read and execute permission) and run the ingest again")
    with duckdb.connect(str(warehouse)) as con:
        report = ingest.ingest(con, list(ingest.walk(landing)), data_env / "q", workers=1)
        assert len(report.loaded) == 2  # the batch's good files
        assert report.rejected == [(str(locked), "unreadable", why)]  # before: []
        assert con.execute("SELECT count(*) FROM telemetry.sessions").fetchone()[0] == 2
        assert con.execute("SELECT source_path, error_kind, message FROM telemetry.ingest_errors").fetchall() == [(str(locked), "unreadable", why)]
        # the warehouse as it was before the folder became unlistable: its good files loaded
        con.execute("DELETE FROM telemetry.ingest_errors; DELETE FROM telemetry.source_files WHERE status <> 'loaded'")
    # the sensor asks a run to record it, as for any unreadable entry, and once: the next tick requests nothing
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    context = dg.build_sensor_context(resources=defs.resources)
    (request,) = sensor.evaluate_tick(context).run_requests  # before: no request (2 files, both ingested)
    paths = request.run_config["ops"]["telemetry_ingest"]["config"]["paths"]
    assert paths == [str(locked)]
    with duckdb.connect(str(warehouse)) as con:
        assert ingest.ingest(con, [Path(p) for p in paths], data_env / "q", workers=1).rejected == [(str(locked), "unreadable", why)]
    assert sensor.evaluate_tick(dg.build_sensor_context(resources=defs.resources)).run_requests == []  # no cursor: the warehouse decides
    with duckdb.connect(str(warehouse)) as con:  # nor a second error row on the next full run
        assert not ingest.ingest(con, list(ingest.walk(landing)), data_env / "q", workers=1).rejected
        assert con.execute("SELECT count(*) FROM telemetry.ingest_errors").fetchone()[0] == 1
