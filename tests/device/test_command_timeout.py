"""The command timeout each execution ran with is recorded on its row, and commands' EXECUTION_STUCK limit starts from
it: before, only the device contract's default (20 s) was known, so a sidecar run with another timeout made a command
still inside its timeout look stuck, or a stuck one wait for the default's limit."""
from datetime import UTC, datetime, timedelta

import dagster as dg
import duckdb
import orjson

from daena_pipelines.db import connect
from daena_pipelines.defs.commands import assets, checks
from daena_pipelines.device.command_store import WarehouseIO
from daena_pipelines.device.safety import SafetyLimits
from daena_pipelines.lib.warehouse import WarehouseResource

from .conftest import ROASTERS, approve, run_until
from .test_faults import start


def rows(warehouse, sql):
    with duckdb.connect(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_each_execution_row_records_the_command_timeout_it_ran_with(sim_config, warehouse):
    roaster = ROASTERS["r1"]
    sidecar, _ = start(sim_config, roaster, warehouse, limits=SafetyLimits(command_timeout_s=7.5))
    assert run_until(sidecar, lambda s: s.charge_t is not None)
    approve(warehouse, "fan-4", "SET_FAN", 4, serial=roaster.serial)
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED"))
    sidecar.request_stop("operator stop")
    result = sidecar.run_started()
    assert rows(warehouse, "SELECT proposal_id, status, command_timeout_s FROM device.command_executions") == [
        ("fan-4", "COMPLETED", 7.5)]
    [line] = [orjson.loads(line) for line in result.path.read_bytes().splitlines() if b'"type":"command"' in line]
    assert (line["proposal_id"], line["command_timeout_s"]) == ("fan-4", 7.5)


def test_a_warehouse_from_before_the_recorded_timeout_migrates_and_stuck_alerts_use_each_executions_timeout(tmp_path):
    path = str(tmp_path / "old.duckdb")
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=100)
    with connect(path):
        pass
    with duckdb.connect(path) as con:  # as device migration 4 and commands migration 5 left it, with a row of then
        con.execute("""
            ALTER TABLE device.command_executions DROP COLUMN command_timeout_s;
            ALTER TABLE device.sidecar_sessions DROP COLUMN exit_outcome;
            ALTER TABLE commands.proposals DROP COLUMN command_timeout_s;
            DELETE FROM meta.schema_migrations WHERE (domain, version) IN (('device', 5), ('device', 6), ('commands', 6));""")
        con.execute("INSERT INTO device.command_executions (execution_id, proposal_id, machine_id, recording_id, command_type,"
                    " target_value, status, started_at, source) VALUES ('x-old', 'old', 'r1', 'rec-old', 'SET_FAN', 12,"
                    " 'EXECUTING', ?, 'real')", [started])
    # today's sidecar writes through its worker, whose first connection migrates the warehouse
    io = WarehouseIO(path, "r1", "rec-new", keep_connection=False)
    for proposal_id, timeout_s in (("long-timeout", 300.0), ("short-timeout", 5.0)):
        io.add("execution", {"execution_id": f"x-{proposal_id}", "proposal_id": proposal_id, "machine_id": "r1",
                             "recording_id": "rec-new", "command_type": "SET_FAN", "target_value": 12.0,
                             "status": "EXECUTING", "started_at": started, "source": "real", "command_timeout_s": timeout_s})
    io.cycle(read=False)
    assert io.unwritten == 0
    assert rows(path, "SELECT domain, max(version) FROM meta.schema_migrations WHERE domain IN ('device', 'commands')"
                      " GROUP BY 1 ORDER BY 1") == [("commands", 6), ("device", 6)]
    assert rows(path, "SELECT proposal_id, command_timeout_s FROM device.command_executions ORDER BY 1") == [
        ("long-timeout", 300.0), ("old", None), ("short-timeout", 5.0)]

    result = dg.materialize(  # the sidecar's rows only; as_of is the run's clock (live sources), 100 s after the starts
        [*dg.load_assets_from_modules([assets]), *dg.load_asset_checks_from_modules([checks])],
        resources={"duckdb": WarehouseResource(database=path)},
        run_config={"ops": {"command_proposals": {"config": {"sqlite_paths": [], "jsonl_paths": []}}}},
    )
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())
    assert rows(path, "SELECT proposal_id, status, command_timeout_s FROM commands.proposals ORDER BY 1") == [
        ("long-timeout", "EXECUTING", 300.0), ("old", "EXECUTING", None), ("short-timeout", "EXECUTING", 5.0)]
    # limit = timeout + 5 warehouse cycles of 2 s + 30 s: the old row the default 20 s (60), the others their own;
    # 300 s is still inside its limit of 340 (before: alerted against 60, and the 5 s one only at 60, not 45)
    alerts = rows(path, "SELECT proposal_id, threshold, observed_value FROM commands.alerts"
                        " WHERE alert_type = 'EXECUTION_STUCK' ORDER BY 1")
    assert [(proposal_id, threshold) for proposal_id, threshold, _ in alerts] == [("old", 60.0), ("short-timeout", 45.0)]
    assert all(100 <= observed < 100 + 120 for *_, observed in alerts)


def test_an_unusable_recorded_timeout_neither_drops_the_execution_nor_silences_its_stuck_alert(tmp_path):
    """NaN, infinite, negative and over-long (1e9 s) timeouts (written past the sidecar, which refuses them in
    SafetyLimits) are reported as unreadable, and their EXECUTING rows alert against the configured 20 s (limit 60); zero
    alerts at its own 40. Before, the first three rows were dropped with a WARN and none of them alerted, and 1e9 s set a
    limit no execution ever reaches."""
    path = str(tmp_path / "w.duckdb")
    started = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=100)
    with connect(path) as con:
        for proposal_id, timeout in (("nan", "'NaN'"), ("inf", "'inf'"), ("negative", "-5"), ("zero", "0"), ("huge", "1e9")):
            con.execute("INSERT INTO device.command_executions (execution_id, proposal_id, machine_id, recording_id,"
                        " command_type, target_value, status, started_at, source, command_timeout_s) VALUES"
                        f" ('x-{proposal_id}', '{proposal_id}', 'r1', 'rec', 'SET_FAN', 4, 'EXECUTING', ?, 'real',"
                        f" CAST({timeout} AS DOUBLE))", [started])
    result = dg.materialize(
        [*dg.load_assets_from_modules([assets]), *dg.load_asset_checks_from_modules([checks])],
        resources={"duckdb": WarehouseResource(database=path)},
        run_config={"ops": {"command_proposals": {"config": {"sqlite_paths": [], "jsonl_paths": []}}}},
    )
    assert result.success
    assert {e.check_name for e in result.get_asset_check_evaluations() if not e.passed} == {"input_rows_readable"}
    assert rows(path, "SELECT proposal_id, status, command_timeout_s FROM commands.proposals ORDER BY 1") == [
        ("huge", "EXECUTING", None), ("inf", "EXECUTING", None), ("nan", "EXECUTING", None), ("negative", "EXECUTING", None),
        ("zero", "EXECUTING", 0.0)]
    assert rows(path, "SELECT proposal_id, threshold FROM commands.alerts WHERE alert_type = 'EXECUTION_STUCK' ORDER BY 1") == [
        ("huge", 60.0), ("inf", 60.0), ("nan", 60.0), ("negative", 60.0), ("zero", 40.0)]
