"""Readers and writers in separate processes on the one DuckDB file: every connection waits its
turn (db.connect's bounded, logged retry) instead of failing on the other's lock."""
import logging
import subprocess
import sys
import textwrap
from contextlib import contextmanager

import duckdb
import pytest

from daena_pipelines import cli, db
from daena_pipelines.telemetry import ingest
from tests.telemetry.profiles import alog_bytes, profile


@contextmanager
def other_process(path, script: str):
    """Run `script` (with `duckdb` and `path` defined) in another process until it prints 'ready'."""
    code = f"import duckdb, sys, time\npath = {str(path)!r}\n" + textwrap.dedent(script)
    process = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "ready"
        yield process
    finally:
        process.kill()
        process.wait()


HOLD_WRITE_LOCK = """
con = duckdb.connect(path)
print("ready", flush=True)
time.sleep({hold})
con.close()
"""


@pytest.fixture
def warehouse(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE TABLE marker (x INTEGER)")
    return path


def test_a_reader_waits_for_a_writer_and_logs_the_wait(warehouse, caplog):
    with other_process(warehouse, HOLD_WRITE_LOCK.format(hold=1.0)) as writer, caplog.at_level(logging.WARNING, "daena_pipelines.db"):
        with db.connect(warehouse, read_only=True, wait_s=30) as con:
            assert con.execute("SELECT count(*) FROM marker").fetchone() == (0,)
        assert writer.wait(timeout=30) == 0  # it finished its hold: we got in after it, not beside it
    assert any("is locked by another process; waiting" in r.getMessage() for r in caplog.records)


def test_the_wait_is_bounded_and_says_what_to_do(warehouse):
    with other_process(warehouse, HOLD_WRITE_LOCK.format(hold=30)):
        with pytest.raises(db.WarehouseBusy, match=r"stayed locked by another process for 0\.\d s .*DAENA_LOCK_WAIT_S"):
            with db.connect(warehouse, read_only=True, wait_s=0.5):
                pass


@pytest.mark.parametrize("damage, cause", [
    (lambda data: b"not a warehouse" * 300, r"is not a valid DuckDB database file"),
    (lambda data: data[:12] + (999).to_bytes(8, "little") + data[20:], r"Corrupt database file: computed checksum"),
])
@pytest.mark.parametrize("read_only", [True, False])
def test_an_unreadable_warehouse_is_named_with_its_cause_and_left_as_it_is(warehouse, damage, cause, read_only):
    warehouse.write_bytes(damage(warehouse.read_bytes()))
    before = warehouse.read_bytes()
    with pytest.raises(db.WarehouseUnreadable, match=rf"the warehouse {warehouse} cannot be opened .*{cause}.*DAENA_WAREHOUSE"):
        with db.connect(warehouse, read_only=read_only, wait_s=5):
            pass
    assert warehouse.read_bytes() == before


def test_the_cli_summary_skips_with_a_message_while_another_process_writes(warehouse, monkeypatch, capsys):
    monkeypatch.setenv("DAENA_WAREHOUSE", str(warehouse))
    monkeypatch.setenv("DAENA_LOCK_WAIT_S", "0.3")
    with other_process(warehouse, HOLD_WRITE_LOCK.format(hold=30)):
        cli.print_summary()
    assert "table counts skipped: the warehouse" in capsys.readouterr().out


def test_an_ingest_succeeds_beside_a_reader_polling_the_file(warehouse, tmp_path):
    paths = []
    for i in range(3):
        paths.append(tmp_path / f"r{i}.alog")
        paths[-1].write_bytes(alog_bytes(profile(roastUUID=f"poll-{i}")))
    poll = """
    print("ready", flush=True)
    end = time.monotonic() + 3
    while time.monotonic() < end:  # open, read, close, as every reader here does
        try:
            with duckdb.connect(path, read_only=True) as con:
                con.execute("SELECT count(*) FROM duckdb_tables()").fetchall()
        except duckdb.IOException:
            pass  # the writer has it: try again
    """
    with other_process(warehouse, poll):
        for batch in ([paths[0]], paths[1:]):  # two runs, each opening its own connection
            with db.connect(warehouse, wait_s=30) as con:
                ingest.ingest(con, batch, tmp_path / "q", workers=1)
    with db.connect(warehouse, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM telemetry.sessions").fetchone() == (3,)


def test_the_regressions_sensor_skips_its_tick_while_another_process_writes(warehouse, monkeypatch):
    import dagster as dg

    from daena_pipelines.defs.regressions import sensors
    from daena_pipelines.defs.regressions.jobs import findings_job
    from daena_pipelines.lib.warehouse import WarehouseResource

    @dg.asset(key=["evals", "eval_runs"])  # a watched asset: its run is one evaluation for the sensor
    def eval_runs():
        return None

    resource = WarehouseResource(database=str(warehouse))
    definitions = dg.Definitions(assets=[eval_runs], jobs=[findings_job], resources={"duckdb": resource})
    instance = dg.DagsterInstance.ephemeral()
    dg.materialize([eval_runs], instance=instance)
    monkeypatch.setattr(sensors, "SENSOR_LOCK_WAIT_S", 0.3)

    def tick():
        return sensors.regressions_sensor.evaluate_tick(
            dg.build_sensor_context(instance=instance, resources={"duckdb": resource}, definitions=definitions))

    with other_process(warehouse, HOLD_WRITE_LOCK.format(hold=30)):
        busy = tick()
    assert busy.skip_message.startswith("warehouse busy, the next tick looks again") and not busy.run_requests
    (request,) = tick().run_requests  # the lock is gone: the unread run is seen now
    assert request.tags["daena/findings_unread"] == "1"
