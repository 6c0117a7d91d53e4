"""RoasTime JSON roasts. No real RoasTime file is in ../shared: these files are built from the fields
Artisan's RoasTime importer reads (docs/telemetry.md lists them and where they were read), with
values worked out by hand below."""
import json
import os
from collections import Counter

import numpy as np
import pytest

from daena_pipelines.telemetry import ingest
from daena_pipelines.telemetry.model import InvalidSession
from daena_pipelines.telemetry.roastime import parse_roastime


def roastime(**overrides) -> dict:
    """A 2 Hz roast of 600 s: charge at sample 20 (10 s), yellowing at 1-based 501, first crack
    at 1-based 901, drop at sample 1100 (0-based, 550 s)."""
    n = 1200
    t = np.arange(n) / 2.0
    since = np.clip(t - 10.0, 0, None)
    bt = np.where(t < 10, 200.0, 95.0 + 0.00025 * (since - 90.0) ** 2 + 0.12 * since)
    data = {
        "uid": "rt-0001",
        "roastName": "Ethiopia test",
        "beanName": "Guji natural",
        "comments": "built from the documented fields",
        "dateTime": 1763700000000,  # ms since the epoch
        "sampleRate": 2,
        "celsius": True,
        "beanTemperature": [round(float(x), 1) for x in bt],
        "drumTemperature": [round(float(x) + 40, 1) for x in bt[:-10]],  # 10 samples short: padded
        "exitTemperature": [round(float(x) + 20, 1) for x in bt],
        "roastStartIndex": 20,
        "indexYellowingStart": 501,
        "indexFirstCrackStart": 901,
        "indexFirstCrackEnd": 0,  # not marked
        "roastEndIndex": 1100,
        "weightGreen": 350.0,
        "weightRoasted": 301.0,
        "actions": {"actionTimeList": [
            {"index": 21, "value": 9, "ctrlType": 0},  # power P9 from sample 20
            {"index": 21, "value": 2, "ctrlType": 1},  # fan F2
            {"index": 401, "value": 6, "ctrlType": 0},  # P6 from sample 400 (200 s)
            {"index": 21, "value": 7, "ctrlType": 2},  # drum D7
        ]},
    }
    data.update(overrides)
    return data


def test_fields_map_to_a_session():
    session = parse_roastime(json.dumps(roastime()).encode(), "r.json")
    assert session.source_format == "roastime_json" and session.original_unit == "C"
    assert session.events == {"CHARGE": 20, "DRY_END": 500, "FCs": 900, "DROP": 1100}  # 1-based crack indices -1
    assert session.time_s[1100] - session.time_s[20] == 540.0  # 2 samples a second
    assert np.isnan(session.et_c[-10:]).all() and session.et_c[0] == 240.0
    assert session.controls["heater"][399] == 9 and session.controls["heater"][400] == 6 and np.isnan(session.controls["heater"][19])
    assert session.controls["fan"][1000] == 2 and session.controls["drum"][20] == 7 and session.control_unit == "r1_level"
    assert session.extra["Exhaust"][0] == 220.0
    assert (session.batch_weight_g, session.roasted_weight_g) == (350.0, 301.0)
    assert session.roasted_at.isoformat() == "2025-11-21T04:40:00+00:00"
    assert (session.title, session.beans, session.roast_uuid) == ("Ethiopia test", "Guji natural", "rt-0001")
    assert not session.charge_inferred


@pytest.mark.parametrize(("green", "roasted", "expected"), [
    (490, "0421", (490.0, 421.0)),  # as in a real RoasTime file (rockpyer/bullet_coffee_roasting, uid 1c67d2c5)
    ("350", "707.5", (350.0, 707.5)),
    (490, "", (490.0, None)), (490, "nan", (490.0, None)), (490, "inf", (490.0, None)), (490, "n/a", (490.0, None)),
    (490, 0, (490.0, None)), (490, True, (490.0, None)),
])
def test_weights_may_be_written_as_text(green, roasted, expected):
    # RoasTime writes the roasted weight as text in 48 of 56 real files; Artisan's importer reads
    # both weights with float(), so numeric text counts and anything else is "not filled"
    session = parse_roastime(json.dumps(roastime(weightGreen=green, weightRoasted=roasted)).encode(), "w.json")
    assert (session.batch_weight_g, session.roasted_weight_g) == expected


def test_fahrenheit_files_are_converted():
    celsius = parse_roastime(json.dumps(roastime()).encode(), "c.json")
    data = roastime(celsius=False)
    data["beanTemperature"] = [x * 9 / 5 + 32 for x in data["beanTemperature"]]
    fahrenheit = parse_roastime(json.dumps(data).encode(), "f.json")
    assert fahrenheit.original_unit == "F"
    np.testing.assert_allclose(fahrenheit.bt_c, celsius.bt_c, atol=1e-9)


def test_defaults_when_events_are_missing():
    data = roastime()
    for key in ("roastStartIndex", "roastEndIndex", "sampleRate"):
        del data[key]
    session = parse_roastime(json.dumps(data).encode(), "d.json")
    assert session.events["CHARGE"] == 0 and session.charge_inferred  # Artisan takes the first sample
    assert session.events["DROP"] == 1199 and session.sample_interval_s == 0.5  # last sample; 2 Hz


@pytest.mark.parametrize("data, kind", [
    (b"[1, 2]", "not_a_dict"),
    (b'{"beanTemperature": "hot"}', "missing_field"),
    (b'{"beanTemperature": [1, 2, 3], "sampleRate": 0}', "bad_value"),
    (b'{"beanTemperature": [1, 2, 3], "roastStartIndex": 2, "roastEndIndex": 1}', "event_order"),
    (b'{"beanTemperature": [1, 2,', "syntax"),
])
def test_bad_roastime_files_get_a_precise_error(data, kind):
    with pytest.raises(InvalidSession) as info:
        parse_roastime(data, "bad.json")
    assert info.value.kind == kind


def test_landing_dispatches_json_by_content(tmp_path):
    import duckdb

    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "roast.json").write_text(json.dumps(roastime()))
    (landing / "settings.json").write_text(json.dumps({"theme": "dark", "temperatures": [1, 2]}))  # stray JSON
    (landing / "broken.json").write_text(json.dumps(roastime())[:5000])  # a RoasTime roast, cut short
    roasts, others = ingest.discover(landing)
    assert [p.name for p in roasts] == ["broken.json", "roast.json"] and [p.name for p in others] == ["settings.json"]
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        report = ingest.ingest(con, sorted(landing.iterdir()), tmp_path / "q", workers=1)
        assert [(path, why) for path, why in report.ignored] == [  # ignored with a note, not quarantined
            (str(landing / "settings.json"), "its content is not a roast in the format its name allows")]
        assert [(p.split("/")[-1], kind) for p, kind, _m in report.rejected] == [("broken.json", "syntax")]
        row = con.execute("SELECT source_format, machine, control_unit FROM telemetry.sessions").fetchall()
        assert row == [("roastime_json", "Aillio Bullet R1", "r1_level")]
        drop_s, fcs_s, dry_end_s = con.execute("SELECT drop_s, fcs_s, dry_end_s FROM telemetry.roast_metrics").fetchone()
        assert (drop_s, fcs_s, dry_end_s) == (540.0, 440.0, 240.0)
    assert [p.name.split("-", 1)[1] for p in (tmp_path / "q").glob("*.json")] == ["broken.json"]


class CountingOpen:
    """`ingest.open_regular` (how the ingest and the sensor open every file) counting, per file,
    the opens and the bytes read."""

    def __init__(self) -> None:
        self.opens: Counter = Counter()
        self.bytes_read: Counter = Counter()
        self.open_regular = ingest.open_regular

    def __call__(self, path):
        name = os.path.basename(path)
        self.opens[name] += 1
        file, size = self.open_regular(path)
        counter, read = self.bytes_read, file.read

        def counted_read(*n):
            data = read(*n)
            counter[name] += len(data)
            return data

        file.read = counted_read
        return file, size


def suffixless_landing(root) -> dict[str, bytes]:
    """A RoasTime roasts folder: roasts saved under their id alone (as in RoasTime's own folder, and
    in the 56 real files of rockpyer/bullet_coffee_roasting), beside other files without a suffix."""
    roast = json.dumps(roastime(uid="06Qd5dTRJi8rc550Ql-vp"), indent=2).encode()  # built from the documented fields
    files = {
        "06Qd5dTRJi8rc550Ql-vp": roast,
        "1c67d2c5-c821-4be8-b648-7f404c53cdf2": roast[:3000],  # a RoasTime roast cut short: rejected
        "thumbnail": bytes(range(256)) * 40,  # binary
        "NOTES": b"roast notes, plain text\n" * 50,
        "machine": json.dumps({"uid": "m1", "name": "Bullet", "firmware": 7, "temperatures": [1, 2]}).encode(),  # JSON, no roast
        ".DS_Store": b"\x00\x00\x00\x01Bud1" + bytes(200),
    }
    for name, data in files.items():
        (root / name).write_bytes(data)
    git = root / ".git" / "objects" / "ab"  # a repository kept in the folder: never walked
    git.mkdir(parents=True)
    (git / "cdef0123").write_bytes(json.dumps(roastime(uid="in-git")).encode())
    return files


def test_suffixless_roastime_files_are_ingested_and_other_suffixless_files_ignored(tmp_path, monkeypatch):
    import duckdb

    landing = tmp_path / "landing"
    landing.mkdir()
    files = suffixless_landing(landing)
    assert [p.name for p in ingest.walk(landing)] == sorted(files)  # .git is not walked
    counting = CountingOpen()
    monkeypatch.setattr(ingest, "open_regular", counting)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        report = ingest.ingest(con, list(ingest.walk(landing)), tmp_path / "q", workers=1)
        assert con.execute("SELECT source_format, roast_uuid, source_path FROM telemetry.sessions").fetchall() == [
            ("roastime_json", "06Qd5dTRJi8rc550Ql-vp", str(landing / "06Qd5dTRJi8rc550Ql-vp"))]
        errors = con.execute("SELECT source_path, error_kind FROM telemetry.ingest_errors").fetchall()
        assert errors == [(str(landing / "1c67d2c5-c821-4be8-b648-7f404c53cdf2"), "syntax")]
    assert sorted(os.path.basename(path) for path, _why in report.ignored) == [".DS_Store", "NOTES", "machine", "thumbnail"]
    assert [p.name.split("-", 1)[1] for p in (tmp_path / "q").iterdir() if p.is_file() and not p.name.endswith(".txt")] == [
        "1c67d2c5-c821-4be8-b648-7f404c53cdf2"]  # the non-roasts are not quarantined
    # each file opened once (the main process does not read them); a head that is no JSON object
    # is all that is read of a file
    assert counting.opens == Counter(files.keys())
    assert all(counting.bytes_read[name] <= 256 for name in ("thumbnail", "NOTES", ".DS_Store"))
    assert counting.bytes_read["06Qd5dTRJi8rc550Ql-vp"] == len(files["06Qd5dTRJi8rc550Ql-vp"])


def test_a_suffixless_file_over_the_size_limit_is_not_read(tmp_path, monkeypatch):
    import duckdb

    landing = tmp_path / "landing"
    landing.mkdir()
    (landing / "huge").write_bytes(json.dumps(roastime()).encode())
    monkeypatch.setattr(ingest, "MAX_FILE_BYTES", 1000)
    counting = CountingOpen()
    monkeypatch.setattr(ingest, "open_regular", counting)
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        report = ingest.ingest(con, [landing / "huge"], tmp_path / "q", workers=1)
        assert con.execute("SELECT count(*) FROM telemetry.ingest_errors").fetchone()[0] == 0
    assert report.ignored == [(str(landing / "huge"), f"{(landing / 'huge').stat().st_size} bytes, over the 1000-byte limit: "
                               "not read, so not taken for a roast")]
    assert counting.bytes_read["huge"] == 0 and not ingest.content_matches(landing / "huge", ingest.NO_SUFFIX)


def test_landing_sensor_reads_a_suffixless_file_only_when_it_is_new_or_changed(data_env, monkeypatch):
    import dagster as dg

    from daena_pipelines.definitions import defs

    landing = data_env / "landing"
    files = suffixless_landing(landing)
    counting = CountingOpen()
    monkeypatch.setattr(ingest, "open_regular", counting)
    sensor = defs.resolve_sensor_def("landing_folder_sensor")
    first = sensor.evaluate_tick(dg.build_sensor_context(resources=defs.resources))
    requested = first.run_requests[0].run_config["ops"]["telemetry_ingest"]["config"]["paths"]
    assert requested == [str(landing / "06Qd5dTRJi8rc550Ql-vp"), str(landing / "1c67d2c5-c821-4be8-b648-7f404c53cdf2")]
    assert counting.opens == Counter(files.keys())  # each looked at once; nothing under .git
    counting.opens.clear()
    idle = sensor.evaluate_tick(dg.build_sensor_context(cursor=first.cursor, resources=defs.resources))
    assert idle.run_requests == [] and not counting.opens  # nothing changed: nothing read
    (landing / "machine").write_bytes(json.dumps({"uid": "m1", "name": "Bullet R1 V2"}).encode())
    (landing / "NOTES").write_bytes(json.dumps(roastime(uid="notes-now-a-roast")).encode())
    changed = sensor.evaluate_tick(dg.build_sensor_context(cursor=idle.cursor, resources=defs.resources))
    assert counting.opens == Counter(["machine", "NOTES"])  # the two changed files alone
    assert changed.run_requests[0].run_config["ops"]["telemetry_ingest"]["config"]["paths"] == [str(landing / "NOTES")]
    # a cursor written before the content check (roast files only) still works
    legacy = json.dumps({str(landing / "06Qd5dTRJi8rc550Ql-vp"): json.loads(first.cursor)["roasts"][str(landing / "06Qd5dTRJi8rc550Ql-vp")]})
    after_upgrade = sensor.evaluate_tick(dg.build_sensor_context(cursor=legacy, resources=defs.resources))
    assert after_upgrade.run_requests[0].run_config["ops"]["telemetry_ingest"]["config"]["paths"] == [
        str(landing / "1c67d2c5-c821-4be8-b648-7f404c53cdf2"), str(landing / "NOTES")]
