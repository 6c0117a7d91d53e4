"""An approval the sidecar closes EXPIRED ends EXPIRED in commands.proposals, with the sidecar's reason."""
import dagster as dg
import duckdb

from daena_pipelines.defs.commands import assets, checks
from daena_pipelines.lib.warehouse import WarehouseResource
from tests.commands.proposal_builders import write_store

from .conftest import ROASTERS, approve, run_until
from .test_faults import start

# The command service approved this preheat weeks before the roast; its queue row was never taken.
STORE_PROPOSAL = {
    "proposal_id": "stale-preheat", "machine_id": "r1", "session_id": None, "command_type": "PREHEAT",
    "target_value": 220.0, "target_unit": "C", "constraints": None, "proposed_by": "HUMAN", "actor": "operator-ana",
    "reasoning": "preheat for the morning batch", "status": "APPROVED", "created_at": "2026-10-30T07:59:50Z",
    "approved_at": "2026-10-30T08:00:00Z", "origin": "real",
}
STORE_AUDIT = [
    ("stale-preheat", "2026-10-30T07:59:50Z", None, "PROPOSED", "operator-ana", None),
    ("stale-preheat", "2026-10-30T07:59:51Z", "PROPOSED", "PENDING_APPROVAL", "command-service", None),
    ("stale-preheat", "2026-10-30T08:00:00Z", "PENDING_APPROVAL", "APPROVED", "auto-policy", None),
]


def rows(warehouse, sql):
    with duckdb.connect(warehouse, read_only=True) as con:
        return con.execute(sql).fetchall()


def test_an_approval_the_sidecar_expires_ends_expired_in_commands_with_its_reason(sim_config, warehouse, tmp_path):
    roaster = ROASTERS["r1"]
    approve(warehouse, "stale-preheat", "PREHEAT", 220, serial=roaster.serial, approved_at="now() - INTERVAL 30 DAY")
    # session-less and approved before the session started: the command service never exported it
    approve(warehouse, "sessionless-before-start", "PREHEAT", 230, serial=roaster.serial,
            approved_at="now() - INTERVAL 20 SECOND")
    sidecar, device = start(sim_config, roaster, warehouse, operator=False)
    assert run_until(sidecar, lambda s: s.command_statuses.get("EXPIRED") == 2, limit_s=120)
    sidecar.request_stop("operator stop")
    sidecar.run_started()
    assert device.heater == 0  # nothing ran
    queue = {r[0]: r[1:] for r in rows(warehouse, "SELECT proposal_id, status, closed_at, closed_reason, closed_source "
                                                  "FROM device.command_queue")}
    assert {k: (v[0], v[3]) for k, v in queue.items()} == {
        "stale-preheat": ("EXPIRED", "simulator"), "sessionless-before-start": ("EXPIRED", "simulator")}

    result = dg.materialize(
        [*dg.load_assets_from_modules([assets]), *dg.load_asset_checks_from_modules([checks])],
        resources={"duckdb": WarehouseResource(database=warehouse)},
        run_config={"ops": {"command_proposals": {"config": {
            "sqlite_paths": [str(write_store(tmp_path / "store.sqlite", [STORE_PROPOSAL], STORE_AUDIT))], "jsonl_paths": []}}}},
    )
    assert result.success and all(e.passed for e in result.get_asset_check_evaluations())

    proposals = {r[0]: r[1:] for r in rows(warehouse, """
        SELECT proposal_id, status, expired_at, expiry_reason, approved_at, execution_started_at, outcome, source, origin
        FROM commands.proposals""")}
    status, expired_at, reason, approved_at, started, outcome, source, origin = proposals["stale-preheat"]
    # a real approval the simulated sidecar closed: its end is simulated (commands.store.least_real)
    assert (status, started, outcome, source, origin) == ("EXPIRED", None, None, "sqlite:store.sqlite + sidecar", "simulator")
    assert reason == queue["stale-preheat"][2] and reason.startswith("approval expired at ")
    assert expired_at == queue["stale-preheat"][1] and expired_at > approved_at
    status, _, reason, approved_at, *_, source, origin = proposals["sessionless-before-start"]
    assert (status, approved_at, source, origin) == ("EXPIRED", None, "sidecar", "simulator")
    assert "before this session started" in reason
    # the stored history plus the sidecar's closing entry
    assert rows(warehouse, "SELECT proposal_id, from_status, to_status, actor FROM commands.audit_log "
                           "WHERE to_status = 'EXPIRED' ORDER BY proposal_id") == [
        ("sessionless-before-start", "APPROVED", "EXPIRED", "sidecar"), ("stale-preheat", "APPROVED", "EXPIRED", "sidecar")]
    counts = {table: rows(warehouse, f"SELECT count(*) FROM {table}")[0][0] for table in (
        "commands.proposals", "commands.audit_log", "commands.invalid_transitions", "commands.ingest_errors",
        "device.command_executions")}
    assert counts == {"commands.proposals": 2, "commands.audit_log": 5, "commands.invalid_transitions": 0,
                      "commands.ingest_errors": 0, "device.command_executions": 0}
    assert rows(warehouse, "SELECT sum(n_expired), sum(n_approved), sum(n_terminal_executed), sum(n_decided) "
                           "FROM commands.outcome_metrics") == [(2, 0, 0, 2)]
    assert rows(warehouse, "SELECT proposal_id FROM commands.alerts WHERE alert_type = 'APPROVAL_EXPIRED' "
                           "ORDER BY proposal_id") == [("sessionless-before-start",), ("stale-preheat",)]
