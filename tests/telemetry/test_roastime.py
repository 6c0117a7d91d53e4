"""RoasTime JSON roasts. No real RoasTime file is in ../shared: these files are built from the fields
Artisan's RoasTime importer reads (docs/telemetry.md lists them and where they were read), with
values worked out by hand below."""
import json

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
        assert report.ignored == [str(landing / "settings.json")]  # ignored with a note, not quarantined
        assert [(p.split("/")[-1], kind) for p, kind, _m in report.rejected] == [("broken.json", "syntax")]
        row = con.execute("SELECT source_format, machine, control_unit FROM telemetry.sessions").fetchall()
        assert row == [("roastime_json", "Aillio Bullet R1", "r1_level")]
        drop_s, fcs_s, dry_end_s = con.execute("SELECT drop_s, fcs_s, dry_end_s FROM telemetry.roast_metrics").fetchone()
        assert (drop_s, fcs_s, dry_end_s) == (540.0, 440.0, 240.0)
    assert [p.name.split("-", 1)[1] for p in (tmp_path / "q").glob("*.json")] == ["broken.json"]
