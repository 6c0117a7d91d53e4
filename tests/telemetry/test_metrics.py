import numpy as np
import pytest

from daena_pipelines.telemetry.metrics import (
    DEFAULT_ROR, area_under_curve, crash_episodes, flick, rate_of_rise, roast_metrics, spike_count, turning_point,
)
from daena_pipelines.telemetry.model import RoastSession


def test_rate_of_rise_of_a_straight_line_is_its_slope_even_with_dropouts():
    t = np.arange(0, 300, 2.0)
    bt = 100 + 0.2 * t  # 12 °C/min
    bt[[20, 21, 50]] = np.nan
    ror = rate_of_rise(t, bt, 0, len(t), 15)
    np.testing.assert_allclose(ror[np.isfinite(ror)], 12.0, atol=1e-9)
    assert np.isfinite(ror).sum() >= len(t) - 3


def test_rate_of_rise_stays_inside_charge_to_drop():
    t = np.arange(0, 100, 1.0)
    ror = rate_of_rise(t, 50 + t, 10, 60, 15)
    assert np.isnan(ror[:10]).all() and np.isnan(ror[60:]).all() and np.isfinite(ror[10:60]).all()


def test_turning_point_takes_the_latest_of_equal_minima_before_first_crack():
    bt = np.array([200, 150, 120, 110, 110, 112, 130, 100, 140.0])
    assert turning_point(bt, {"CHARGE": 0, "DRY_END": 3, "FCs": 7}) == 4  # DRY END does not bound it
    assert turning_point(bt, {"CHARGE": 0}) == 7  # no FCs/DROP: the search runs to the end


def test_area_under_curve_is_artisans_segment_trapezoid():
    t = np.arange(0, 121, 1.0)
    bt = np.full(121, 150.0)
    bt[:60] = 90.0  # below the 100 °C base for the first minute: contributes nothing
    # segments (i-1, i) for i = 1..119: one straddling the step (mean 120 -> 20), 59 at 50
    assert area_under_curve(t, bt, 0, 120, 100.0) == pytest.approx((20 + 59 * 50) / 60)
    bt[100] = np.nan  # a dropout zeroes both segments that touch it
    assert area_under_curve(t, bt, 0, 120, 100.0) == pytest.approx((20 + 57 * 50) / 60)


def _ror_curve(shape):
    t = np.arange(0, 600, 1.0)
    return t, shape(t)


def test_crash_detected_on_a_sharp_fall_at_first_crack():
    t, ror = _ror_curve(lambda t: np.where(t < 480, 10 - t / 120, np.maximum(6 - (t - 480) / 5, 1.0)))
    episodes = crash_episodes(t, ror, 0, len(t), DEFAULT_ROR)
    assert episodes and t[episodes[0][0]] == pytest.approx(480 + 15, abs=16)


def test_no_crash_on_a_steady_decline():
    t, ror = _ror_curve(lambda t: 15 - t / 60)  # 1 °C/min per minute: the textbook decline
    assert crash_episodes(t, ror, 0, len(t), DEFAULT_ROR) == []


def test_flick_is_a_late_rise_after_the_decline():
    t, declining = _ror_curve(lambda t: 12 - t / 60)
    events = {"CHARGE": 0, "FCs": 450, "DROP": 599}
    assert not flick(t, declining, events, DEFAULT_ROR)
    flicking = declining.copy()
    flicking[560:] = flicking[559] + (t[560:] - 559) / 15  # +2.7 °C/min in the last 40 s
    assert flick(t, flicking, events, DEFAULT_ROR)


def _spikes_by_definition(t, ror, lo, hi, settings):
    """Spikes counted straight from the definition: each sample against np.nanmedian of the
    samples within ±round(30 s / median step) of it, runs of consecutive spikes counted once."""
    r = ror[lo:hi]
    step = np.median(np.diff(t[lo:hi]))
    half = min(max(1, int(round(30.0 / step))), len(r))
    spike = []
    for i in range(len(r)):
        window = r[max(0, i - half) : i + half + 1]
        window = window[~np.isnan(window)]
        spike.append(bool(window.size) and r[i] - np.median(window) >= settings.spike_c_per_min)
    return sum(1 for i, s in enumerate(spike) if s and (i == 0 or not spike[i - 1]))


def test_spike_count_follows_its_definition_with_gaps_and_short_series():
    # spike_count sorts only the windows of candidates found through a lower bound of the median:
    # a missed candidate would be a missed spike
    rng = np.random.default_rng(11)
    total = 0
    for _ in range(150):
        n = int(rng.choice([3, 4, 7, 30, 120, 400]))
        t = np.cumsum(rng.uniform(0.5, 3.5, n))
        ror = 15 - t / 60 + rng.normal(0, rng.choice([0.0, 0.2, 2.5]), n)
        bumps = rng.integers(0, n, 6)
        ror[bumps] += rng.uniform(4.5, 7, 6)  # many within a fraction of a degree of the threshold
        ror[rng.random(n) < rng.choice([0.0, 0.05, 0.3])] = np.nan
        if rng.random() < 0.2:
            ror[rng.integers(0, n) :][: int(rng.integers(1, 40))] = np.nan  # a gap
        lo, hi = sorted(int(x) for x in rng.integers(0, n + 1, 2))
        if hi - lo < 3:
            continue
        expected = _spikes_by_definition(t, ror, lo, hi, DEFAULT_ROR)
        assert spike_count(t, ror, lo, hi, DEFAULT_ROR) == expected
        total += expected
    assert total > 50  # the series do carry spikes


def test_phases_and_dtr_from_events():
    t = np.arange(0, 700, 1.0)
    bt = np.concatenate([np.linspace(200, 100, 90), np.linspace(100, 215, 610)])
    session = RoastSession("artisan_alog", "real", t, bt, bt + 30, {"CHARGE": 0, "DRY_END": 240, "FCs": 480, "DROP": 600},
                           batch_weight_g=250, roasted_weight_g=210)
    ror = rate_of_rise(t, bt, 0, 601, 15)
    m = roast_metrics(session, ror)
    assert (m["drying_s"], m["maillard_s"], m["development_s"], m["total_s"]) == (240, 240, 120, 600)
    assert m["dtr_pct"] == pytest.approx(20.0)
    assert m["tp_s"] == 90  # two samples at 100 °C: the later one
    assert m["weight_loss_pct"] == pytest.approx(16.0)  # (250 - 210) / 250
    assert m["crash"] is False and m["flick"] is False


def test_every_computed_metric_has_a_roast_metrics_column():
    from daena_pipelines.telemetry.alog import parse_alog
    from daena_pipelines.telemetry.ingest import session_rows
    from daena_pipelines.telemetry.contract import METRIC_COLUMNS
    from tests.telemetry.profiles import alog_bytes, profile

    metrics = session_rows(parse_alog(alog_bytes(profile()), "a.alog"), "a.alog", "sha", None).metrics
    assert set(metrics) == set(METRIC_COLUMNS)  # nothing computed is silently left out of the store


def test_dry_end_falls_back_to_the_sample_closest_to_the_threshold_as_artisan_does():
    """Synthetic curves (hand-made, not recorded). Artisan's unmarked DRY END is the sample whose BT
    is closest to the threshold between TP and FCs (latest on a tie), not the first sample past it:
    on held-out real profiles (Artisan 2.1-4.2) the first-past rule was one sample late whenever
    the sample before the crossing was the closer one."""
    from daena_pipelines.telemetry.metrics import dry_end

    bt = np.array([200, 150, 120, 110, 125, 140, 149.8, 150.4, 160, 170.0])
    assert dry_end(bt, {"CHARGE": 0}, 3, 150.0) == (6, True)  # 149.8 is nearer than 150.4
    assert dry_end(bt, {"CHARGE": 0}, 3, 150.2) == (7, True)
    assert dry_end(bt, {"CHARGE": 0, "DRY_END": 5}, 3, 150.0) == (5, False)  # a mark wins (Artisan >= 2.4.4)
    assert dry_end(bt, {"CHARGE": 0, "FCs": 7}, 3, 155.0) == (6, True)  # FCs bounds the search
    assert dry_end(bt, {"CHARGE": 0}, 3, 180.0) == (9, True)  # never reached: the closest sample still ends it
    tie = np.array([200, 120, 110, 140, 150, 140, 160.0])
    assert dry_end(tie, {"CHARGE": 0}, 2, 140.0) == (5, True)  # the latest of two equally close samples
    assert dry_end(bt, {"CHARGE": 0}, None, 150.0) == (None, False)  # no TP, no fallback
    assert dry_end(np.full(5, np.nan), {"CHARGE": 0}, 2, 150.0) == (None, False)  # only dropouts


def test_phase_rates_rises_and_met_follow_artisan():
    t = np.arange(0.0, 601.0, 1.0)
    bt = np.where(t < 60, 200 - 1.5 * t, 110 + 0.2 * (t - 60))  # TP at 60 s, then 12 °C/min
    et = bt + 30
    et[300] = 400.0  # the hottest ET before DROP
    session = RoastSession("artisan_alog", "real", t, bt, et, {"CHARGE": 0, "FCs": 400, "DROP": 600},
                           settings={"dry_end_threshold_c": 150.0})
    row = roast_metrics(session, np.full(len(t), np.nan))
    assert row["tp_s"] == 60 and row["dry_end_s"] == 260 and row["dry_end_inferred"] is True
    for phase in ("dry", "mid", "finish", "total"):
        assert row[f"{phase}_phase_ror_c_per_min" if phase != "total" else "total_ror_c_per_min"] == pytest.approx(12.0)
    assert row["dry_phase_delta_c"] == pytest.approx(40.0) and row["mid_phase_delta_c"] == pytest.approx(28.0)
    assert row["met_c"] == 400.0
    assert row["drying_s"] == 260 and row["maillard_s"] == 140 and row["development_s"] == 200


def _cold_start(unit: str = "C", dry_end: int | None = None) -> RoastSession:
    """Hand-made (not recorded) cold start, one sample a second: beans charged at 25 °C into an
    air roaster, BT rising 0.8 °C/s to 220 °C (past 100 °C before the fallback); ET 40 °C above."""
    t = np.arange(0.0, 601.0)
    bt = np.minimum(25.0 + 0.8 * t, 220.0)
    events = {"CHARGE": 0, "FCs": 450, "DROP": 600} | ({"DRY_END": dry_end} if dry_end is not None else {})
    return RoastSession("artisan_alog", "real", t, bt, bt + 40, events, original_unit=unit,
                        settings={"auc_begin": "TP", "auc_base_c": 100.0, "live_tp_fallback_s": 150.0})


def test_a_cold_start_profile_begins_its_auc_at_artisans_live_tp_fallback():
    """Artisan's recording session accepts a live TP only above 50 °C (100 °F in a °F profile);
    the lowest BT since CHARGE only falls, so a profile that starts below that floor never gets
    one and Artisan takes the first sample more than 150 s after CHARGE (2.1.2 to 4.x source;
    held-out 2.4.4 profiles of a Phidget-logged roaster and a Bullet begin their AUC there)."""
    from daena_pipelines.telemetry.metrics import live_tp

    session = _cold_start()
    assert live_tp(session.time_s, session.bt_c, session.events, "C", 150.0) == 151  # > 150 s, not 150
    row = roast_metrics(session, np.full(601, np.nan))
    assert row["tp_s"] == 0  # the profile's own TP is unchanged ...
    assert row["auc_c_min"] == pytest.approx(area_under_curve(session.time_s, session.bt_c, 151, 600, 100.0))  # ... the AUC is not
    assert row["auc_c_min"] < area_under_curve(session.time_s, session.bt_c, 0, 600, 100.0)
    # a DRY END marked before the fallback stops the live checks: the profile's TP stays the begin
    assert live_tp(session.time_s, session.bt_c, {**session.events, "DRY_END": 150}, "C", 150.0) is None
    # one marked at the fallback sample itself came after it (autoDRY runs after the TP check)
    assert live_tp(session.time_s, session.bt_c, {**session.events, "DRY_END": 151}, "C", 150.0) == 151
    # the floor is in the profile's unit: 45 °C is 113 °F, a TP Artisan would accept in a °F
    # profile (the rise check is met at 26 s; the last of the lowest readings is at 25 s)
    warm = np.maximum(session.bt_c, 45.0)
    assert live_tp(session.time_s, warm, session.events, "C", 150.0) == 151
    assert live_tp(session.time_s, warm, session.events, "F", 150.0) == 25
    # a usual drum roast (TP 110 °C at 60 s) is recognised live, 4 s after its TP
    drum = np.where(session.time_s < 60, 200 - 1.5 * session.time_s, 110 + 0.2 * (session.time_s - 60))
    assert live_tp(session.time_s, drum, session.events, "C", 150.0) == 60
    # no rise check met (BT never rises) -> no fallback either
    assert live_tp(session.time_s, np.full(601, 30.0), session.events, "C", 150.0) is None
    # Artisan 3.4 and later fall back after 120 s
    assert live_tp(session.time_s, session.bt_c, session.events, "C", 120.0) == 121
    # only an Artisan profile whose AUC begins at TP gets the setting (alog); without it, the profile's TP
    other = roast_metrics(RoastSession("sidecar", "real", session.time_s, session.bt_c, session.et_c,
                                       session.events, settings={"auc_base_c": 100.0}), np.full(601, np.nan))
    assert other["auc_c_min"] == pytest.approx(area_under_curve(session.time_s, session.bt_c, 0, 600, 100.0))


def _hot_tp(tp_c: float, unit: str = "C") -> RoastSession:
    """Hand-made (not recorded), one sample a second, shaped like the held-out Artisan 2.6.0
    profiles of mhiroe/roast_log: beans charged into a hot drum, BT falling from 200 °C to a
    turning point of `tp_c` at 40 s and rising 0.25 °C/s from there, never near the 50 °C floor."""
    t = np.arange(0.0, 601.0)
    bt = np.where(t < 40, 200.0 - (200.0 - tp_c) * t / 40.0, tp_c + 0.25 * (t - 40.0))
    return RoastSession("artisan_alog", "real", t, bt, bt + 30, {"CHARGE": 0, "FCs": 450, "DROP": 600}, original_unit=unit,
                        settings={"auc_begin": "TP", "auc_base_c": 100.0, "live_tp_fallback_s": 150.0})


def test_a_turning_point_above_the_live_ceiling_begins_the_auc_at_artisans_live_tp_fallback():
    """Artisan's recording session accepts a live TP only below 150 °C (300 °F in a °F profile):
    `sample_processing` in canvas.py (artisan-roaster-scope/artisan, 2.8.5 line) marks the lowest
    BT since CHARGE only "if not an error value", strictly inside 50-150 °C. A profile whose BT
    never falls to 150 °C gets no live TP and Artisan takes the fallback sample (the held-out
    mhiroe files with TPs of 152-185 °C begin their AUC there), whichever session saved it."""
    from daena_pipelines.telemetry.metrics import live_tp

    hot = _hot_tp(160.0)
    assert live_tp(hot.time_s, hot.bt_c, hot.events, "C", 150.0) == 151
    row = roast_metrics(hot, np.full(601, np.nan))
    assert row["tp_s"] == 40  # the profile's own TP is unchanged ...
    # ... the AUC begins at the fallback: hand-worked, Artisan's segments ending at samples
    # 151 .. 599 (DROP excluded), BT from 150 s (187.5 °C) to 599 s (299.75 °C) in a straight
    # line: mean excess over 100 °C 143.625 °C × 449 s / 60 = 1074.79 °C·min (from the TP: 1327)
    assert row["auc_c_min"] == pytest.approx(1074.794, abs=0.01)
    # a TP of 149.5 °C is accepted live in a °C profile, but it is 301.1 °F: above a °F ceiling
    near = _hot_tp(149.5)
    assert live_tp(near.time_s, near.bt_c, near.events, "C", 150.0) == 40
    assert live_tp(near.time_s, near.bt_c, near.events, "F", 150.0) == 151
    # a DRY END marked before the fallback stops the checks: the profile's TP stays the begin
    assert live_tp(hot.time_s, hot.bt_c, {**hot.events, "DRY_END": 120}, "C", 150.0) is None
    # a file saved after being reopened has no live TP: the profile's TP
    hot.settings["saved_by"] = "reopened"
    assert roast_metrics(hot, np.full(601, np.nan))["auc_c_min"] == pytest.approx(area_under_curve(hot.time_s, hot.bt_c, 40, 600, 100.0))


def test_the_live_tp_fallback_time_follows_the_artisan_version():
    """150 s in the 2.1.2, 2.4.4 and 2024 sources, 120 s in 3.2.0 and later (docs/telemetry.md);
    only for an AUC begun at TP. Hand-made profiles (tests/telemetry/profiles.py)."""
    from daena_pipelines.telemetry.alog import profile_to_session
    from tests.telemetry.profiles import profile

    def fallback(version, begin="TP"):
        data = profile(version=version, computed={"AUC": 300, "AUCbegin": begin, "AUCbase": 100})
        return profile_to_session(data).settings.get("live_tp_fallback_s")

    assert (fallback("2.4.4"), fallback("3.1.4"), fallback("3.2.0"), fallback("3.4.0"), fallback("4.2.0")) == (150.0, 150.0, 120.0, 120.0, 120.0)
    # from 3.2 the fallback is also checked before the recognition (canvas.py sample_processing)
    first = [profile_to_session(profile(version=v, computed={"AUC": 300, "AUCbegin": "TP", "AUCbase": 100})).settings.get("live_tp_fallback_first")
             for v in ("3.1.4", "3.2.0", "4.2.0")]
    assert first == [None, True, True]
    # the 50 °C floor and the 150-s fallback came with 1.6.1 (commits of 2019-02-24 and 03-09):
    # before, the first candidate was taken, so the profile's TP stands (and for a file without version)
    assert (fallback("1.4.0"), fallback("1.6.0"), fallback(None), fallback("1.6.1")) == (None, None, None, 150.0)
    assert fallback("4.2.0", begin="CHARGE") is None and profile_to_session(profile()).settings.get("live_tp_fallback_s") is None


def _exchanged_after_recording(live_tp_curve: str | None) -> RoastSession:
    """Hand-made (not recorded), one sample a second, shaped like the held-out Aillio R1 files
    whose ET and BT were exchanged after recording: the saved BT is a probe falling from 165 °C
    to a TP of 105 °C at 60 s; the saved ET, which the recording session read as BT, reads the
    beans at 25 °C right after CHARGE and only rises."""
    t = np.arange(0.0, 481.0)
    bt = np.where(t < 60, 165.0 - t, 105.0 + 0.2 * (t - 60))
    et = 25.0 + 0.4 * t
    settings = {"auc_begin": "TP", "auc_base_c": 100.0, "live_tp_fallback_s": 120.0}
    if live_tp_curve is not None:
        settings["live_tp_curve"] = live_tp_curve
    return RoastSession("artisan_alog", "real", t, bt, et, {"CHARGE": 0, "FCs": 400, "DROP": 480}, settings=settings)


def test_the_live_tp_of_a_profile_exchanged_after_recording_is_replayed_on_its_et():
    """Artisan's live TP recognition reads the BT being recorded; Roast > Switch ET/BT exchanges
    the curves afterwards and keeps that TP (docs/telemetry.md, "Curves exchanged after
    recording"). Recorded BT (saved ET) at 25 °C: no TP accepted, the 120-s fallback decides."""
    from daena_pipelines.telemetry.metrics import live_tp

    exchanged = _exchanged_after_recording("ET")
    assert live_tp(exchanged.time_s, exchanged.bt_c, exchanged.events, "C", 120.0) == 60  # the saved BT has a TP
    assert live_tp(exchanged.time_s, exchanged.et_c, exchanged.events, "C", 120.0) == 121
    nan = np.full(481, np.nan)
    row = roast_metrics(exchanged, nan)
    assert row["tp_s"] == 60  # the profile's TP is the saved BT's
    # hand-worked: Artisan sums the segments ending at samples 121 .. 479 (DROP excluded), i.e.
    # BT from 120 s (117.0 °C) to 479 s (188.8 °C), a straight line: mean excess over 100 °C
    # 52.9 °C × 359 s / 60 = 316.518 °C·min (from the profile's TP at 60 s: 327.6)
    assert row["auc_c_min"] == pytest.approx(316.518333)
    # reopened and saved again ("none"), or not exchanged (no setting): the profile's TP
    for reopened in (_exchanged_after_recording("none"), _exchanged_after_recording(None)):
        assert roast_metrics(reopened, nan)["auc_c_min"] == pytest.approx(area_under_curve(exchanged.time_s, exchanged.bt_c, 60, 480, 100.0))


def _early_live_tp_profile(**overrides) -> dict:
    """Hand-made Artisan 4.0.2 profile (not recorded; fields as documented in
    ../shared/spec/artisan-alog.md), one sample a second, CHARGE at sample 0: BT falls from
    200 °C to 120 °C at 30 s, rises to 125 °C at 40 s (meeting the live rise check), falls again to
    the profile's TP of 100 °C at 100 s and rises to 220 °C at DROP (600 s)."""
    from tests.telemetry.profiles import profile

    t = np.arange(0.0, 601.0)
    bt = np.interp(t, [0, 30, 40, 100, 600], [200.0, 120.0, 125.0, 100.0, 220.0])
    return profile(timex=[float(x) for x in t], temp1=[round(float(x) + 40, 2) for x in bt], temp2=[round(float(x), 2) for x in bt],
                   timeindex=[0, 0, 450, 0, 0, 0, 600, 0],
                   computed={"AUC": 0, "AUCbegin": "TP", "AUCbase": 100.0}, **({"version": "4.0.2"} | overrides))


def test_the_session_that_saved_the_file_decides_where_a_tp_begun_auc_begins():
    """Artisan begins the computed AUC at the live TP of the session that recorded the roast; a
    reopened file has none and takes the profile's TP (docs/telemetry.md, "Which session saved
    the file"). `flavors_total_correction` tells them apart: Artisan starts and resets it as the
    integer 0, a loaded profile brings it back as a float (0.0)."""
    from daena_pipelines.telemetry.alog import profile_to_session
    from daena_pipelines.telemetry.metrics import live_tp

    nan = np.full(601, np.nan)
    recording = profile_to_session(_early_live_tp_profile(flavors_total_correction=0))
    assert recording.settings["saved_by"] == "recording"
    # the rise check is met at 34 s; the lowest BT since CHARGE then is 120 °C at 30 s, inside
    # 50-150 °C, so the live recognition accepts it although BT falls lower later
    assert live_tp(recording.time_s, recording.bt_c, recording.events, "C", 120.0) == 30
    row = roast_metrics(recording, nan)
    assert row["tp_s"] == 100  # the profile's TP, as Artisan's computed TP_time
    # hand-worked, Artisan's segments (i − 1, i) for i = 30 .. 599, each max(0, mean − 100) × 1 s:
    # 29 → 30 s 21.33 (BT 122.67, 120), 30 → 40 s 10 × 22.5, 40 → 100 s 60 × 12.5, 100 → 599 s
    # 499 × 59.88 (BT 100 to 219.76): 30876.45 °C·s
    early = area_under_curve(recording.time_s, recording.bt_c, 30, 600, 100.0)
    assert early == pytest.approx((21.333 + 10 * 22.5 + 60 * 12.5 + 499 * 59.88) / 60.0, abs=0.01)
    assert row["auc_c_min"] == pytest.approx(early)
    reopened = profile_to_session(_early_live_tp_profile(flavors_total_correction=0.0))
    assert reopened.settings["saved_by"] == "reopened"
    assert roast_metrics(reopened, nan)["auc_c_min"] == pytest.approx(area_under_curve(reopened.time_s, reopened.bt_c, 100, 600, 100.0))
    # a file that does not say (before Artisan 3.x, no key) is taken as saved by its recording
    # session: its AUC begins at the live TP too (metrics version 11)
    unsaid = profile_to_session(_early_live_tp_profile(version="2.6.0"))
    assert "saved_by" not in unsaid.settings and unsaid.settings["live_tp_fallback_s"] == 150.0
    assert roast_metrics(unsaid, nan)["auc_c_min"] == pytest.approx(early)
    # but a live TP at sample 0 is none to Artisan's AUC (profileAUC: `if TPalarmtimeindex:`):
    # BT rising from CHARGE at sample 0 to 110 °C at 30 s is accepted there; it then falls to the
    # profile's TP (90 °C at 100 s), where the AUC begins
    bt = np.interp(recording.time_s, [0, 30, 100, 600], [100.0, 110.0, 90.0, 220.0])
    rising = RoastSession("artisan_alog", "real", recording.time_s, bt, recording.et_c, recording.events,
                          settings={"auc_begin": "TP", "auc_base_c": 100.0, "live_tp_fallback_s": 120.0})
    assert live_tp(rising.time_s, rising.bt_c, rising.events, "C", 120.0) == 0
    row = roast_metrics(rising, nan)
    assert row["tp_s"] == 100 and row["auc_c_min"] == pytest.approx(area_under_curve(rising.time_s, rising.bt_c, 100, 600, 100.0))
    # a reopened cold start has no live TP either: the profile's TP, not the fallback
    cold = _cold_start()
    cold.settings["saved_by"] = "reopened"
    assert roast_metrics(cold, np.full(601, np.nan))["auc_c_min"] == pytest.approx(area_under_curve(cold.time_s, cold.bt_c, 0, 600, 100.0))


def test_an_auc_based_at_its_begin_event_takes_its_base_at_the_live_tp():
    """Artisan's profileAUC (main.py, artisan-roaster-scope/artisan commit 57fbd4cb, 2.8 line)
    sets the AUC's begin index to TPalarmtimeindex when the session has one and, with "From
    Event" (AUCbaseFlag, the file's AUCfromeventflag), reads the base as temp2 at that same index:
    the base is the BT at the live TP, not at the profile's TP. Hand-made profile (see
    _early_live_tp_profile): live TP 120 °C at 30 s, profile TP 100 °C at 100 s."""
    from daena_pipelines.telemetry.alog import profile_to_session

    session = profile_to_session(_early_live_tp_profile(flavors_total_correction=0))
    session.settings["auc_base_from_event"] = True
    row = roast_metrics(session, np.full(601, np.nan))
    assert row["tp_s"] == 100 and row["auc_base_c"] == pytest.approx(120.0)
    # hand-worked, segments (i − 1, i) for i = 30 .. 599 over 120 °C, 1 s each: 29 → 30 s 1.335
    # (BT 122.67, 120), 30 → 40 s 10 × 2.5, 40 → 52 s 12 × 2.5 (BT 125 falling to 120), 184 → 599 s
    # 416 segments of 0.24 × (i − 100.5) − 20 °C (BT 100 + 0.24 °C/s from 100 s): 20733.44 °C·s
    assert row["auc_c_min"] == pytest.approx((1.335 + 25 + 30 + 20733.44) / 60.0, abs=0.01)
    assert row["auc_c_min"] == pytest.approx(area_under_curve(session.time_s, session.bt_c, 30, 600, 120.0))


def _falling_past_the_fallback(fallback_first: bool) -> RoastSession:
    """Hand-made (not recorded), one sample a second: BT falls from 200 °C to a TP of 100 °C at
    150 s and rises 0.3 °C/s from there, so the live rise check is first met at 154 s (BT at 150 s below the four after it), after the
    2-min fallback time."""
    t = np.arange(0.0, 601.0)
    bt = np.where(t < 150, 200.0 - 100.0 * t / 150.0, 100.0 + 0.3 * (t - 150.0))
    settings = {"auc_begin": "TP", "auc_base_c": 100.0, "live_tp_fallback_s": 120.0}
    if fallback_first:
        settings["live_tp_fallback_first"] = True
    return RoastSession("artisan_alog", "real", t, bt, bt + 30, {"CHARGE": 0, "FCs": 450, "DROP": 600}, settings=settings)


def test_from_artisan_3_2_the_live_tp_fallback_does_not_wait_for_the_rise_check():
    """canvas.py `sample_processing` (current source): the branch setting TPalarmtimeindex to the
    current sample once more than TP_max_roasttime (120 s) have passed since CHARGE comes before
    the recognition branch and tests neither checkTPalarmtime (the rise check) nor DRY END. The
    2.x and 2024 sources test it only inside the recognition branch (docs/telemetry.md)."""
    from daena_pipelines.telemetry.metrics import live_tp

    new, old = _falling_past_the_fallback(True), _falling_past_the_fallback(False)
    assert live_tp(new.time_s, new.bt_c, new.events, "C", 120.0, fallback_first=True) == 121
    assert live_tp(old.time_s, old.bt_c, old.events, "C", 120.0) == 154  # the first risen sample
    nan = np.full(601, np.nan)
    # hand-worked, segments (i − 1, i) over 100 °C, 1 s each: i = 121 .. 150, BT falling 2/3 °C/s
    # to 100 °C, 100 − 2/3 × (i − 0.5) each: 300 °C·s; i = 151 .. 599, 0.3 × (i − 150.5) each:
    # 0.3 × 449 × 224.5 = 30240.15 °C·s
    assert roast_metrics(new, nan)["auc_c_min"] == pytest.approx(area_under_curve(new.time_s, new.bt_c, 121, 600, 100.0))
    assert roast_metrics(new, nan)["auc_c_min"] == pytest.approx((300.0 + 30240.15) / 60.0, abs=0.01)
    assert roast_metrics(old, nan)["auc_c_min"] == pytest.approx(area_under_curve(old.time_s, old.bt_c, 154, 600, 100.0))
    # a BT that never rises, or a DRY END marked before 120 s, still gets the fallback from 3.2 on
    flat = np.full(601, 30.0)
    assert live_tp(new.time_s, flat, new.events, "C", 120.0, fallback_first=True) == 121
    assert live_tp(old.time_s, flat, old.events, "C", 120.0) is None
    dried = {**new.events, "DRY_END": 100}
    assert live_tp(new.time_s, new.bt_c, dried, "C", 120.0, fallback_first=True) == 121
    assert live_tp(old.time_s, old.bt_c, dried, "C", 120.0) is None
    # a TP recognised before 120 s still wins (a usual drum roast, TP 110 °C at 60 s, seen at 64 s)
    drum = np.where(new.time_s < 60, 200 - 1.5 * new.time_s, 110 + 0.2 * (new.time_s - 60))
    assert live_tp(new.time_s, drum, new.events, "C", 120.0, fallback_first=True) == 60


def test_total_ror_comes_from_the_rounded_values_artisan_reports():
    """Artisan's total RoR is (DROP_BT - TP_BT) / (DROP_time - TP_time) × 60 of its computed
    block's values: BT to 0.1° in the profile's unit, times to 0.1 s. Hand-made 14-s recording."""
    t = np.arange(0.0, 16.0, 2.0)
    bt = np.array([68.94, 69.24, 69.69, 70.04, 70.29, 70.34, 70.44, 70.49])
    session = RoastSession("artisan_alog", "real", t, bt, bt, {"CHARGE": 0, "DROP": 7})
    row = roast_metrics(session, np.full(8, np.nan))
    assert row["total_ror_c_per_min"] == pytest.approx((70.5 - 68.9) / 14 * 60)  # not (70.49 - 68.94) / 14 * 60
    fahrenheit = RoastSession("artisan_alog", "real", t, (np.array([150.04, 160.0, 170.0, 180.0, 190.0, 200.0, 210.0, 220.04]) - 32) / 1.8,
                              bt, {"CHARGE": 0, "DROP": 7}, original_unit="F")
    row = roast_metrics(fahrenheit, np.full(8, np.nan))
    assert row["total_ror_c_per_min"] == pytest.approx((220.0 - 150.0) / 14 * 60 / 1.8)


def test_an_entered_green_beans_temperature_starts_the_drying_phase_rise():
    """Artisan (its `RoR`, since 2.4.5) takes the drying phase's rise and RoR from the green
    beans' temperature the user entered (`greens_temp`, in the profile's unit) at CHARGE instead
    of from the TP (docs/telemetry.md, "Artisan's rules by version"). Hand-made profiles
    (tests/telemetry/profiles.py), DRY END marked."""
    from daena_pipelines.telemetry.alog import profile_to_session
    from tests.telemetry.profiles import profile

    def row(mode="C", **overrides):
        session = profile_to_session(profile(mode, computed={"DRY_time": 240.0}, **overrides))
        return session, roast_metrics(session, np.full(len(session.time_s), np.nan))

    _, plain = row(version="4.0.2")
    session, entered = row(version="4.0.2", greens_temp=20.0)
    t, bt, ev = session.time_s, session.bt_c, session.events
    dry, charge = ev["DRY_END"], ev["CHARGE"]
    assert entered["dry_phase_delta_c"] == pytest.approx(bt[dry] - 20.0)
    assert entered["dry_phase_ror_c_per_min"] == pytest.approx((bt[dry] - 20.0) / (t[dry] - t[charge]) * 60.0)
    assert plain["dry_phase_delta_c"] == pytest.approx(bt[dry] - plain["tp_bt_c"])  # from the TP
    assert {k: v for k, v in entered.items() if not k.startswith("dry_phase_")} == {k: v for k, v in plain.items() if not k.startswith("dry_phase_")}
    # 68 °F is 20 °C; 0 means not entered; before 2.4.5 Artisan started from the TP
    assert row("F", version="4.0.2", greens_temp=68.0)[1]["dry_phase_delta_c"] == pytest.approx(entered["dry_phase_delta_c"], abs=0.01)
    for not_used in (row(version="4.0.2", greens_temp=0.0), row(version="2.4.4", greens_temp=20.0)):
        assert not_used[1]["dry_phase_delta_c"] == pytest.approx(plain["dry_phase_delta_c"])
