"""A failed probe (a status that passes its integrity checks but reads a temperature no working probe reads)
ends with the roaster safe, the probe and its value named; a garbled reply stays a lost poll.

Each case runs on the virtual R1 and R2 (``roaster`` fixture) and asserts the end state: the twin's own heater
and state, the footer, the command and session rows and the exit code of the sidecar process."""
import math

import duckdb
import orjson
import pytest

from daena_pipelines.device.r2 import protocol as r2
from daena_pipelines.device.roaster import SAFE_STATES, State
from daena_pipelines.device.sidecar import build_sidecar
from daena_pipelines.device.sidecar_process import exit_code
from daena_pipelines.device.virtual_r1 import Faults, OperatorPlan

from .conftest import approve, queue_rows, run_until
from .test_faults import footer, inject, record, safe, start, writes
from .test_r2_protocol import crc_from_the_docs

# -17.75 °C as a little-endian float32, worked by hand: 17.75 = 1.109375 x 2^4, exponent 127 + 4 = 0x83,
# sign 1: 1 10000011 0001110... = 0xC18E0000 -> bytes 00 00 8e c1
MINUS_17_75_LE = bytes.fromhex("00008ec1")


def wire_status(device) -> bytes:
    """What the twin answers a poll with now: the R2's temperature frame, the R1's 128-byte status."""
    return device._temperature_frame() if hasattr(device, "_temperature_frame") else device._status_bytes()


def heater_up_writes(device, since: float) -> list[bytes]:
    return [data for data in writes(device, since) if data[:2] == bytes([0x34, 0x01])]


def session_end_reason(warehouse) -> str:
    with duckdb.connect(warehouse) as con:
        return con.execute("SELECT end_reason FROM device.sidecar_sessions").fetchone()[0]


def test_the_virtual_twins_send_a_failed_probe_in_an_intact_reply(roaster, sim_config):
    sidecar, device = start(sim_config, roaster, operator=False)
    assert run_until(sidecar, lambda s: s.clock.now() >= 3.0)  # off: the R1's idle message comes at whole 15 s
    inject(device, probe_failed_at_s=3.0, probe_failed_reads_c=-17.75)
    wire = wire_status(device)
    if roaster.model == "r1":  # channel A = bytes 0-3; the marker at 41 still 10: the reply is intact
        assert wire[0:4] == MINUS_17_75_LE and wire[41] == 10
    else:  # IBTS (channel A) = bytes 4-7 of frame 0xA0; bytes 60-63 the frame's CRC, re-derived bit by bit
        assert wire[0] == 0xA0 and wire[4:8] == MINUS_17_75_LE
        assert wire[60:64] == crc_from_the_docs(wire[:60] + bytes(4)).to_bytes(4, "little")
    reading = sidecar.driver.poll()
    assert reading.probe_faults == {"a": -17.8} and reading.state == State.OFF  # rounded to 0.1 as every reading


def test_failed_probe_while_idle_ends_the_session_untouched(roaster, sim_config, warehouse):
    sidecar, device = start(sim_config, roaster, warehouse, operator=False)  # off, nobody at the panel
    assert run_until(sidecar, lambda s: s.clock.now() >= 3.0)
    inject(device, probe_failed_at_s=3.0)  # BT reads 0.0 °C
    result = sidecar.run_started()
    end = footer(result)
    assert device.heater == 0 and device.sidecar_state == State.OFF and writes(device) == []  # nothing sent
    assert result.end_reason.startswith("probe failed: BT probe (channel A) reads 0 °C for 0.4 s")
    assert end["probe_fault"]["probes"] == [{"channel": "a", "role": "BT", "reads_c": 0.0}]
    assert end["probe_fault"]["failed_t"] - end["probe_fault"]["since_t"] == pytest.approx(0.4)
    assert end["exit"]["outcome"].startswith("untouched") and exit_code(result) == 3
    assert result.lost_polls == 0 and sidecar.abort is None
    assert session_end_reason(warehouse) == result.end_reason
    record("probe reads 0 °C while idle (off)", device, result, result.command_statuses)


def test_failed_probe_while_preheating_is_aborted_to_cooling(roaster, sim_config):
    sidecar, device = start(sim_config, roaster)  # the operator starts a preheat; the sidecar never commands
    assert run_until(sidecar, lambda s: s.last_reading is not None and s.last_reading.state == State.PREHEATING
                     and s.last_reading.heater > 0 and s.clock.now() >= 20)
    inject(device, probe_failed_at_s=sidecar.clock.now(), probe_failed_reads_c=-17.75)
    result = sidecar.run_started()
    end = footer(result)
    assert safe(device) and State(device.sidecar_state) in SAFE_STATES
    assert device.heater == 0 and State(device.sidecar_state) == State.COOLING
    assert sidecar.abort.reason.startswith("probe failed: BT probe (channel A) reads -17.8 °C")
    assert result.end_reason.startswith("probe failed") and end["exit"]["outcome"] == "already safe"
    assert end["probe_fault"]["probes"] == [{"channel": "a", "role": "BT", "reads_c": -17.8}]
    assert any(f.startswith("probe_failed: BT probe (channel A) reads -17.8 °C") for f in result.faults)
    assert exit_code(result) == 3 and result.lost_polls == 0
    record("probe reads -17.75 °C while preheating (never commanded)", device, result, result.command_statuses)


def test_failed_probe_aborts_an_executing_heater_command_and_no_step_raises_the_heater(roaster, sim_config, warehouse):
    plan = OperatorPlan(charge_heater=4, heater_at_bt=(), fan_at_bt=())  # a low heater the command raises
    top = 9 if roaster.model == "r1" else r2.HEATER_RANGE[1]
    sidecar, device = build_sidecar(sim_config(model=roaster.model, virtual=roaster.make_config(plan, Faults()),
                                               warehouse=warehouse))
    sidecar.start()
    assert run_until(sidecar, lambda s: s.charge_t is not None and s.clock.now() - s.t0 - s.charge_t >= 30)
    charged_at = device.heater
    approve(warehouse, "power-up", "SET_POWER", top, serial=roaster.serial)
    # EXECUTING, one step up taken, the next one due within the 0.4 s the probe fault needs to count as a failure
    assert run_until(sidecar, lambda s: s.active is not None and device.heater > charged_at
                     and s.clock.now() - s.active.last_change_at >= 0.35)
    failed_at = sidecar.clock.now()
    inject(device, probe_failed_at_s=failed_at, probe_failed_reads_c=850.0)
    assert device.heater < top
    result = sidecar.run_started()
    rows = queue_rows(warehouse)
    assert device.heater == 0 and State(device.sidecar_state) == State.COOLING
    assert heater_up_writes(device, failed_at + 0.01) == []  # no step raised the heater once the probe read 850 °C
    assert rows["power-up"][0] == "ABORTED" and rows["power-up"][2] == "ABORTED"
    assert rows["power-up"][3].startswith("aborted: probe failed: BT probe (channel A) reads 850 °C")
    assert result.command_statuses == {"ABORTED": 1}
    assert result.end_reason.startswith("probe failed") and footer(result)["exit"]["outcome"] == "already safe"
    assert session_end_reason(warehouse) == result.end_reason and exit_code(result) == 3
    record("probe reads 850 °C while a SET_POWER raises the heater", device, result, result.command_statuses)


def test_one_implausible_reading_does_not_stop_the_roast(roaster, sim_config):
    sidecar, device = start(sim_config, roaster)
    assert run_until(sidecar, lambda s: s.last_reading is not None and s.last_reading.state == State.PREHEATING
                     and s.clock.now() >= 20)
    inject(device, probe_failed_at_s=sidecar.clock.now())
    assert run_until(sidecar, lambda s: s.probes.since is not None and s.clock.now() - s.probes.since >= 0.25)
    inject(device, probe_failed_at_s=None)  # the probe reads right again before 0.4 s
    assert run_until(sidecar, lambda s: s.clock.now() >= 30)
    assert sidecar.probe_fault is None and sidecar.abort is None and not sidecar.exiting
    assert device.heater > 0 and device.sidecar_state == State.PREHEATING


def test_garbled_replies_stay_lost_polls_not_a_probe_fault(roaster, sim_config):
    sidecar, device = start(sim_config, roaster)
    assert run_until(sidecar, lambda s: s.last_reading is not None and s.last_reading.state == State.PREHEATING
                     and s.clock.now() >= 20)
    now = sidecar.clock.now()
    inject(device, invalid_packets=(now, now + 1.5))  # 1.5 s of garbled replies, over a recording second
    wire = wire_status(device)
    if roaster.model == "r1":  # channel A NaN, and the marker is not 10
        assert wire[0:4] == b"\xff" * 4 and wire[41] != 10
    else:  # channel A NaN, and bytes 60-63 are not the frame's CRC
        assert wire[4:8] == b"\xff" * 4
        assert wire[60:64] != crc_from_the_docs(wire[:60] + bytes(4)).to_bytes(4, "little")
    lost = sidecar.lost
    assert run_until(sidecar, lambda s: s.clock.now() >= now + 3.0)
    assert 14 <= sidecar.lost - lost <= 16  # ~1.5 s of polls lost, as before
    assert sidecar.probe_fault is None and sidecar.probes.since is None and sidecar.abort is None
    assert device.heater > 0 and device.sidecar_state == State.PREHEATING
    samples = recorded_samples(sidecar.recorder.path)
    start_t = now - sidecar.t0
    garbled = [line for line in samples if start_t < line["t"] < start_t + 1.5]
    assert garbled and all(line["ok"] is False and line["why"].startswith("invalid status") for line in garbled)


def recorded_samples(path) -> list[dict]:
    return [line for line in map(orjson.loads, path.read_bytes().splitlines()) if line["type"] == "sample"]


@pytest.mark.parametrize("reads", [-1.0, 500.5, math.nan])
def test_probe_fault_statuses_are_recorded_with_bt_null_and_the_heater_kept(roaster, sim_config, reads):
    sidecar, device = start(sim_config, roaster, operator=False)
    inject(device, probe_failed_at_s=1.75, probe_failed_reads_c=reads)  # confirmed at 2.15 s: the 2 s sample has it
    result = sidecar.run_started()
    after = [sample for sample in recorded_samples(result.path) if sample["t"] >= 1.8]
    assert after and all(s["a"] is None and s["b"] is not None and s["h"] == 0 and s["st"] == State.OFF for s in after)
    assert footer(result)["probe_fault"]["probes"][0]["reads_c"] == (None if math.isnan(reads) else reads)
