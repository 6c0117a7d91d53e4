"""A full simulated roast recorded by the sidecar, its realism, and the recording file format."""
import math

import numpy as np
import orjson
import pytest

from daena_pipelines.telemetry.sidecar import parse_sidecar
from daena_pipelines.device.sidecar import SidecarConfig, run_sidecar
from daena_pipelines.device.virtual_r1 import OperatorPlan, VirtualR1Config
from daena_pipelines.telemetry.model import InvalidSession


@pytest.fixture(scope="module")
def roast(tmp_path_factory):
    """preheat -> charge -> roast -> drop -> cool on the virtual R1 (stepped clock, seed 7)."""
    folder = tmp_path_factory.mktemp("roast")
    cfg = SidecarConfig(
        simulate=True, time_scale=0, seed=7, start_at="2026-11-17T09:00:00+00:00", beans="Kenya Nyeri",
        batch_weight_g=250, recordings_dir=str(folder / "rec"), landing_dir=str(folder / "landing"),
        virtual=VirtualR1Config(operator=OperatorPlan()),
    )
    result = run_sidecar(cfg)
    data = result.path.read_bytes()
    return result, data, parse_sidecar(data, str(result.path))


def test_full_roast_lands_complete(roast):
    result, _, session = roast
    assert result.end_reason == "cool_end" and result.path.parent.name == "landing"
    assert result.lost_polls == 0 and result.invalid_samples == 0
    assert session.source == "simulator" and session.source_format == "sidecar"
    assert session.machine == "Aillio Bullet R1 (virtual)" and session.beans == "Kenya Nyeri"
    assert session.settings["complete"] and session.settings["channel_mapping"] == {"bt": "a", "et": "b"}
    assert list(session.events) == ["CHARGE", "DRY_END", "FCs", "DROP", "COOL"]
    assert session.settings["event_detection"] == {
        "CHARGE": "state:roasting", "DRY_END": "bt>=150", "FCs": "operator", "DROP": "state:cooling", "COOL": "state:cooling_end"}
    assert session.control_unit == "r1_level" and set(session.controls) == {"heater", "fan", "drum"}
    assert set(session.extra) >= {"exhaust_c", "ir_c", "pcb_c"}
    assert np.all(np.diff(session.time_s) > 0) and 0.95 < np.median(np.diff(session.time_s)) < 1.05


def test_roast_curve_is_plausible(roast):
    _, _, s = roast
    charge, fcs, drop = s.events["CHARGE"], s.events["FCs"], s.events["DROP"]
    t = s.time_s - s.time_s[charge]
    tp = charge + int(np.argmin(s.bt_c[charge : charge + 240]))
    assert 30 < t[tp] < 120 and 60 < s.bt_c[tp] < 110, (t[tp], s.bt_c[tp])  # turning point
    assert 7 * 60 <= t[fcs] <= 10 * 60 and 180 <= s.bt_c[fcs] <= 200, (t[fcs], s.bt_c[fcs])
    assert 205 <= s.bt_c[drop] <= 215, s.bt_c[drop]

    def ror(a, b):  # mean RoR in °C/min between two times after CHARGE
        i, j = charge + int(np.searchsorted(t[charge:], a)), charge + int(np.searchsorted(t[charge:], b))
        return (s.bt_c[j] - s.bt_c[i]) / (t[j] - t[i]) * 60

    early, middle, late = ror(120, 240), ror(300, 420), ror(t[drop] - 120, t[drop])
    assert early > middle > late > 0, (early, middle, late)


def test_header_and_footer_lines(roast):
    _, data, _ = roast
    lines = [orjson.loads(line) for line in data.splitlines()]
    header, footer = lines[0], lines[-1]
    assert header["type"] == "header" and header["source"] == "simulator" and header["serial"] == "4242"
    assert header["product_id"] == "0x5741" and header["firmware"] == 219
    assert header["simulator"]["seed"] == 7 and header["simulator"]["time_scale"] == 0
    assert footer["type"] == "footer" and footer["end_reason"] == "cool_end" and footer["lost_polls"] == 0


def test_same_seed_same_session(roast, tmp_path):
    """The stepped virtual R1 is deterministic: the same seed and settings record the same session
    (same id, same samples); another seed records another one."""
    _, _, full = roast

    def short_run(seed: int, folder: str):
        cfg = SidecarConfig(
            simulate=True, time_scale=0, seed=seed, start_at="2026-11-17T09:00:00+00:00", beans="Kenya Nyeri",
            batch_weight_g=250, recordings_dir=str(tmp_path / folder / "rec"), landing_dir=str(tmp_path / folder / "landing"),
            virtual=VirtualR1Config(operator=OperatorPlan()), max_duration_s=400, stop_on="duration",
        )
        return parse_sidecar(run_sidecar(cfg).path.read_bytes(), folder)

    first, again, other = short_run(7, "first"), short_run(7, "again"), short_run(8, "other")
    assert len(first.time_s) >= 390, len(first.time_s)  # 400 s at one sample per second
    assert again.session_id == first.session_id and other.session_id != first.session_id
    np.testing.assert_array_equal(again.time_s, first.time_s)
    np.testing.assert_array_equal(again.bt_c, first.bt_c)
    assert not np.array_equal(other.bt_c[: len(first.bt_c)], first.bt_c[: len(other.bt_c)])
    # the whole roast with seed 7 starts with these very samples (it only runs longer)
    n = len(first.time_s) - 1  # the short run's last sample may be cut by its stop
    np.testing.assert_array_equal(first.bt_c[:n], full.bt_c[:n])


def test_first_crack_threshold_when_nobody_marks_it(tmp_path):
    cfg = SidecarConfig(
        simulate=True, time_scale=0, seed=7, recordings_dir=str(tmp_path / "rec"), landing_dir=str(tmp_path / "landing"),
        virtual=VirtualR1Config(operator=OperatorPlan(marks_first_crack=False)), fcs_bt_c=190.0,
        stop_on="duration", max_duration_s=900,
    )
    session = parse_sidecar(run_sidecar(cfg).path.read_bytes(), "x")
    assert session.settings["event_detection"]["FCs"] == "bt>=190"
    fcs = session.events["FCs"]
    assert session.bt_c[fcs] >= 190.0 > session.bt_c[fcs - 1]


def test_crash_leaves_a_readable_prefix(roast):
    _, data, session = roast
    cut = data[: len(data) // 2]
    cut = cut[: cut.rfind(b"\n") + 40]  # dies in the middle of a line
    partial = parse_sidecar(cut, "crashed.sidecar.jsonl")
    assert not partial.settings["complete"] and partial.settings["torn_last_line"]
    assert 0 < len(partial.time_s) < len(session.time_s)
    np.testing.assert_array_equal(partial.bt_c, session.bt_c[: len(partial.time_s)])


def test_channel_mapping_is_applied(roast):
    _, data, session = roast
    lines = data.split(b"\n")
    header = orjson.loads(lines[0])
    header["channel_mapping"] = {"bt": "b", "et": "a"}
    swapped = parse_sidecar(b"\n".join([orjson.dumps(header), *lines[1:]]), "swapped")
    np.testing.assert_array_equal(swapped.bt_c, session.et_c)


def _file(*records) -> bytes:
    return b"\n".join(orjson.dumps(r) for r in records) + b"\n"


HEADER = {"type": "header", "format": "daena-sidecar", "version": 1, "source": "real",
          "channel_mapping": {"bt": "a", "et": "b"}, "started_at": "2026-11-18T10:00:00+00:00"}


def test_invalid_sample_becomes_nan():
    s = parse_sidecar(_file(HEADER, {"type": "sample", "t": 0, "a": 20.0, "b": 30.0, "h": 0},
                            {"type": "sample", "t": 1, "ok": False, "why": "read timeout"}), "x")
    assert s.bt_c[0] == 20.0 and math.isnan(s.bt_c[1]) and math.isnan(s.controls["heater"][1])
    assert not s.settings["complete"]


@pytest.mark.parametrize("records, kind", [
    ([{"type": "sample", "t": 0}], "missing_header"),
    ([{**HEADER, "format": "other"}], "not_sidecar"),
    ([{**HEADER, "version": 9}], "unsupported_version"),
    ([{**HEADER, "source": "made-up"}], "bad_header"),
    ([{**HEADER, "channel_mapping": {"bt": "a", "et": "a"}}], "bad_header"),
    ([HEADER], "no_samples"),
    ([HEADER, {"type": "sample", "t": 1, "a": 1, "b": 1}, {"type": "sample", "t": 1, "a": 1, "b": 1}], "time_not_increasing"),
    ([HEADER, {"type": "sample", "t": 0, "a": 1, "b": 1}, {"type": "event", "name": "CHARGE", "i": 5}], "bad_event"),
])
def test_bad_files_raise_invalid_session(records, kind):
    with pytest.raises(InvalidSession) as info:
        parse_sidecar(_file(*records), "bad.sidecar.jsonl")
    assert info.value.kind == kind and "bad.sidecar.jsonl" in str(info.value)


def test_a_recording_claiming_real_with_the_simulators_settings_never_lands_as_a_real_roast(tmp_path):
    """Only the virtual roaster writes a 'simulator' block (seed, thermal model, operator plan); a header that
    also says source 'real' contradicts itself (an edited file, a writer bug). Before, it was ingested as a
    real roast, so a simulated session could count wherever real roasts are meant; now it is rejected."""
    from daena_pipelines.db import connect
    from daena_pipelines.telemetry import ingest

    path = tmp_path / "claims-real.sidecar.jsonl"
    samples = [{"type": "sample", "t": t, "a": 20.0 + t, "b": 30.0 + t} for t in range(60)]
    path.write_bytes(_file({**HEADER, "simulator": {"seed": 7}}, *samples, {"type": "event", "name": "CHARGE", "i": 5}))
    with connect(tmp_path / "w.duckdb") as con:
        ingest.ingest(con, [path], tmp_path / "quarantine", workers=1)
        assert con.execute("SELECT count(*) FROM telemetry.sessions").fetchone()[0] == 0
        [(kind, message)] = con.execute("SELECT error_kind, message FROM telemetry.ingest_errors").fetchall()
    assert kind == "bad_header" and "simulator" in message


def test_broken_line_in_the_middle_names_the_line():
    data = _file(HEADER) + b"{not json\n" + _file({"type": "sample", "t": 0, "a": 1, "b": 1})
    with pytest.raises(InvalidSession, match="line 2") as info:
        parse_sidecar(data, "mid.sidecar.jsonl")
    assert info.value.kind == "bad_json"


def test_recorder_with_background_fsync_is_readable_while_open_and_closes(tmp_path):
    from daena_pipelines.device.recording import SessionRecorder

    recorder = SessionRecorder(tmp_path / "r.sidecar.jsonl", {k: v for k, v in HEADER.items() if k != "type"}, fsync=True)
    recorder.sample(0.0, {"a": 21.0, "b": 22.0})
    recorder.sample(1.0, None, "read timeout")
    open_copy = parse_sidecar(recorder.path.read_bytes(), "open")  # what a crash right now would leave
    assert len(open_copy.time_s) == 2 and not open_copy.settings["complete"]
    recorder.close({"end_reason": "duration"})
    assert not recorder._syncer.is_alive()
    closed = parse_sidecar(recorder.path.read_bytes(), "closed")
    assert closed.settings["complete"] and math.isnan(closed.bt_c[1])


def test_every_decoded_field_is_an_extra_channel(roast):
    _, _, session = roast
    assert set(session.extra) == {
        "exhaust_c", "device_ror_a_c_per_min", "ir_c", "pcb_c", "fan_rpm", "voltage", "coil_fan", "coil_fan2",
        "preheat_target_c", "device_timer_s"}
    charge = session.events["CHARGE"]
    assert session.extra["preheat_target_c"][charge] == 240 and session.extra["voltage"][charge] == 230
    assert session.extra["fan_rpm"][charge] == 900 + 260 * session.controls["fan"][charge]
    assert session.extra["device_timer_s"][charge + 60] == pytest.approx(session.time_s[charge + 60] - session.time_s[charge], abs=1)


def test_ibts_unit_read_as_artisan_does(tmp_path):
    """IBTS (rev3) with bt_channel 'b': BT from bytes 8-11, Artisan's IBTS mode. The infrared reading
    sees the cold beans at once and climbs without a turning point; channel A (the probe, now ET)
    dips to its turning point."""
    cfg = SidecarConfig(
        simulate=True, time_scale=0, seed=7, recordings_dir=str(tmp_path / "rec"), landing_dir=str(tmp_path / "landing"),
        virtual=VirtualR1Config(product_id=0xA27E, ibts=True, operator=OperatorPlan()), bt_channel="b",
        stop_on="duration", max_duration_s=600,
    )
    session = parse_sidecar(run_sidecar(cfg).path.read_bytes(), "ibts")
    assert session.settings["channel_mapping"] == {"bt": "b", "et": "a"}
    charge = session.events["CHARGE"]
    bt, probe = session.bt_c[charge:], session.et_c[charge:]
    assert bt[2] < 40 and np.all(np.diff(bt[5:120]) > -1.0)  # from the beans' own temperature, rising
    assert probe[0] > 150 and 60 < probe[:120].min() < 110  # the probe's turning point


def test_stepped_simulations_started_now_are_distinct_sessions(tmp_path):
    """Launched from the Launchpad with time_scale 0 and no start_at, every stepped roast (R1 or R2)
    got the same recording id, so its device.sidecar_sessions row replaced the last one's and an
    approval bound to an earlier such roast named this one too. Only a given start is reproducible."""
    from daena_pipelines.device.sidecar import build_sidecar

    def recording_id(**given) -> str:
        folders = {"recordings_dir": str(tmp_path / "rec"), "landing_dir": str(tmp_path / "landing")}
        return build_sidecar(SidecarConfig(simulate=True, time_scale=0, **folders, **given))[0].recording_id

    assert recording_id() != recording_id()
    assert recording_id(model="r2", start_at="2026-11-17T09:00:00+00:00") != recording_id(start_at="2026-11-17T09:00:00+00:00")
    assert recording_id(seed=3, start_at="2026-11-17T09:00:00+00:00") == recording_id(seed=3, start_at="2026-11-17T09:00:00+00:00")


def test_a_recording_written_under_a_clock_tie_or_step_ingests_with_every_sample(tmp_path):
    """Two polls less than 10 ms apart (the loop catching up after a stall under load, a real roaster too; at
    ×20 that is 0.5 ms of wall time) rounded to the same t, and the recording's own parse and the ingest
    rejected it whole (time_not_increasing; 838 points lost). The writer now keeps t strictly increasing."""
    from daena_pipelines.db import connect
    from daena_pipelines.device.recording import SessionRecorder
    from daena_pipelines.telemetry import ingest

    path = tmp_path / "tie.sidecar.jsonl"
    header = {k: v for k, v in HEADER.items() if k not in ("type", "format", "version")}
    recorder = SessionRecorder(path, header, fsync=False)
    times = [float(t) for t in range(60)]
    times[31] = 30.004  # rounds to 30.00 like the sample before: a tie
    times[40] = 38.5  # a clock step back (as after a wall-clock jump)
    for t in times:
        index = recorder.sample(t, {"a": 20.0 + t, "b": 30.0 + t})
        if index == 5:
            recorder.event("CHARGE", index, t, "state:roasting")
    recorder.close({"end_reason": "test"})
    session = parse_sidecar(path.read_bytes(), str(path))
    assert len(session.time_s) == 60 and np.all(np.diff(session.time_s) > 0)
    assert session.time_s[31] == pytest.approx(30.01) and session.time_s[40] == pytest.approx(39.01)
    with connect(tmp_path / "w.duckdb") as con:
        ingest.ingest(con, [path], tmp_path / "quarantine", workers=1)
        assert con.execute("SELECT count(*) FROM telemetry.ingest_errors").fetchone()[0] == 0
        assert con.execute("SELECT count(*) FROM telemetry.points").fetchone()[0] == 60
