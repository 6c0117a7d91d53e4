"""Approved-command execution, local limits, abort and faults: the sidecar against the virtual R1."""
import duckdb
import numpy as np
import pytest

from daena_pipelines.device import protocol as p
from daena_pipelines.device.roaster import Status
from daena_pipelines.telemetry.sidecar import parse_sidecar
from daena_pipelines.device.safety import Command, SafetyLimits, refusal
from daena_pipelines.device.virtual_r1 import Faults, OperatorPlan, VirtualR1Config

from .conftest import run_until


def queue(warehouse, *rows, serial="4242", unit="r1_level"):
    """Approvals given now (after the session started), for the virtual R1's serial (in R1 steps), session-less."""
    with duckdb.connect(warehouse) as con:
        for proposal_id, machine_id, command_type, target, status in rows:
            con.execute(
                "INSERT INTO device.command_queue (proposal_id, machine_id, command_type, target_value, target_unit, status,"
                " approved_at, roaster_serial, source) VALUES (?, ?, ?, ?, ?, ?, now(), ?, 'test')",
                [proposal_id, machine_id, command_type, target, unit, status, serial],
            )


def executions(warehouse) -> dict[str, tuple]:
    with duckdb.connect(warehouse) as con:
        rows = con.execute("SELECT proposal_id, status, observed_value, error, session_id, source FROM device.command_executions").fetchall()
    return {row[0]: row[1:] for row in rows}


def roasting_for(seconds):
    return lambda s: s.charge_t is not None and s.clock.now() - s.t0 - s.charge_t >= seconds


def writes(device, since=0.0):
    return [(t, data) for t, data in device.wire_log if t >= since and len(data) == 4]


def test_only_approved_commands_for_this_machine_run_and_are_confirmed(started, warehouse):
    sidecar, device = started(warehouse=warehouse)
    assert run_until(sidecar, roasting_for(90))
    since = sidecar.clock.now()
    queue(warehouse,
          ("approved-power", "r1", "SET_POWER", 6, "APPROVED"),
          ("pending-fan", "r1", "SET_FAN", 5, "PENDING"),
          ("rejected-power", "r1", "SET_POWER", 2, "REJECTED"),
          ("other-machine", "r1-b", "SET_DRUM", 3, "APPROVED"))
    assert run_until(sidecar, roasting_for(110))
    sent = writes(device, since)
    assert [data for _, data in sent] == [p.HEATER_DOWN] * 3  # 9 -> 6, nothing else
    gaps = np.diff([t for t, _ in sent])
    assert gaps.min() >= SafetyLimits().min_step_interval_s - 1e-9  # minimum interval between steps
    assert device.heater == 6
    result = sidecar.finish()
    rows = executions(warehouse)
    assert set(rows) == {"approved-power"}
    status, observed, error, session_id, source = rows["approved-power"]
    assert (status, observed, error, source) == ("COMPLETED", 6.0, None, "simulator")
    assert session_id == result.session_id  # filled in when the recording closed
    with duckdb.connect(warehouse) as con:
        statuses = dict(con.execute("SELECT proposal_id, status FROM device.command_queue").fetchall())
    assert statuses == {"approved-power": "COMPLETED", "pending-fan": "PENDING", "rejected-power": "REJECTED", "other-machine": "APPROVED"}
    lines = [line for line in result.path.read_bytes().splitlines() if b'"type":"command"' in line]
    assert len(lines) == 1 and b"approved-power" in lines[0]


def test_out_of_range_and_state_guard_are_refused(started, warehouse):
    sidecar, device = started(warehouse=warehouse)
    assert run_until(sidecar, roasting_for(60))
    queue(warehouse, ("too-hot", "r1", "SET_POWER", 12, "APPROVED"), ("fan-zero", "r1", "SET_FAN", 0, "APPROVED"))
    since = sidecar.clock.now()
    assert run_until(sidecar, lambda s: s.drop_t is not None and s.clock.now() - s.t0 - s.drop_t > 5)
    queue(warehouse, ("heat-while-cooling", "r1", "SET_POWER", 5, "APPROVED"))
    assert run_until(sidecar, lambda s: sum(s.command_statuses.values()) == 3)
    sidecar.finish()
    rows = executions(warehouse)
    assert rows["too-hot"][0] == "FAILED" and "outside the allowed range 0..9" in rows["too-hot"][2]
    assert rows["fan-zero"][0] == "FAILED" and "outside the allowed range 1..12" in rows["fan-zero"][2]
    assert rows["heat-while-cooling"][0] == "FAILED" and "heater increase refused while cooling" in rows["heat-while-cooling"][2]
    assert not any(data in (p.HEATER_UP, p.FAN_DOWN) for _, data in writes(device, since))


@pytest.mark.parametrize("limits, expected", [
    (SafetyLimits(max_bt_c=160.0), "BT"),
    (SafetyLimits(max_et_c=255.0), "ET"),
])
def test_ceiling_trips_abort_to_heater_zero_and_cooling(started, limits, expected):
    sidecar, device = started(limits=limits)
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done)
    assert sidecar.abort.reason.startswith(f"safety trip: {expected}")
    assert sidecar.abort.latency_s < 2.0
    assert device.heater == 0 and device.state == p.State.COOLING
    assert any(f.startswith("abort: safety trip") for f in sidecar.faults)


def test_abort_latency_from_full_heat(started, warehouse):
    sidecar, device = started(warehouse=warehouse)
    assert run_until(sidecar, roasting_for(100))
    assert device.heater == 9
    queue(warehouse, ("stop-now", "r1", "ABORT", None, "APPROVED"))
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done)
    latency = sidecar.abort.latency_s
    assert latency is not None and latency < 2.0
    assert device.heater == 0 and device.state == p.State.COOLING
    queue(warehouse, ("after-abort", "r1", "SET_FAN", 8, "APPROVED"))
    run_until(sidecar, lambda s: s.clock.now() - s.t0 > s.drop_t + 10)
    result = sidecar.finish()
    assert result.abort_latency_s == latency
    rows = executions(warehouse)
    assert rows["stop-now"][0] == "COMPLETED"
    status, _, error, *_ = rows["after-abort"]  # nothing runs after an abort, and it is not left pending
    assert status == "FAILED" and error == "not executed: this session was aborted (operator proposal stop-now)"
    assert parse_sidecar(result.path.read_bytes(), "x").events["DROP"]  # the abort's PRS is the DROP


def test_heater_that_ignores_steps_fails_after_bounded_retries(started, warehouse):
    virtual = VirtualR1Config(operator=OperatorPlan(), faults=Faults(heater_ignores_steps=True))
    sidecar, device = started(warehouse=warehouse, virtual=virtual)
    assert run_until(sidecar, roasting_for(90))
    since = sidecar.clock.now()
    queue(warehouse, ("power-5", "r1", "SET_POWER", 5, "APPROVED"))
    assert run_until(sidecar, lambda s: s.command_statuses)
    sidecar.finish()
    status, observed, error, *_ = executions(warehouse)["power-5"]
    retries = SafetyLimits().max_step_retries
    assert status == "FAILED" and observed == 9.0 and f"{retries + 1} steps sent" in error
    assert [data for _, data in writes(device, since)] == [p.HEATER_DOWN] * (retries + 1)


def test_disconnect_and_reconnect_keeps_one_session(started):
    virtual = VirtualR1Config(operator=OperatorPlan(), faults=Faults(disconnect_at_s=500.0, reconnect_after_s=4.0))
    sidecar, _ = started(virtual=virtual)
    run_until(sidecar, lambda s: False)
    result = sidecar.finish()
    assert result.end_reason == "cool_end"
    kinds = [f.split(":")[0] for f in result.faults]
    assert kinds == ["disconnect", "reconnected"]  # recording only: a blip does not abort the roast
    assert 35 <= result.lost_polls <= 60  # ~4 s of 10 Hz polls plus the retry interval
    session = parse_sidecar(result.path.read_bytes(), "x")
    assert session.settings["complete"] and "DROP" in session.events
    assert 3 <= np.isnan(session.bt_c).sum() <= 6  # the gap shows as NaN samples, not as made-up data


def test_permanent_disconnect_closes_the_session_cleanly(started):
    virtual = VirtualR1Config(operator=OperatorPlan(), faults=Faults(disconnect_at_s=500.0))
    sidecar, _ = started(virtual=virtual, reconnect_timeout_s=5.0)
    run_until(sidecar, lambda s: False)
    result = sidecar.finish()
    assert result.end_reason == "disconnected" and result.path.exists()
    session = parse_sidecar(result.path.read_bytes(), "x")
    assert session.settings["complete"] and session.settings["end_reason"] == "disconnected"
    assert "CHARGE" in session.events and "DROP" not in session.events


def test_stalled_reads_after_a_command_trip_lost_control_abort(started, warehouse):
    virtual = VirtualR1Config(operator=OperatorPlan(), faults=Faults(stall_reads=(520.0, 525.0)))
    sidecar, device = started(virtual=virtual, warehouse=warehouse)
    assert run_until(sidecar, roasting_for(60))
    queue(warehouse, ("fan-3", "r1", "SET_FAN", 3, "APPROVED"))  # the sidecar now drives the roaster
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done)
    assert executions(warehouse)["fan-3"][0] == "COMPLETED"
    assert sidecar.abort.reason.startswith("lost control")
    assert device.heater == 0 and device.state == p.State.COOLING
    assert any(f.startswith("stall") for f in sidecar.faults)


def test_invalid_packets_become_nan_samples(started):
    virtual = VirtualR1Config(operator=OperatorPlan(), faults=Faults(invalid_packets=(300.05, 302.05)))
    sidecar, _ = started(virtual=virtual, stop_on="duration", max_duration_s=310)
    run_until(sidecar, lambda s: False)
    result = sidecar.finish()
    assert result.lost_polls == 20 and result.invalid_samples == 2
    session = parse_sidecar(result.path.read_bytes(), "x")
    assert np.isnan(session.bt_c).sum() == result.invalid_samples


def test_unknown_state_means_no_command():
    command = Command("x", "r1", "SET_FAN", 3, "r1_level")
    assert "unknown" in refusal(command, None, None, SafetyLimits())


def test_locked_warehouse_keeps_rows_in_memory_until_it_is_free(tmp_path):
    import subprocess
    import sys

    from daena_pipelines.device.command_store import CommandBridge

    path = str(tmp_path / "w.duckdb")
    bridge = CommandBridge(path, "r1", "rec", interval_s=3600)  # its own process, short connections
    bridge.start()
    bridge.sync()  # creates the tables
    holder = subprocess.Popen([sys.executable, "-c", f"import duckdb, time; c = duckdb.connect({path!r}); print('held', flush=True); time.sleep(60)"],
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        row = {"execution_id": "e1", "proposal_id": "p1", "machine_id": "r1", "command_type": "SET_FAN",
               "target_value": 4.0, "status": "COMPLETED", "source": "simulator"}
        bridge.execution(row)  # the poll loop's side: returns at once whatever the warehouse does
        bridge.sync()
        assert bridge.unwritten == 1  # the other process holds the file: kept, not lost, not raised
    finally:
        holder.kill()
        holder.wait()
    assert bridge.stop(timeout_s=30)
    assert executions(path) == {"p1": ("COMPLETED", None, None, None, "simulator")}


def test_abort_while_preheating_walks_to_cooling(started):
    sidecar, device = started()
    assert run_until(sidecar, lambda s: s.clock.now() > 60)
    assert device.state == p.State.PREHEATING and device.heater > 0
    sidecar.request_abort("operator")
    assert run_until(sidecar, lambda s: s.abort is not None and s.abort.done)
    assert sidecar.abort.latency_s < 2.0
    assert device.heater == 0 and device.state == p.State.COOLING


def test_limits_are_rechecked_on_every_step(started, warehouse):
    sidecar, device = started(warehouse=warehouse)
    assert run_until(sidecar, roasting_for(90))
    queue(warehouse, ("down-3", "r1", "SET_POWER", 3, "APPROVED"))
    assert run_until(sidecar, lambda s: s.command_statuses.get("COMPLETED") == 1)
    queue(warehouse, ("up-9", "r1", "SET_POWER", 9, "APPROVED"))
    assert run_until(sidecar, lambda s: device.heater == 5)  # two steps up taken
    device.press_prs()  # the operator drops the beans at the panel mid-command
    dropped_at = sidecar.clock.now()
    assert run_until(sidecar, lambda s: s.active is None)
    sidecar.finish()
    status, _, error, *_ = executions(warehouse)["up-9"]
    assert status == "FAILED" and "heater increase refused while cooling" in error
    assert not [data for _, data in writes(device, dropped_at) if data == p.HEATER_UP]


def _reading(state=p.State.ROASTING, heater=5, fan=3, drum=6) -> Status:
    return Status(channel_a_c=180.0, channel_b_c=250.0, exhaust_c=150.0, fan=fan, heater=heater, drum=drum, state=int(state))


@pytest.mark.parametrize("command, reading, bt, expected", [
    (Command("a", "r1", "SET_POWER", 6), _reading(), 226.0, "within 10 °C of the 235 °C ceiling"),
    (Command("b", "r1", "SET_POWER", 4), _reading(), 226.0, None),  # decreasing near the ceiling is fine
    (Command("c", "r1", "SET_POWER", 6), _reading(p.State.PREHEATING), 150.0, "heater increase refused while preheating"),
    (Command("d", "r1", "SET_POWER", 6.5), _reading(), 150.0, "not a whole level"),
    (Command("e", "r1", "SET_POWER", 50, "pct"), _reading(), 150.0, "is not a roaster level"),
    (Command("f", "r1", "SET_FAN", 4), _reading(p.State.OFF), 25.0, "roaster is off"),
    (Command("g", "r1", "SET_DRUM", 10), _reading(), 150.0, "outside the allowed range 1..9"),
    (Command("h", "r1", "DROP"), _reading(p.State.COOLING), 150.0, "DROP needs state roasting"),
    (Command("i", "r1", "REBOOT"), _reading(), 150.0, "unknown command type"),
    (Command("j", "r1", "CHARGE"), _reading(p.State.CHARGE), 150.0, None),
    (Command("k", "r1", "SET_POWER", float("nan")), _reading(), 150.0, "target nan is not a whole level"),
    (Command("l", "r1", "SET_FAN", float("inf")), _reading(), 150.0, "target inf is not a whole level"),
    (Command("m", "r1", "SET_POWER", 4, "r1_level"), _reading(), 150.0, None),
    (Command("n", "r1", "SET_POWER", 4, "r2_level"), _reading(), 150.0, "'r2_level' is another model's level; this roaster's levels are r1_level"),
])
def test_refusals(command, reading, bt, expected):
    reason = refusal(command, reading, bt, SafetyLimits().within_model(p.LIMITS))
    assert (reason is None) if expected is None else (expected in reason), reason


def test_an_approval_closed_expired_never_runs_even_when_its_row_is_set_back_to_approved(started, warehouse):
    """EXPIRED is final (docs/commands.md): a queue row an earlier session closed, then set back to APPROVED with a
    fresh approval time, must not run. Before, the sidecar read only the status and stepped the heater 9 -> 6."""
    sidecar, device = started(warehouse=warehouse)
    assert run_until(sidecar, roasting_for(90))
    since = sidecar.clock.now()
    queue(warehouse, ("reopened-power", "r1", "SET_POWER", 6, "APPROVED"))
    with duckdb.connect(warehouse) as con:
        con.execute("UPDATE device.command_queue SET closed_at = now() - INTERVAL 1 HOUR, closed_source = 'simulator', "
                    "closed_reason = 'approval expired at 08:05:00 (approved 08:00:00, 300 s to live)'")
    assert run_until(sidecar, roasting_for(110))
    assert writes(device, since) == [] and device.heater == 9
    sidecar.finish()
    assert executions(warehouse) == {}
