"""Roast metrics from a session's arrays: phases, DTR, turning point, RoR, AUC, crash/flick.

Definitions (and how they line up with Artisan's own analysis) are in docs/telemetry.md.
All inputs are °C and seconds; outputs are seconds from CHARGE, °C and °C/min.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from daena_pipelines.telemetry.model import RoastSession


@dataclass(frozen=True)
class RorSettings:
    half_window_s: float = 15.0  # RoR = slope of a least-squares line over t ± this many seconds
    crash_drop_c_per_min: float = 3.0  # a fall of at least this much ...
    crash_span_s: float = 30.0  # ... within this many seconds is a crash episode
    crash_window_before_fcs_s: float = 60.0  # `crash`: an episode from FCs - 60 s ...
    crash_window_after_fcs_s: float = 90.0  # ... to FCs + 90 s
    flick_window_s: float = 120.0  # `flick`: looked for in the last 120 s before DROP (after FCs)
    flick_tail_s: float = 15.0  # ... its last 15 s ...
    flick_rise_c_per_min: float = 1.5  # ... average this far above the window's earlier minimum
    spike_c_per_min: float = 5.0  # a spike: RoR this far above the median of the surrounding minute


DEFAULT_ROR = RorSettings()
# Bump when a metric is added or a definition changes: stored sessions whose roast_metrics carry
# an older version are recomputed from their stored points (telemetry/recompute.py).
# 3: an unmarked DRY END is the sample closest to the threshold (Artisan's rule)
# 4: AUC of a cold-start profile begins at Artisan's live TP fallback; total RoR from rounded values
# 5: the live TP of a profile whose ET and BT were exchanged after recording is replayed on its ET
# 6: no live TP fallback before Artisan 1.6.1 (recompute reads it back from an unchanged file)
# 7: a file its recording session saved (alog's `saved_by`) begins its AUC at that session's
#    replayed live TP, one saved again after being reopened at the profile's TP
# 8: with the green beans' temperature entered (Artisan 2.4.5+), the drying phase's RoR and rise
#    run from it at CHARGE to DRY END
# 9: the live TP fallback is 2 min from Artisan 3.2 on (was 3.4)
# 10: the AUC of a profile whose BT never falls below the live TP ceiling (150 °C / 300 °F) before
#     the fallback begins at the fallback, as a cold start's does
# 11: a file that does not say which session saved it (Artisan 3.0 and older) begins its AUC at the
#     replayed live TP, as one its recording session saved (was: only a cold or hot start's)
# 12: an AUC based at its begin event (AUCfromeventflag) that begins at the live TP takes its base
#     there, not at the profile's TP; from Artisan 3.2 the live TP fallback fires whether or not
#     the rise check has been met or DRY END marked
METRICS_VERSION = 12
SPIKE_SORT_VALUES = 4_000_000  # values sorted at once when counting spikes (32 MB)
DEFAULT_AUC_BASE_C = 100.0
DEFAULT_AUC_BEGIN = "TP"
AUC_BEGIN_EVENTS = {"CHARGE": "CHARGE", "DE": "DRY_END", "FCs": "FCs"}  # Artisan's AUCbegin names


def rate_of_rise(time_s: np.ndarray, bt_c: np.ndarray, start: int, stop: int, half_window_s: float) -> np.ndarray:
    """RoR in °C/min for samples start..stop-1 (NaN elsewhere).

    Each value is 60 × the slope of the least-squares line through the valid BT samples within
    ±half_window_s, using only samples inside [start, stop) so the CHARGE plunge and the cooling
    tray never leak in. Computed with prefix sums: O(n) for any window.
    """
    ror = np.full(len(time_s), np.nan)
    if stop - start < 3:
        return ror
    t = time_s[start:stop] - time_s[start]
    y = bt_c[start:stop]
    valid = y == y  # not NaN
    # the five running sums share one array whose first column is 0 (the sum of nothing)
    sums = np.zeros((5, len(t) + 1))
    w, wt, wtt, yv, yvt = sums[:, 1:]
    w[:] = valid
    np.multiply(w, t, out=wt)
    np.multiply(wt, t, out=wtt)
    np.copyto(yv, y, where=valid)
    np.multiply(yv, t, out=yvt)
    np.add.accumulate(sums[:, 1:], axis=1, out=sums[:, 1:])  # np.cumsum, without its wrapper's cost
    lo = t.searchsorted(t - half_window_s, side="left")
    hi = t.searchsorted(t + half_window_s, side="right")
    # (in place where a result has its own array: each temporary is a numpy call and an allocation more)
    window = sums.take(hi, axis=1)  # take: far cheaper than [:, hi]
    window -= sums.take(lo, axis=1)
    n, st, stt, sy, sty = window
    denominator = n * stt
    denominator -= st * st
    numerator = n * sty
    numerator -= st * sy
    fits = np.abs(denominator) >= 1e-9
    fits &= n >= 3
    slope = ror[start:stop]  # stays NaN where fewer than 3 samples or a degenerate fit
    np.divide(numerator, denominator, out=slope, where=fits)
    slope *= 60.0
    return ror


def turning_point(bt_c: np.ndarray, events: dict[str, int]) -> int | None:
    """Index of the lowest BT after CHARGE, searched up to (not including) FCs, else DROP, else
    the end; on a tie the latest sample wins. This is the rule behind Artisan's TP values."""
    charge = events["CHARGE"]
    window = bt_c[charge:_search_end(events, len(bt_c))]
    lowest = _last_lowest(np.where(window > 0, window, np.inf))  # NaN > 0 is False: no NaN left
    return None if lowest is None else charge + lowest


# Artisan's live TP recognition accepts a candidate only strictly between these BTs, in the
# profile's own unit (floor, ceiling)
LIVE_TP_BOUNDS = {"C": (50.0, 150.0), "F": (100.0, 300.0)}


def _celsius(value: float, unit: str) -> float:
    return value if unit == "C" else (value - 32.0) * 5.0 / 9.0


def live_tp(t: np.ndarray, bt_c: np.ndarray, events: dict[str, int], unit: str, fallback_s: float,
            fallback_first: bool = False) -> int | None:
    """The sample Artisan's recording session took as TP, replayed on the saved curve `bt_c`;
    None when it took none (its checks stopped first, or no rise check was met).

    While recording, once the rise check is met (more than 20 s after CHARGE, at least 8 samples
    in, no DRY END yet: the BT four samples back is <= each later one and < the latest), every
    sample proposes the lowest BT since CHARGE (the latest on a tie) as TP and accepts it only if
    it lies strictly inside LIVE_TP_BOUNDS; the fallback takes the current sample once more than
    `fallback_s` have passed since CHARGE (150 s up to Artisan 3.1, 120 s from 3.2: alog sets
    it; it wins a tie). Checks stop once DRY END is marked (a mark at the fallback sample comes
    after it). With `fallback_first` (Artisan 3.2 and later) the fallback is checked on every
    sample before the recognition, whether or not the rise check has been met or DRY END marked:
    a BT still falling (or never rising) 120 s after CHARGE gets its TP at the fallback sample.
    When no candidate is accepted before the fallback — the lowest BT since CHARGE
    at or below the floor (a cold start: beans charged into a cold roaster or an air roaster;
    that lowest only falls, so it stays there), or still at or above the ceiling (beans whose
    BT never falls to 150 °C / 300 °F) — the fallback decides. docs/telemetry.md, "Why AUC from
    TP disagrees"."""
    charge, dry = events["CHARGE"], events.get("DRY_END")
    last = min(len(t) - 1, dry) if dry is not None else len(t) - 1
    floor_c, ceiling_c = (_celsius(v, unit) for v in LIVE_TP_BOUNDS[unit])
    span = bt_c[charge : last + 1]
    # the rise check at each sample k from CHARGE + 8 on, on slices of the span (views, not copies)
    readings = np.where(np.isnan(span), -np.inf, span)  # a dropout (-1 in the file) is the lowest reading
    n = len(readings)
    older = readings[4 : n - 4]  # four samples back
    risen = (np.trunc(t[charge + 8 : last + 1] - t[charge]) > 20) & (older < readings[8:])
    for back in (3, 2, 1):
        risen &= older <= readings[8 - back : n - back]
    first = charge + 8 + int(risen.argmax()) if np.count_nonzero(risen) else None  # the rise check stays met
    # where the fallback is looked for: every sample after CHARGE (3.2+), else the recognition's samples
    start, stop = (charge, len(t) - 1) if fallback_first else (first, last)
    late = (t[start : stop + 1] - t[charge] > fallback_s).nonzero()[0] if start is not None else []
    fallback = start + int(late[0]) if len(late) else None
    if first is None:
        return fallback
    lowest = np.minimum.accumulate(np.where(span > 0, span, np.inf))  # the candidate's BT at each sample
    candidates = lowest[first - charge :]
    accepted = ((candidates > floor_c) & (candidates < ceiling_c)).nonzero()[0]
    if accepted.size and (fallback is None or first + int(accepted[0]) < fallback):
        seen = first + int(accepted[0])
        return charge + _last_lowest(np.where(span[: seen - charge + 1] > 0, span[: seen - charge + 1], np.inf))
    return fallback


def recording_session_tp(session: RoastSession) -> int | None:
    """The TP sample Artisan's recording session kept; None where the profile's TP stands. A file
    its recording session saved (alog's `saved_by`, "recording") begins its AUC at that
    session's live TP; one saved again after being reopened ("reopened": opening clears the live
    TP) at the profile's TP. A file that does not say (Artisan 3.0 and older) is taken as saved by
    its recording session: of the held-out ones where the two begins differ, 15 of 17 carry the
    live TP's AUC (docs/telemetry.md, "Which session saved the file"). The live TP is replayed on
    the curve that session read as BT: the saved BT, or the saved ET when the curves were
    exchanged after recording (alog's `live_tp_curve`)."""
    settings = session.settings
    fallback_s = settings.get("live_tp_fallback_s")  # Artisan profiles that begin their AUC at TP
    curve, saved_by = settings.get("live_tp_curve"), settings.get("saved_by")
    if fallback_s is None or session.charge_inferred or curve == "none" or saved_by == "reopened":
        return None  # "none": exchanged, then reopened and saved again, which clears the live TP
    read = session.et_c if curve == "ET" else session.bt_c
    return live_tp(session.time_s, read, session.events, session.original_unit, float(fallback_s),
                   bool(settings.get("live_tp_fallback_first")))


def _search_end(events: dict[str, int], n: int) -> int:
    """Where TP and an unmarked DRY END are searched up to: FCs, else DROP, else the end."""
    return min((events[e] for e in ("FCs", "DROP") if e in events), default=n)


def _last_lowest(values: np.ndarray) -> int | None:
    """Index of the last of the lowest values that are not +inf, or None; `values` hold no NaN
    (argmin would take it) and no -inf."""
    if not values.size:
        return None
    first = int(values[::-1].argmin())  # argmin takes the first lowest: backwards, the last
    last = len(values) - 1 - first
    return None if values.item(last) == math.inf else last


MAX_AUC_READING_C = 500.0  # readings above this are treated as 0, as Artisan does
FLOAT_MAX = float(np.finfo(float).max)


def auc_running(time_s: np.ndarray, bt_c: np.ndarray, base_c: float) -> np.ndarray:
    """Running °C·min between BT and base_c, Artisan's way: element i is the area of the
    segments (j-1, j) for j = 1 .. i-1, each counting max(0, mean of its two readings - base)
    × its duration; a segment that touches a dropout counts 0. The area from sample `begin` to
    `end` (segments begin .. end-1, as Artisan sums them) is running[end] - running[max(begin, 1)]."""
    readings = np.where(bt_c > MAX_AUC_READING_C, 0.0, np.maximum(bt_c, 0.0))
    area = readings[1:] + readings[:-1]
    area /= 2.0
    area -= base_c
    # max(0, ·) with NaN as 0 and a finite bound, in two ufuncs (np.nan_to_num is far slower)
    np.fmax(np.minimum(area, FLOAT_MAX, out=area), 0.0, out=area)
    area *= time_s[1:] - time_s[:-1]
    running = np.zeros(len(time_s))
    np.add.accumulate(area[: max(len(time_s) - 2, 0)], out=running[2:])  # np.cumsum
    running /= 60.0
    return running


def area_under_curve(time_s: np.ndarray, bt_c: np.ndarray, begin: int, end: int, base_c: float) -> float:
    """°C·min between BT and base_c from sample `begin` to `end` (see auc_running)."""
    return auc_span(auc_running(time_s, bt_c, base_c), begin, end)


def auc_span(running: np.ndarray, begin: int, end: int) -> float:
    first = max(begin, 1)
    return float(running[end] - running[first]) if end > first else 0.0


def _episodes(mask: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) index of each run of True."""
    if not np.count_nonzero(mask):
        return []
    # a run starts after an edge or at 0, and ends at the next edge or at the last index
    edges = (mask[1:] != mask[:-1]).nonzero()[0].tolist()
    bounds = [-1] * bool(mask[0]) + edges + [len(mask) - 1] * bool(mask[-1])
    return [(a + 1, b) for a, b in zip(bounds[::2], bounds[1::2])]


def crash_episodes(time_s: np.ndarray, ror: np.ndarray, lo: int, hi: int, settings: RorSettings) -> list[tuple[int, int]]:
    """Runs of samples in [lo, hi) where RoR is at least `crash_drop` below its value
    `crash_span` seconds earlier."""
    if hi - lo < 2:
        return []
    t = time_s[lo:hi]
    r = ror[lo:hi]
    earlier = np.interp(t - settings.crash_span_s, t, r, left=np.nan)
    earlier -= r  # the fall, in place
    falling = earlier >= settings.crash_drop_c_per_min
    return [(lo + a, lo + b) for a, b in _episodes(falling)]


def spike_count(time_s: np.ndarray, ror: np.ndarray, lo: int, hi: int, settings: RorSettings) -> int:
    """Runs of samples whose RoR stands `spike` above the median RoR of the surrounding minute."""
    if hi - lo < 3:
        return 0
    r = ror[lo:hi]
    t = time_s[lo:hi]
    step = median(t[1:] - t[:-1])
    # A window wider than the series holds the whole series either way: bounding it by the number
    # of samples keeps the work proportional to the samples, not to the time span / step.
    half = min(max(1, int(round(30.0 / step))) if step > 0 else 1, len(r))
    # Exact medians are needed only for candidates: samples standing `spike` above a lower bound of
    # their window's median. Window i (2·half + 1 slots, padded beyond the series) has two halves
    # of half + 1 slots that share its centre; either half holds more than half of the window's
    # values when it has no gap, and then its lowest value is at most the median. So the bound is
    # the larger minimum of the gapless halves (-inf when neither is: every such sample is checked).
    bound_of = np.full(-(-(len(r) + 2 * half) // (half + 1)) * (half + 1), -np.inf)  # whole blocks
    np.fmax(r, -np.inf, out=bound_of[half : half + len(r)])  # r, with -inf for a gap: its half's minimum is -inf
    # minima of every run of half + 1 slots in O(n) (van Herk / Gil-Werman): a run spans the tail
    # of one block and the head of the next
    blocks = bound_of.reshape(-1, half + 1)
    prefix = np.minimum.accumulate(blocks, axis=1).ravel()
    suffix = np.minimum.accumulate(blocks[::-1, ::-1], axis=1).ravel()[::-1]
    run_min = np.minimum(suffix[: len(r) + half], prefix[half : len(r) + 2 * half])
    above = np.maximum(run_min[: len(r)], run_min[half:])
    np.subtract(r, above, out=above)  # in place: a temporary less
    candidates = (above >= settings.spike_c_per_min).nonzero()[0]
    if not candidates.size:
        return 0
    width = 2 * half + 1
    padded = np.full(len(r) + 2 * half, np.nan)  # window i is padded[i : i + width]
    padded[half : half + len(r)] = r
    spikes = [np.empty(0, dtype=np.intp)]
    block = max(1, SPIKE_SORT_VALUES // width)  # windows sorted at a time: bounded memory
    offsets = np.arange(width)
    for start in range(0, len(candidates), block):
        part = candidates[start : start + block]
        ordered = padded[part[:, None] + offsets]
        ordered.sort(axis=1)  # NaN sort last
        finite = np.count_nonzero(np.isfinite(ordered), axis=1)
        rows = np.arange(len(part))
        medians = (ordered[rows, np.maximum(finite - 1, 0) // 2] + ordered[rows, finite // 2]) / 2
        spikes.append(part[r[part] - medians >= settings.spike_c_per_min])  # a NaN median is no spike
    spikes = np.concatenate(spikes)  # ascending: a run of consecutive indices is one spike
    return int(spikes.size and 1 + np.count_nonzero(np.diff(spikes) > 1))


def median(values: np.ndarray) -> float:
    """np.median of a non-empty array without NaN, without its per-call overhead (same value).
    A full sort: for a few hundred values numpy's vectorized sort is faster than a two-index
    `np.partition` (2.8 against 4.8 µs for 500 time steps)."""
    n = len(values)
    ordered = np.sort(values)
    return float((ordered[(n - 1) // 2] + ordered[n // 2]) / 2)


def highest(values: np.ndarray) -> float | None:
    """np.nanmax, None when there is no value to take it of (no value is infinite)."""
    peak = np.fmax.reduce(values) if values.size else math.nan
    return None if math.isnan(peak) else float(peak)


def _at(values: np.ndarray, index: int | None) -> float | None:
    if index is None:
        return None
    value = values.item(index)
    return None if math.isnan(value) else value


def dry_end(bt_c: np.ndarray, events: dict[str, int], tp: int | None, threshold_c: float | None) -> tuple[int | None, bool]:
    """(index of DRY END, whether it was inferred). A marked DRY END is used as it is (Artisan
    since 2.4.4); without one, Artisan's rule: the sample whose BT is closest to the profile's
    dry-end threshold, searched from TP up to (not including) FCs, else DROP, else the end; on a
    tie the latest sample wins (docs/telemetry.md)."""
    if "DRY_END" in events:
        return events["DRY_END"], False
    if tp is None or threshold_c is None:
        return None, False
    end = _search_end(events, len(bt_c))
    start = tp if events["CHARGE"] < tp < end else events["CHARGE"]
    distance = np.abs(bt_c[start:end] - threshold_c)
    closest = _last_lowest(np.fmin(distance, np.inf, out=distance))  # a dropout's NaN -> +inf
    return (None, False) if closest is None else (start + closest, True)


def _phase_rate(t: np.ndarray, bt: np.ndarray, a: int | None, b: int | None) -> float | None:
    """Mean rate of rise between two samples, °C/min (Artisan's phase RoR)."""
    if a is None or b is None or t.item(b) == t.item(a):
        return None
    rise = _phase_delta(bt, a, b)
    return None if rise is None else rise / (t.item(b) - t.item(a)) * 60.0


def _total_rate(session: RoastSession, tp: int | None, drop: int | None) -> float | None:
    """Artisan's total RoR, °C/min: from TP and DROP as its computed block reports them (BT to
    0.1° in the profile's unit, times from CHARGE to 0.1 s), which shows in short recordings."""
    if tp is None or drop is None:
        return None
    t, origin, fahrenheit = session.time_s, session.origin_s, session.original_unit == "F"
    seconds = round(t.item(drop) - origin, 1) - round(t.item(tp) - origin, 1)
    rise = [session.bt_c.item(i) * 1.8 + 32.0 if fahrenheit else session.bt_c.item(i) for i in (tp, drop)]
    if seconds == 0 or math.isnan(rise[0] + rise[1]):
        return None
    rate = (round(rise[1], 1) - round(rise[0], 1)) / seconds * 60.0
    return rate / 1.8 if fahrenheit else rate


def _rise_from_greens(bt: np.ndarray, dry: int | None, greens_c: float) -> float | None:
    """BT at DRY END above the green beans' temperature: Artisan's drying-phase rise when that
    temperature is entered (its `RoR`, since 2.4.5; docs/telemetry.md)."""
    value = _at(bt, dry)
    return None if value is None else value - greens_c


def _drying_rate(t: np.ndarray, bt: np.ndarray, charge: int, dry: int | None, greens_c: float) -> float | None:
    """Artisan's drying-phase RoR with the green beans' temperature entered: from it at CHARGE to
    DRY END, °C/min."""
    rise = _rise_from_greens(bt, dry, greens_c)
    if rise is None or t.item(dry) == t.item(charge):
        return None
    return rise / (t.item(dry) - t.item(charge)) * 60.0


def _phase_delta(bt: np.ndarray, a: int | None, b: int | None) -> float | None:
    if a is None or b is None:
        return None
    rise = bt.item(b) - bt.item(a)
    return None if math.isnan(rise) else rise


def roast_metrics(session: RoastSession, ror: np.ndarray, settings: RorSettings = DEFAULT_ROR) -> dict:
    """One row of telemetry.roast_metrics (without session_id / artisan_* columns)."""
    t, bt, ev = session.time_s, session.bt_c, session.events
    charge, origin = ev["CHARGE"], session.origin_s

    def since_charge(index: int | None) -> float | None:
        return t.item(index) - origin if index is not None else None

    tp = turning_point(bt, ev)
    threshold = session.settings.get("dry_end_threshold_c")
    dry, dry_inferred = dry_end(bt, ev, tp, float(threshold) if threshold is not None else None)
    fcs, fce, drop = ev.get("FCs"), ev.get("FCe"), ev.get("DROP")
    dry_s, fcs_s, drop_s = since_charge(dry), since_charge(fcs), since_charge(drop)
    greens = session.settings.get("greens_temp_c")  # the beans' temperature at CHARGE, entered in Artisan
    row = {
        "charge_bt_c": _at(bt, charge),
        "charge_inferred": session.charge_inferred,
        "tp_s": since_charge(tp),
        "tp_bt_c": _at(bt, tp),
        "dry_end_s": dry_s,
        "dry_end_inferred": dry_inferred if dry is not None else None,
        "dry_bt_c": _at(bt, dry),
        "fcs_s": fcs_s,
        "fcs_bt_c": _at(bt, fcs),
        "fce_s": since_charge(fce),
        "fce_bt_c": _at(bt, fce),
        "drop_s": drop_s,
        "drop_bt_c": _at(bt, drop),
        "total_s": drop_s,
        "drying_s": dry_s,
        "maillard_s": fcs_s - dry_s if fcs_s is not None and dry_s is not None else None,
        "development_s": drop_s - fcs_s if drop_s is not None and fcs_s is not None else None,
        # Artisan's phase rates and rises run TP -> DRY END -> FCs -> DROP (not from CHARGE)
        "dry_phase_ror_c_per_min": _phase_rate(t, bt, tp, dry) if greens is None else _drying_rate(t, bt, charge, dry, greens),
        "mid_phase_ror_c_per_min": _phase_rate(t, bt, dry, fcs),
        "finish_phase_ror_c_per_min": _phase_rate(t, bt, fcs, drop),
        "total_ror_c_per_min": _total_rate(session, tp, drop),
        "dry_phase_delta_c": _phase_delta(bt, tp, dry) if greens is None else _rise_from_greens(bt, dry, greens),
        "mid_phase_delta_c": _phase_delta(bt, dry, fcs),
        "finish_phase_delta_c": _phase_delta(bt, fcs, drop),
    }
    row["dtr_pct"] = 100.0 * row["development_s"] / drop_s if row["development_s"] is not None and drop_s else None
    row["met_c"] = highest(session.et_c[tp:drop] if tp is not None and drop is not None else session.et_c[:0])

    begin_name = str(session.settings.get("auc_begin", DEFAULT_AUC_BEGIN))
    begin = tp if begin_name == "TP" else (dry if begin_name == "DE" else ev.get(AUC_BEGIN_EVENTS.get(begin_name, "CHARGE")))
    live = recording_session_tp(session) if drop is not None else None  # (without DROP it begins nothing)
    if live and live < drop:  # Artisan's profileAUC takes a live TP at sample 0 for none set (`if TPalarmtimeindex:`)
        begin = live  # a profile saved by its recording session: the AUC begins where it set its TP
    if session.settings.get("auc_base_from_event") and begin is not None:
        base = _at(bt, begin)  # profileAUC: the BT at the AUC's begin sample, the live TP included
    else:
        base = float(session.settings.get("auc_base_c", DEFAULT_AUC_BASE_C))

    spans = {"auc_c_min": (begin, drop), "dry_phase_auc_c_min": (charge, dry),
             "mid_phase_auc_c_min": (dry, fcs), "finish_phase_auc_c_min": (fcs, drop)}
    ends = [b for a, b in spans.values() if a is not None and b is not None]
    # the running area up to the last sample needed: a prefix of the cumulative sum is the same
    running = auc_running(t[: max(ends) + 1], bt[: max(ends) + 1], base) if base is not None and ends else None
    for column, (a, b) in spans.items():
        row[column] = auc_span(running, a, b) if a is not None and b is not None and running is not None else None
    row["auc_base_c"] = base
    row["auc_begin"] = begin_name

    # RoR features are judged between TP (past the charge plunge) and DROP.
    lo = tp if tp is not None else charge
    hi = (drop if drop is not None else len(t) - 1) + 1
    row["max_ror_c_per_min"] = highest(ror[lo:hi])
    row["ror_at_fcs_c_per_min"] = _at(ror, fcs)
    crashes = crash_episodes(t, ror, lo, hi, settings)
    row["ror_crashes"] = len(crashes)
    row["ror_spikes"] = spike_count(t, ror, lo, hi, settings)
    if fcs is not None:
        fcs_t = t.item(fcs)
        row["crash"] = any(
            t[b] >= fcs_t - settings.crash_window_before_fcs_s and t[a] <= fcs_t + settings.crash_window_after_fcs_s
            for a, b in crashes
        )
    else:
        row["crash"] = None
    row["flick"] = flick(t, ror, ev, settings) if fcs is not None and drop is not None else None

    if session.batch_weight_g and session.roasted_weight_g:
        row["weight_loss_pct"] = 100.0 * (session.batch_weight_g - session.roasted_weight_g) / session.batch_weight_g
    else:
        row["weight_loss_pct"] = None
    row["metrics_version"] = METRICS_VERSION
    return row


def flick(time_s: np.ndarray, ror: np.ndarray, events: dict[str, int], settings: RorSettings) -> bool:
    """RoR climbing again at the end: the mean RoR of the last `flick_tail` seconds before DROP
    stands `flick_rise` above the lowest RoR reached earlier in the window that opens
    `flick_window` seconds before DROP (and not before FCs)."""
    drop = events["DROP"]
    drop_t = time_s.item(drop)
    start_t = max(time_s.item(events["FCs"]), drop_t - settings.flick_window_s)
    lo = int(time_s.searchsorted(start_t))
    tail = int(time_s.searchsorted(drop_t - settings.flick_tail_s))
    before, end = ror[lo:tail], ror[tail : drop + 1]
    lowest = np.fmin.reduce(before) if before.size else math.nan  # NaN ignored (RoR is never infinite)
    valid = end == end
    count = int(np.count_nonzero(valid))
    if math.isnan(lowest) or not count:
        return False
    # np.nanmean's sum: the same pairwise sum, over the same array with NaN as 0
    mean = float(np.add.reduce(end if count == end.size else np.where(valid, end, 0.0))) / count
    return mean - float(lowest) >= settings.flick_rise_c_per_min
