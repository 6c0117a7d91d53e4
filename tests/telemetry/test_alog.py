from pathlib import Path

import numpy as np
import pytest

from daena_pipelines.telemetry.alog import parse_alog
from daena_pipelines.telemetry.model import InvalidSession
from tests.telemetry.profiles import alog_bytes, profile


def test_celsius_profile_becomes_a_session():
    session = parse_alog(alog_bytes(profile()), "x.alog")
    assert session.source_format == "artisan_alog" and session.source == "real"
    assert session.events["CHARGE"] == 10 and "DROP" in session.events and "FCe" not in session.events
    assert session.title == "Test\nroast"  # Artisan's escaped line break decoded
    assert session.batch_weight_g == 250.0 and session.roasted_weight_g == 212.0
    # slider events: Burner=8.0 -> 70 % from CHARGE on, Air=4.0 -> 30 % from 30 samples later
    assert np.isnan(session.controls["heater"][9]) and session.controls["heater"][10] == 70
    assert session.controls["fan"][40] == 30 and session.control_unit == "pct"


def test_fahrenheit_profile_is_converted_to_celsius():
    celsius = parse_alog(alog_bytes(profile("C")), "c.alog")
    fahrenheit = parse_alog(alog_bytes(profile("F")), "f.alog")
    assert fahrenheit.original_unit == "F"
    np.testing.assert_allclose(fahrenheit.bt_c, celsius.bt_c, atol=0.01)
    np.testing.assert_allclose(fahrenheit.et_c, celsius.et_c, atol=0.01)


def test_fahrenheit_computed_block_and_dropouts_convert():
    data = profile("F", computed={"DROP_BT": 410.0, "fcs_ror": 9.0, "AUC": 900, "AUCbase": 212.0, "AUCbegin": "TP", "FCs_time": 480.0})
    data["temp2"][50] = -1
    session = parse_alog(alog_bytes(data), "f.alog")
    assert np.isnan(session.bt_c[50])  # -1 is a dropout in either unit, never -1 °F converted
    computed = session.artisan_computed
    assert computed["DROP_BT"] == pytest.approx(210.0)
    assert computed["fcs_ror"] == pytest.approx(5.0)
    assert computed["AUC"] == 900  # Artisan's AUC is °C·min even in a Fahrenheit profile
    assert computed["FCs_time"] == 480.0  # times are not temperatures
    assert session.settings == {"auc_base_c": pytest.approx(100.0), "auc_begin": "TP"}  # no version: the oldest, no live TP fallback


@pytest.mark.parametrize(
    "mutate, kind",
    [
        (lambda b: b[: len(b) // 2], "syntax"),  # truncated
        (lambda b: b"[1, 2, 3]", "not_a_dict"),
        (lambda b: b"{'timex': __import__('os').getcwd()}", "syntax"),  # hostile literal
        (lambda b: b"\xff\xfe{'a': 1}", "encoding"),
        (lambda b: b"[" * 100000 + b"]" * 100000, "syntax"),
    ],
)
def test_bad_bytes_get_a_precise_error(mutate, kind):
    with pytest.raises(InvalidSession) as info:
        parse_alog(mutate(alog_bytes(profile())), "bad.alog")
    assert info.value.kind == kind and str(info.value)


@pytest.mark.parametrize(
    "overrides, kind, words",
    [
        ({"temp2": None}, "missing_field", "temp2"),
        ({"timex": "not a list"}, "bad_value", "timex"),
        ({"temp1": [1.0, 2.0]}, "length_mismatch", "temp1 2"),
        ({"timeindex": [200, 0, 0, 0, 0, 0, 100, 0]}, "event_order", "CHARGE"),
        ({"timeindex": [5, 0, 0, 0, 0, 0, 99999, 0]}, "bad_events", "DROP"),
        ({"mode": "K"}, "bad_unit", "mode"),
        ({"timex": [], "temp1": [], "temp2": []}, "empty_profile", "0 samples"),
    ],
)
def test_structural_problems_get_a_precise_error(overrides, kind, words):
    with pytest.raises(InvalidSession) as info:
        parse_alog(alog_bytes(profile(**overrides)), "bad.alog")
    assert info.value.kind == kind
    assert words in str(info.value)


def test_time_going_backwards_names_the_sample():
    data = profile()
    data["timex"][7] = data["timex"][6]
    with pytest.raises(InvalidSession, match=r"timex\[7\]"):
        parse_alog(alog_bytes(data), "bad.alog")


def test_a_profile_without_charge_counts_from_the_recordings_start_and_says_so():
    data = profile(timeindex=[-1, 0, 200, 0, 0, 0, 290, 0])
    session = parse_alog(alog_bytes(data), "no-charge.alog")
    assert session.charge_inferred and session.events["CHARGE"] == 0
    assert session.origin_s == 0.0  # Artisan measures such profiles from the recording's zero
    assert parse_alog(alog_bytes(profile()), "a.alog").charge_inferred is False


def test_unicode_escapes_in_text_are_unescaped():
    session = parse_alog(alog_bytes(profile(title="Caf\\u00e9 \\ud83d\\ude00\\nline", beans="Sidama\\u2013Guji")), "u.alog")
    assert session.title == "Café \U0001f600\nline" and session.beans == "Sidama–Guji"


def test_session_id_ignores_metadata_edits_but_not_measurements_or_event_marks():
    base = parse_alog(alog_bytes(profile()), "a.alog")
    renamed = parse_alog(alog_bytes(profile(title="edited", roastingnotes="new notes")), "b.alog")
    assert base.session_id == renamed.session_id
    data = profile()
    data["temp2"][100] += 1.0
    assert parse_alog(alog_bytes(data), "c.alog").session_id != base.session_id
    remarked = profile()
    remarked["timeindex"][2] += 3  # FCs marked three samples later
    assert parse_alog(alog_bytes(remarked), "d.alog").session_id != base.session_id


# A computed block with every DRY-END-dependent value (numbers are placeholders, not Artisan's).
_DRY_BLOCK = {"DRY_time": 240.0, "DRY_BT": 150.0, "dryphasetime": 240.0, "midphasetime": 240.0, "dry_phase_ror": 9.0,
              "mid_phase_ror": 5.0, "dry_phase_delta_temp": 40.0, "mid_phase_delta_temp": 45.0, "dry_phase_AUC": 100,
              "mid_phase_AUC": 200, "FCs_time": 480.0, "DROP_time": 590.0, "totaltime": 590.0, "AUC": 300}


@pytest.mark.parametrize(
    "version, dry_end_marked, dropped",
    [
        # before 2.4.4 every DRY value came from the threshold even over a mark: none kept
        ("2.1.2", True, {"DRY_time", "DRY_BT", "dryphasetime", "midphasetime", "dry_phase_ror", "mid_phase_ror",
                         "dry_phase_delta_temp", "mid_phase_delta_temp", "dry_phase_AUC", "mid_phase_AUC"}),
        (None, True, {"DRY_time", "DRY_BT", "dryphasetime", "midphasetime", "dry_phase_ror", "mid_phase_ror",
                      "dry_phase_delta_temp", "mid_phase_delta_temp", "dry_phase_AUC", "mid_phase_AUC"}),
        # 2.4.4: DRY time/BT from the mark, the phase times (and the Maillard RoR) still from the threshold
        ("2.4.4", True, {"dryphasetime", "midphasetime", "mid_phase_ror"}),
        ("2.4.6", True, set()),
        ("4.2.0", True, set()),
        # unmarked, old: Artisan's DRY END is the threshold's, as ours: all kept
        ("2.1.2", False, set()),
    ],
)
def test_artisan_values_computed_under_an_older_dry_end_rule_are_not_kept(version, dry_end_marked, dropped):
    """Synthetic profiles: which of Artisan's DRY-END-dependent values are kept, by the Artisan
    version that wrote the file (rules read in Artisan's history, docs/telemetry.md)."""
    data = profile(computed=dict(_DRY_BLOCK))
    if version:
        data["version"] = version
    if not dry_end_marked:
        data["timeindex"][1] = 0
    kept = parse_alog(alog_bytes(data), "x.alog").artisan_computed
    assert set(_DRY_BLOCK) - set(kept) == dropped


def test_phase_aucs_bounded_by_an_unset_dry_end_are_not_kept():
    """Synthetic profile as Artisan >= 2.4.4 writes it without a DRY END mark: no DRY_time, and
    phase AUCs over CHARGE-DROP and AUC begin-FCs, which are no phase values."""
    block = {k: v for k, v in _DRY_BLOCK.items() if k not in ("DRY_time", "DRY_BT", "dry_phase_ror", "mid_phase_ror",
                                                             "dry_phase_delta_temp", "mid_phase_delta_temp")}
    data = profile(computed=block, version="4.2.0")
    data["timeindex"][1] = 0
    kept = parse_alog(alog_bytes(data), "x.alog").artisan_computed
    assert "dry_phase_AUC" not in kept and "mid_phase_AUC" not in kept
    assert kept["dryphasetime"] == 240.0 and kept["AUC"] == 300  # the threshold-based phase times stay


def test_total_time_cut_to_whole_seconds_gives_way_to_drop_time():
    """Synthetic: Artisan 2.1.2 and older wrote totaltime as whole seconds (an int), the same span
    as DROP_time, which keeps 0.1 s."""
    data = profile(computed={"totaltime": 733, "DROP_time": 734.0}, version="2.1.2")
    assert parse_alog(alog_bytes(data), "x.alog").artisan_computed["totaltime"] == 734.0
    data = profile(computed={"totaltime": 733.999, "DROP_time": 734.0}, version="2.8.0")
    assert parse_alog(alog_bytes(data), "x.alog").artisan_computed["totaltime"] == 733.999


def test_phase_times_cut_to_whole_seconds_are_not_kept():
    """Hand-worked, as Artisan 1.4/1.5 wrote them (int() of each span, e.g. a 246.94-s development
    written as 246 in a held-out SR700 file): such phase times are not kept, float ones are."""
    data = profile(computed={"totaltime": 733, "dryphasetime": 300, "midphasetime": 186, "finishphasetime": 246,
                             "DROP_time": 734.0}, version="1.4.0")
    kept = parse_alog(alog_bytes(data), "x.alog").artisan_computed
    assert not {"dryphasetime", "midphasetime", "finishphasetime"} & kept.keys() and kept["totaltime"] == 734.0
    data = profile(computed={"finishphasetime": 246.9, "DROP_time": 734.0}, version="1.6.0")
    assert parse_alog(alog_bytes(data), "x.alog").artisan_computed["finishphasetime"] == 246.9


def test_negative_times_of_a_profile_without_charge_are_not_kept():
    """Synthetic: Artisan up to 2.8 took a missing CHARGE (index -1) as the last sample, so the
    total and drying times of such a profile with FCs and DROP came out negative."""
    data = profile(computed={"totaltime": -40.0, "dryphasetime": -300.0, "midphasetime": 240.0,
                             "finishphasetime": 110.0, "DROP_time": 610.0}, version="2.8.4")
    data["timeindex"][0] = -1
    kept = parse_alog(alog_bytes(data), "x.alog").artisan_computed
    assert "totaltime" not in kept and "dryphasetime" not in kept
    assert kept["midphasetime"] == 240.0 and kept["finishphasetime"] == 110.0 and kept["DROP_time"] == 610.0


def test_curves_exchanged_after_recording_are_read_from_the_charge_annotation():
    """Artisan saves each event annotation's label positions (`anno_positions`: key, temperature
    label x/y, time label x/y) in the order it first drew them; the CHARGE labels sit the same
    distance above and below BT's CHARGE reading at the time. Hand-made positions, placed as
    Artisan places them (docs/telemetry.md, "Curves exchanged after recording")."""
    from daena_pipelines.telemetry.alog import profile_to_session

    def curve(anno_positions, **overrides):
        data = profile(version="3.4.0", computed={"AUC": 300, "AUCbegin": "TP", "AUCbase": 100},
                       anno_positions=anno_positions, **overrides)
        return profile_to_session(data).settings.get("live_tp_curve")

    data = profile()
    charge, et, bt = data["timeindex"][0], data["temp1"][10], data["temp2"][10]
    at_et = [0, data["timex"][charge], et + 22, data["timex"][charge], et - 22]
    at_bt = [0, data["timex"][charge], bt + 22, data["timex"][charge], bt - 22]
    tp, fcs, drop = [-1, 30.0, 150.0, 30.0, 110.0], [2, 500.0, 210.0, 500.0, 170.0], [6, 610.0, 220.0, 610.0, 180.0]
    assert curve([at_et, fcs, drop, tp]) == "ET"  # TP drawn after DROP: saved by the recording session
    assert curve([at_et, tp, fcs, drop]) == "none"  # time order: reopened, the live TP is gone
    assert curve([at_et, fcs, drop]) == "none"
    assert curve([at_bt, fcs, drop, tp]) is None  # recorded as saved
    assert curve([[0, 30.0, et + 25, 30.0, et - 10], fcs, drop, tp]) is None  # a dragged label tells nothing
    assert curve([at_et, fcs, drop, tp], temp2=data["temp1"]) is None  # ET = BT at CHARGE: undecided
    assert curve(None) is None and curve([[0, 1.0]]) is None
    # only for an AUC begun at TP
    data = profile(computed={"AUC": 300, "AUCbegin": "CHARGE", "AUCbase": 100}, anno_positions=[at_et, fcs, drop, tp])
    assert "live_tp_curve" not in profile_to_session(data).settings


def test_a_computed_block_written_before_charge_was_set_counts_from_the_recordings_zero():
    """computedProfileInformation writes CHARGE_BT/ET whenever CHARGE is set and measures every
    event time from it (from the recording's zero when unset); a block without them in a file with
    CHARGE marked was computed before CHARGE was set (held-out 26-04-12_ma_no41: TP and FCs 12.9 s
    later than ours, its CHARGE being 12.9 s into the recording). Hand-made profile."""
    data = profile(computed={"TP_time": 110.0, "FCs_time": 500.0, "totaltime": 600.0, "TP_BT": 90.0})
    del data["computed"]["CHARGE_ET"], data["computed"]["CHARGE_BT"]
    charge_t = data["timex"][data["timeindex"][0]]  # 20 s
    computed = parse_alog(alog_bytes(data), "x.alog").artisan_computed
    assert computed["TP_time"] == pytest.approx(110.0 - charge_t) and computed["FCs_time"] == pytest.approx(480.0)
    assert "totaltime" not in computed and computed["TP_BT"] == 90.0
    data["computed"]["CHARGE_BT"] = -1  # written (a dropout at CHARGE): times from CHARGE, kept as they are
    computed = parse_alog(alog_bytes(data), "x.alog").artisan_computed
    assert computed["TP_time"] == 110.0 and computed["totaltime"] == 600.0


def test_an_artisan_profile_exported_as_json_is_read_like_its_alog(tmp_path):
    """Artisan's File > Export > JSON (`exportJSON`) writes the same profile dict as an .alog with
    Python's json.dump — true/false/null, NaN for a float that is not a number — and Import >
    JSON reads it back (docs/telemetry.md, "Artisan profiles exported as JSON"). Hand-made
    profile (tests/telemetry/profiles.py); a ``.json`` roast is told from a RoasTime one by content."""
    import json

    from daena_pipelines.telemetry import ingest
    from daena_pipelines.telemetry.alog import parse_artisan_json
    from daena_pipelines.telemetry.metrics import roast_metrics

    data = profile(version="4.0.2", flavors_total_correction=0, viewerMode=False, plus_store=None,
                   computed={"TP_time": 90.0, "AUC": 500, "AUCbegin": "TP", "AUCbase": 100.0})
    exported = json.dumps(data | {"computed": data["computed"] | {"det": float("nan")}}, ensure_ascii=True).encode()
    assert b"NaN" in exported and b"false" in exported and b"null" in exported
    from_json, from_alog = parse_artisan_json(exported, "roast.json"), parse_alog(alog_bytes(data), "roast.alog")
    assert from_json.source_format == "artisan_json" and from_alog.source_format == "artisan_alog"
    assert from_json.settings == from_alog.settings and from_json.settings["saved_by"] == "recording"  # 0 stays an int
    assert from_json.events == from_alog.events
    assert {k: v for k, v in from_json.artisan_computed.items() if k != "det"} == from_alog.artisan_computed
    nan = np.full(len(from_json.time_s), np.nan)
    assert roast_metrics(from_json, nan) == roast_metrics(from_alog, nan)
    (tmp_path / "export.json").write_bytes(exported)
    (tmp_path / "settings.json").write_text(json.dumps({"timex": "not a profile"}))  # no BT curve: no Artisan profile
    assert [ingest.parser_for(tmp_path / name) for name in ("export.json", "settings.json")] == [ingest.INPUT_FORMATS[".json"].parse, None]
    with pytest.raises(InvalidSession) as info:
        parse_artisan_json(exported[:4000], "cut.json")
    assert info.value.kind == "syntax"


def test_a_json_that_names_artisan_keys_below_its_top_level_is_ignored_not_rejected(tmp_path):
    """Issue #10: a stray .json is ignored with a note, not quarantined as a bad roast. Whether a
    .json is an Artisan profile is decided by its top-level keys: a tool's column list or a
    collection that nests profiles names "timex" and "temp2" too (hand-made files)."""
    import json

    from daena_pipelines.db import connect
    from daena_pipelines.defs.telemetry.sensors import fingerprints
    from daena_pipelines.telemetry import ingest

    data = profile()
    land = tmp_path / "land"
    land.mkdir()
    (land / "columns.json").write_text(json.dumps({"tool": "alog-to-image", "columns": ["timex", "temp1", "temp2"]}))
    (land / "collection.json").write_text(json.dumps({"roasts": [data]}))
    (land / "export.json").write_text(json.dumps(data))
    (land / "broken.json").write_text(json.dumps({**data, "mode": "K"}))  # an Artisan profile with an error
    with connect(tmp_path / "w.duckdb") as con:
        report = ingest.ingest(con, sorted(ingest.walk(land)), tmp_path / "q", workers=1)
        assert len(report.loaded) == 1
        assert [(Path(p).name, kind) for p, kind, _m in report.rejected] == [("broken.json", "bad_unit")]
        assert sorted(Path(p).name for p, _why in report.ignored) == ["collection.json", "columns.json"]
        assert all("top level" in why for _p, why in report.ignored)
        assert con.execute("SELECT count(*) FROM telemetry.ingest_errors").fetchone()[0] == 1
    assert [p.name.endswith("-broken.json") for p in (tmp_path / "q").rglob("*.json")] == [True]
    roasts, others = fingerprints([land])  # the landing sensor decides alike: no run for the stray files
    assert sorted(Path(p).name for p in roasts) == ["broken.json", "export.json"]
    assert sorted(Path(p).name for p in others) == ["collection.json", "columns.json"]
    assert [p.name for p in ingest.discover(land)[1]] == ["collection.json", "columns.json"]


def test_a_green_beans_temperature_that_is_not_finite_is_refused_by_key():
    """Python's json (Artisan's JSON export) writes an infinite float as Infinity: taken as the
    green beans' temperature it gave a drying-phase RoR and rise of -inf, and the stored setting
    became null (JSON has no infinity), so a recompute read 'not entered' and gave other values.
    Hand-made profile (tests/telemetry/profiles.py)."""
    import json

    from daena_pipelines.telemetry.alog import parse_artisan_json

    data = profile(version="4.0.2", computed={"DRY_time": 240.0})
    for greens in (float("inf"), float("-inf"), float("nan")):
        with pytest.raises(InvalidSession, match="greens_temp") as info:
            parse_artisan_json(json.dumps({**data, "greens_temp": greens}).encode(), "roast.json")
        assert info.value.kind == "bad_value"
    assert parse_artisan_json(json.dumps({**data, "greens_temp": 20}).encode(), "roast.json").settings["greens_temp_c"] == 20.0
