"""Artisan `.alog` profiles -> `RoastSession` (°C, NaN for dropouts, events as sample indices).

Format facts are in docs/telemetry.md; the rules that matter here:
- `mode` is the unit of every temperature, of `phases` and of Artisan's RoR values;
- `temp1` is ET, `temp2` is BT, `-1` marks a dropped sample;
- `timeindex` = [CHARGE, DRY END, FCs, FCe, SCs, SCe, DROP, COOL]; CHARGE -1 / others 0 = unset;
- slider events (`specialevents*`) carry heater/fan/drum settings on a 0-100 scale.
"""
from __future__ import annotations

import functools
import json
import math
import re
from datetime import datetime, timezone
from operator import itemgetter

import numpy as np
import orjson

from daena_pipelines.telemetry import pyliteral, validate
from daena_pipelines.telemetry.metrics import FLOAT_MAX, median
from daena_pipelines.telemetry.model import EVENTS, InvalidSession, NotARoast, RoastSession
from daena_pipelines.values import BadJson, check_unique_keys, short, unique_keys

MAX_FILE_BYTES = 64 * 1024 * 1024  # far above any real profile; guards the parser's memory

_GRAMS_PER_UNIT = {"g": 1.0, "kg": 1000.0, "lb": 453.59237, "oz": 28.349523125}
# Slider names Artisan users give to event types -> our control columns.
_CONTROL_NAMES = {"burner": "heater", "heater": "heater", "power": "heater", "air": "fan", "fan": "fan", "drum": "drum"}

# Artisan `computed` keys in the profile's unit: temperatures, and differences or rates (°/min).
# (Its AUC values are always °C·min, whatever the unit.)
_COMPUTED_TEMPS = {
    "CHARGE_BT", "CHARGE_ET", "TP_BT", "TP_ET", "MET", "DRY_BT", "DRY_ET", "FCs_BT", "FCs_ET", "FCe_BT",
    "FCe_ET", "SCs_BT", "SCs_ET", "SCe_BT", "SCe_ET", "DROP_BT", "DROP_ET", "COOL_BT", "COOL_ET", "AUCbase",
}
_COMPUTED_DELTAS = {
    "dry_phase_ror", "mid_phase_ror", "finish_phase_ror", "total_ror", "fcs_ror", "dry_phase_delta_temp",
    "mid_phase_delta_temp", "finish_phase_delta_temp",
}


# The per-sample lists, the bulk of a profile: read straight into arrays (pyliteral.loads)
# (key -> whether it is a list of lists, one per extra device)
_SAMPLE_LISTS = {"timex": False, "temp1": False, "temp2": False, "extratimex": True, "extratemp1": True, "extratemp2": True}


def _empty(value) -> bool:
    return value.size == 0 if isinstance(value, np.ndarray) else not value


def f_to_c(values):
    return (np.asarray(values, dtype=float) - 32.0) * (5.0 / 9.0)


def parse_alog(data: bytes, source_path: str) -> RoastSession:
    if len(data) > MAX_FILE_BYTES:
        raise InvalidSession("too_large", f"{len(data)} bytes is larger than the {MAX_FILE_BYTES}-byte limit")
    text = validate.decode_text(data)
    try:
        profile = pyliteral.loads(text, _SAMPLE_LISTS)
    except pyliteral.LiteralError as exc:
        kind = "too_large" if "too large" in str(exc) else "syntax"
        raise InvalidSession(kind, f"not a Python literal: {exc}") from None
    if not isinstance(profile, dict):
        raise InvalidSession("not_a_dict", f"top-level literal is a {type(profile).__name__}, expected a dict")
    return profile_to_session(profile)


# An Artisan profile exported as JSON holds the per-sample lists under these keys (a RoasTime
# roast, the other JSON roast format, holds neither)
_ARTISAN_JSON_SIGNATURE = (b'"timex"', b'"temp2"')


def looks_like_artisan_json(data: bytes) -> bool:
    """Whether `data` may be an Artisan profile; the parser decides (NotARoast) or `is_artisan_json`."""
    return all(key in data for key in _ARTISAN_JSON_SIGNATURE)


def _is_artisan_profile(value) -> bool:
    # the keys at the top level: a tool's column list or a collection of profiles names them too
    return isinstance(value, dict) and "timex" in value and "temp2" in value


_NOT_AN_ARTISAN_PROFILE = "a JSON object without Artisan's 'timex' and 'temp2' at its top level"


def is_artisan_json(data: bytes) -> bool:
    """Whether `data` is an Artisan profile as `parse_artisan_json` decides, for those who do not
    parse it (the landing sensor): a file JSON cannot read counts as a damaged profile."""
    if not looks_like_artisan_json(data):
        return False
    try:
        return _is_artisan_profile(_load_json(validate.decode_text(data)))
    except InvalidSession:
        return True  # the parser names what is wrong with it


def _load_json(text: str):
    try:
        profile = orjson.loads(text)
        check_unique_keys(text, profile)  # orjson keeps the last of a key written twice
        return profile
    except BadJson as exc:
        raise InvalidSession("syntax", str(exc)) from None
    except orjson.JSONDecodeError:
        try:  # Python's json writes a NaN or infinite float as NaN / Infinity, which orjson refuses
            return json.loads(text, object_pairs_hook=unique_keys)
        except ValueError as exc:  # BadJson (a key twice) included
            raise InvalidSession("syntax", f"not JSON: {exc}") from None


def parse_artisan_json(data: bytes, source_path: str) -> RoastSession:
    """An Artisan profile exported as JSON (File > Export > JSON: Artisan's `exportJSON` writes
    the same profile dict it saves as an .alog with Python's `json.dump`; Import > JSON reads it
    back into the same profile). docs/telemetry.md, "Artisan profiles exported as JSON"."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidSession("too_large", f"{len(data)} bytes is larger than the {MAX_FILE_BYTES}-byte limit")
    profile = _load_json(validate.decode_text(data))
    if not isinstance(profile, dict):
        raise InvalidSession("not_a_dict", f"top-level JSON value is a {type(profile).__name__}, expected an object")
    if not _is_artisan_profile(profile):
        raise NotARoast(_NOT_AN_ARTISAN_PROFILE)
    return profile_to_session(profile, source_format="artisan_json")


def _require_list(profile: dict, key: str) -> list | np.ndarray:
    value = profile.get(key)
    if value is None:
        raise InvalidSession("missing_field", f"required key '{key}' is missing")
    if not isinstance(value, (list, np.ndarray)):  # an array: a list of numbers pyliteral read as one
        raise InvalidSession("bad_value", f"'{key}' must be a list, found {type(value).__name__}")
    return value


_NUMBER_TYPES = frozenset({int, float})
_INT_TYPE = frozenset({int})


def _numeric(values: list | np.ndarray, key: str, limit: float | None = None) -> np.ndarray:
    """`values` as a float64 array (an array is passed on as it is: pyliteral made it of numbers)."""
    if type(values) is np.ndarray:
        return _checked(values, key, limit)
    # bool is an int to numpy: True would become 1.0, so types are checked before converting
    # (the set of exact types first: one C-level pass; the index only when something else is there)
    if not _NUMBER_TYPES.issuperset(set(map(type, values))):
        bad = next((i for i, v in enumerate(values) if isinstance(v, bool) or not isinstance(v, (int, float))), None)
        if bad is not None:
            raise InvalidSession("bad_value", f"'{key}'[{bad}] is {short(values[bad])}, expected a number")
    try:
        # (flat: every item is a number; fromiter converts a list of numbers ~2x faster than asarray)
        array = np.fromiter(values, dtype=float, count=len(values))
    except OverflowError:
        bad = next(i for i, v in enumerate(values) if isinstance(v, int) and abs(v) > 2**1023)
        raise InvalidSession("out_of_range", f"'{key}'[{bad}] is an integer of {len(str(abs(values[bad])))} digits, beyond any float") from None
    return _checked(array, key, limit)


def _checked(array: np.ndarray, key: str, limit: float | None) -> np.ndarray:
    # the common case in one comparison (NaN and infinity are not <= any bound); count_nonzero
    # is a fraction of the per-call cost of ndarray.all/any
    if np.count_nonzero(np.abs(array) <= (FLOAT_MAX if limit is None else limit)) == array.size:
        return array
    if not np.isfinite(array).all():
        raise InvalidSession("bad_value", f"'{key}' holds a non-finite number at index {int(np.argmin(np.isfinite(array)))}")
    if limit is not None and (np.abs(array) > limit).any():
        bad = int(np.argmax(np.abs(array) > limit))
        raise InvalidSession("out_of_range", f"'{key}'[{bad}] = {array[bad]:.6g} is beyond ±{limit:g}: not a measurement")
    return array


def _temperatures(values: list, key: str, unit: str) -> np.ndarray:
    raw = _numeric(values, key)
    # Artisan's dropout marker, in either unit
    return np.where(raw == -1, np.nan, f_to_c(raw) if unit == "F" else raw)


def _events(timeindex: list, n: int) -> tuple[dict[str, int], bool]:
    """(events, whether CHARGE is inferred). Without a CHARGE mark the first sample stands in
    for it, as Artisan does when it analyses such a profile."""
    # (the set of exact types first: one C-level pass; the full test only when another type is there)
    if len(timeindex) < 7 or not (
        _INT_TYPE.issuperset(map(type, timeindex)) or all(isinstance(i, int) and not isinstance(i, bool) for i in timeindex)
    ):
        raise InvalidSession("bad_events", f"'timeindex' must hold at least 7 integers, found {timeindex!r}")
    charge_inferred = timeindex[0] == -1
    charge = 0 if charge_inferred else timeindex[0]
    events = {"CHARGE": charge}
    events.update({name: idx for name, idx in zip(EVENTS[1:], timeindex[1:8]) if idx > 0})
    for name, idx in events.items():
        if not 0 <= idx < n:
            raise InvalidSession("bad_events", f"{name} index {idx} is outside the {n} samples")
    if "DROP" in events and events["DROP"] <= charge:
        raise InvalidSession("event_order", f"CHARGE (sample {charge}) is not before DROP (sample {events['DROP']})")
    return events, charge_inferred


_UNICODE_ESCAPE = re.compile(r"\\u([0-9a-fA-F]{4})")


def _unescape_unicode(match: re.Match) -> str:
    return chr(int(match.group(1), 16))


def _text(value, key: str) -> str | None:
    if value is not None and not isinstance(value, str):
        raise InvalidSession("bad_value", f"'{key}' is {short(value)} ({type(value).__name__}), expected text")
    if not value or not value.strip():
        return None
    # Artisan stores line breaks in free text as the two characters backslash + n, and some
    # versions wrote non-ASCII letters as backslash-u escapes (e.g. \u00e9 for é).
    text = value.replace("\\n", "\n").replace("\\t", "\t")
    if "\\u" in text:
        # a pair of escaped UTF-16 surrogates becomes one character
        text = _UNICODE_ESCAPE.sub(_unescape_unicode, text).encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return text.strip()


def _weight_g(weight, index: int) -> float | None:
    if not isinstance(weight, list) or len(weight) < 3:
        return None
    value, unit = weight[index], str(weight[2]).lower()
    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
        raise InvalidSession("bad_value", f"'weight'[{index}] is {short(value)}, expected a number")
    if not value or value <= 0 or unit not in _GRAMS_PER_UNIT:
        return None  # Artisan writes 0 for a weight not entered
    return validate.check_number(value, f"'weight'[{index}]") * _GRAMS_PER_UNIT[unit]


def _roasted_at(profile: dict) -> datetime | None:
    epoch = profile.get("roastepoch")
    if isinstance(epoch, (int, float)) and not isinstance(epoch, bool) and epoch > 0:
        if not validate.EARLIEST <= epoch < validate.LATEST:
            raise InvalidSession("out_of_range", f"'roastepoch' {epoch!r} is not a time {validate.TIME_RANGE}")
        return datetime.fromtimestamp(epoch, tz=timezone.utc)
    iso = profile.get("roastisodate")
    if isinstance(iso, str) and iso:
        try:
            return datetime.fromisoformat(f"{iso}T{profile.get('roasttime') or '00:00:00'}").replace(tzinfo=timezone.utc)
        except ValueError:
            return None
    return None


def _etype_names(profile: dict) -> list[str]:
    names = profile.get("etypes")
    if isinstance(names, list) and len(names) >= 4:
        return [str(n) for n in names]
    return ["Air", "Drum", "Damper", "Burner", "--"]


def _slider_channels(profile: dict, n: int) -> dict[str, np.ndarray]:
    """Forward-filled slider settings per sample, keyed by the event type's name."""
    indices = profile.get("specialevents") or []
    types = profile.get("specialeventstype") or []
    values = profile.get("specialeventsvalue") or []
    if not (isinstance(indices, list) and len(indices) == len(types) == len(values)):
        return {}
    etypes = _etype_names(profile)
    # per channel: the settings' sample indices (ascending) and values, in file order for equal indices
    settings: dict[str, tuple[list[int], list[int]]] = {}
    for idx, etype, value in sorted(zip(indices, types, values), key=itemgetter(0)):
        if not (isinstance(idx, int) and isinstance(etype, int) and 0 <= etype < 4 and 0 <= idx < n):
            continue  # type 4 = plain annotation without a value
        found = settings.get(etypes[etype])
        if found is None:
            found = settings[etypes[etype]] = ([], [])
        found[0].append(idx)
        found[1].append(round(float(value) * 10) - 10)  # Artisan's internal scale -> shown 0..100
    channels: dict[str, np.ndarray] = {}
    for name, (starts, levels) in settings.items():
        # each setting holds until the next one (of settings at the same sample the last wins:
        # the others hold for 0 samples); NaN before the first
        spans = [starts[0]] + [end - start for start, end in zip(starts, starts[1:] + [n])]
        channels[name] = np.repeat(np.array([np.nan] + levels, dtype=float), spans)
    return channels


def _extra_device_channels(profile: dict, timex: np.ndarray) -> dict[str, np.ndarray]:
    """Extra device curves on the main time base, named with `{n}` placeholders resolved."""
    etypes = _etype_names(profile)
    channels: dict[str, np.ndarray] = {}
    times = profile.get("extratimex") or []
    for k, device_times in enumerate(times):
        for curve in (1, 2):
            names = profile.get(f"extraname{curve}") or []
            curves = profile.get(f"extratemp{curve}") or []
            if k >= len(curves) or _empty(curves[k]):
                continue
            name = str(names[k]) if k < len(names) and names[k] else f"extra{k + 1}_{curve}"
            if "{" in name:
                for i, etype in enumerate(etypes):
                    name = name.replace("{" + str(i) + "}", etype)
            values = _numeric(curves[k], f"extratemp{curve}[{k}]")  # finite
            dropped = values == -1
            if np.count_nonzero(dropped) == values.size:
                continue  # a configured but unused curve: nothing was recorded
            values = np.where(dropped, np.nan, values)  # not in place: it may be the profile's array
            if len(values) == len(timex):
                series = values
            else:  # its own clock: put it on ours
                device_clock = _numeric(device_times, f"extratimex[{k}]")
                if len(device_clock) != len(values) or len(values) < 2:
                    raise InvalidSession(
                        "length_mismatch", f"extra device {k}: {len(values)} values for {len(device_clock)} times"
                    )
                series = np.interp(timex, device_clock, values, left=np.nan, right=np.nan)
            key = name if name not in channels else f"{name} ({k + 1}.{curve})"
            channels[key] = series
    return channels


def _computed_celsius(computed, unit: str) -> dict[str, float] | None:
    values = _computed_numbers(computed, unit)
    if values and not math.isfinite(sum(values.values())):
        # NaN or an infinity (a JSON export holds them; Artisan writes 0 for what it could not
        # compute) is no value: as a setting (AUCbase) it became null in the stored JSON
        values = {key: value for key, value in values.items() if math.isfinite(value)}
    return values


def _computed_numbers(computed, unit: str) -> dict[str, float] | None:
    if not isinstance(computed, dict):
        return None
    if unit == "C":
        # the loop below without conversions: nearly every value is a float already, so the dict
        # is copied whole and only the other values are changed (about a quarter less CPU than a
        # comprehension that converts and tests every value); the key order stays the file's
        result = dict(computed)
        for key in [key for key, value in computed.items() if type(value) is not float]:
            if type(computed[key]) is int:
                result[key] = float(computed[key])
            else:
                del result[key]  # no number (a bool is not one either)
        for key in _COMPUTED_TEMPS.intersection(result):
            if result[key] == -1:
                del result[key]  # Artisan's dropout marker, as below
        return result
    result: dict[str, float] = {}
    fahrenheit = unit == "F"
    for key, value in computed.items():
        if type(value) not in _NUMBER_TYPES:  # a parsed literal's numbers are exactly int or float (a bool is not)
            continue
        if key in _COMPUTED_TEMPS:
            if value == -1:
                continue  # Artisan's dropout marker (e.g. MET of a profile without an ET probe)
            if fahrenheit:
                value = (value - 32.0) * (5.0 / 9.0)  # f_to_c on a scalar, without numpy's overhead
        elif fahrenheit and key in _COMPUTED_DELTAS:
            value = value * 5.0 / 9.0
        result[key] = float(value)
    return result


# Artisan values that depend on where DRY END is. Before 2.4.4 Artisan computed all of them from
# the dry-end threshold even when DRY END was marked (unless a setting not saved in the file made
# marks move the threshold); before 2.4.5 the phase times, and the Maillard RoR divided by them,
# still did. Ours honour the mark as modern Artisan does, so such values describe another DRY END
# and are not kept.
_DRY_END_VALUES = (
    "DRY_time", "DRY_BT", "DRY_ET", "dry_phase_ror", "mid_phase_ror", "dry_phase_delta_temp", "mid_phase_delta_temp",
    "dry_phase_AUC", "mid_phase_AUC",
)
_PHASE_TIMES = ("dryphasetime", "midphasetime", "mid_phase_ror")
_PHASE_SPANS = ("dryphasetime", "midphasetime", "finishphasetime")
# event times in `computed`, counted from CHARGE (from the recording's zero while CHARGE is unset)
_EVENT_TIMES = frozenset(f"{e}_time" for e in ("TP", "DRY", "FCs", "FCe", "SCs", "SCe", "DROP", "COOL"))


def _version(text) -> tuple[int, ...]:
    """'2.4.4' -> (2, 4, 4); a missing or unreadable version counts as oldest."""
    return _version_of(text) if isinstance(text, str) else (0,)


@functools.lru_cache(maxsize=256)  # a few Artisan versions wrote nearly every file
def _version_of(text: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", text)[:3]) or (0,)


def _comparable(computed: dict[str, float], profile: dict, dry_end_marked: bool) -> dict[str, float]:
    """Artisan's values without those computed under another rule than the one our metrics follow
    (docs/telemetry.md, "Agreement with Artisan"); `computed` itself (changed) when none is dropped."""
    version = _version(profile.get("version"))
    dropped: tuple[str, ...] = ()
    if dry_end_marked and version < (2, 4, 4):
        dropped = _DRY_END_VALUES + _PHASE_TIMES
    elif dry_end_marked and version < (2, 4, 5):
        dropped = _PHASE_TIMES
    elif "DRY_time" not in computed:
        # no DRY END for Artisan to bound the phases: it fills the unset bound with DROP (dry
        # phase, i.e. the CHARGE-DROP area) and with the AUC begin (Maillard phase)
        dropped = ("dry_phase_AUC", "mid_phase_AUC")
    if profile["timeindex"][0] < 0:
        # without CHARGE, Artisan up to 2.8 (fixed by 2.10.6) measured total and drying time
        # from the last sample (the unset index -1), so they came out negative
        dropped += tuple(k for k in ("totaltime", "dryphasetime") if computed.get(k, 0) < 0)
    charge, written = profile["timeindex"][0], profile["computed"]
    if charge >= 0 and "CHARGE_BT" not in written and "CHARGE_ET" not in written:
        # Artisan writes CHARGE_BT/ET whenever CHARGE is set (even as -1 for a dropout): this
        # block was computed while it was not, so its event times count from the recording's
        # zero and its total and drying times from no CHARGE (one held-out file)
        dropped += ("totaltime", "dryphasetime")
        offset = float(profile["timex"][charge])
        computed = {k: v - offset if k in _EVENT_TIMES else v for k, v in computed.items()}
    # Artisan before 1.6 cut the phase times to whole seconds (written as integers, like the total
    # time below); no event time of the block gives these spans with a single rounding: not kept
    dropped += tuple(k for k in _PHASE_SPANS if type(written.get(k)) is int)
    result = {k: v for k, v in computed.items() if k not in dropped} if dropped else computed
    if isinstance(profile["computed"].get("totaltime"), int) and "DROP_time" in computed and profile["timeindex"][0] >= 0:
        # Artisan 2.1.2 and older cut the total time to whole seconds; DROP_time is the same span
        result["totaltime"] = computed["DROP_time"]
    return result


def _live_tp_curve(annotations, events: dict[str, int], et_raw, bt_raw) -> str | None:
    """Which saved curve Artisan's live TP recognition read, when the file shows it was not the
    saved BT: "ET" when ET and BT were exchanged after recording (Roast > Switch ET/BT keeps the
    live TP) and the recording session saved the file; "none" when they were exchanged and the
    file was saved again after being reopened (which clears the live TP). None otherwise.

    Artisan draws the CHARGE annotation at BT's CHARGE reading, its two labels the same distance
    above and below, and keeps and saves that position (`anno_positions`: key, temperature label
    x/y, time label x/y): its midpoint is the BT of CHARGE as the recording saw it. A TP
    annotation saved after DROP's was first drawn after the recording (a reopened profile redraws
    them in time order). docs/telemetry.md, "Curves exchanged after recording"."""
    if not isinstance(annotations, list) or "CHARGE" not in events:
        return None
    marks = [a for a in annotations if isinstance(a, list) and len(a) == 5]
    keys = [a[0] for a in marks]
    if 0 not in keys:
        return None
    label = marks[keys.index(0)]
    charge = events["CHARGE"]
    try:
        middle, et, bt = (label[2] + label[4]) / 2.0, float(et_raw[charge]), float(bt_raw[charge])
    except (TypeError, ValueError):
        return None
    if not (abs(middle - et) < _LABEL_TOLERANCE <= abs(middle - bt)):
        return None
    after_drop = -1 in keys and 6 in keys and keys.index(-1) > keys.index(6)
    return "ET" if after_drop else "none"


def _saved_by(total_correction) -> str | None:
    """Which Artisan session saved the file, where `flavors_total_correction` (the cupping total's
    correction, written since Artisan 3.x) tells: Artisan starts it, and resets it with every new
    roast, as the integer 0 (`canvas.py`: `__init__` and `reset()`, which also clears the live
    TP), and a profile loaded from a file brings it back as a float, so the integer is written
    only by the session that recorded the roast ("recording": its live TP is still set) and a
    float by one that reopened it ("reopened"). None when the key is absent or not a number.
    docs/telemetry.md, "Which session saved the file"."""
    kind = type(total_correction)
    return "recording" if kind is int else "reopened" if kind is float else None


_LABEL_TOLERANCE = 0.01  # the labels' midpoint is the reading up to rounding (file unit)


def profile_to_session(profile: dict, source_format: str = "artisan_alog") -> RoastSession:
    unit = profile.get("mode")
    if unit not in ("C", "F"):
        raise InvalidSession("bad_unit", f"'mode' must be 'C' or 'F', found {unit!r}")
    timex = _numeric(_require_list(profile, "timex"), "timex", validate.MAX_RECORDING_S)
    et_raw, bt_raw = _require_list(profile, "temp1"), _require_list(profile, "temp2")
    if not len(timex) == len(et_raw) == len(bt_raw):
        raise InvalidSession(
            "length_mismatch", f"timex has {len(timex)} samples, temp1 {len(et_raw)}, temp2 {len(bt_raw)}"
        )
    if len(timex) < 2:
        raise InvalidSession("empty_profile", f"only {len(timex)} samples recorded")
    steps = timex[1:] - timex[:-1]  # np.diff, without its wrapper's cost
    if np.count_nonzero(steps <= 0):
        bad = int(np.argmax(steps <= 0)) + 1
        raise InvalidSession("time_not_increasing", f"timex[{bad}] = {timex[bad]} does not follow timex[{bad - 1}] = {timex[bad - 1]}")
    events, charge_inferred = _events(_require_list(profile, "timeindex"), len(timex))

    controls: dict[str, np.ndarray] = {}
    extra = _extra_device_channels(profile, timex)
    for name, series in _slider_channels(profile, len(timex)).items():
        column = _CONTROL_NAMES.get(name.strip().lower())
        if column and column not in controls:
            controls[column] = series
        else:
            extra[f"slider:{name}"] = series

    computed = _computed_celsius(profile.get("computed"), unit)
    if computed:
        computed = _comparable(computed, profile, "DRY_END" in events)
    settings: dict[str, object] = {}
    if computed:
        if "AUCbase" in computed:
            settings["auc_base_c"] = computed["AUCbase"]
        if isinstance(profile["computed"].get("AUCbegin"), str):
            settings["auc_begin"] = profile["computed"]["AUCbegin"]
        if profile["computed"].get("AUCfromeventflag") == 1:
            settings["auc_base_from_event"] = True  # base = BT at the begin event
        if settings.get("auc_begin") == "TP":
            # when the recording session's timed TP fallback fires (metrics.live_tp)
            version = _version(profile.get("version"))
            if version >= (1, 6, 1):  # before, the recognition accepted any TP and had no fallback
                settings["live_tp_fallback_s"] = 120.0 if version >= (3, 2) else 150.0  # 3.2.0: a held-out file
                if version >= (3, 2):  # checked before the recognition (canvas.py sample_processing)
                    settings["live_tp_fallback_first"] = True
            saved_by = _saved_by(profile.get("flavors_total_correction"))
            if saved_by is not None:
                settings["saved_by"] = saved_by
            curve = _live_tp_curve(profile.get("anno_positions"), events, et_raw, bt_raw)
            if curve is not None:
                settings["live_tp_curve"] = curve
    greens = profile.get("greens_temp")  # the beans' temperature at CHARGE, entered by the user
    if type(greens) in _NUMBER_TYPES:
        # (an infinity, which a JSON export can hold, gave a drying RoR of -inf and is no JSON setting)
        greens = validate.check_number(greens, "'greens_temp'")
        if greens > 0 and computed and _version(profile.get("version")) >= (2, 4, 5):  # Artisan's commit 6e81812b (2021-02-06)
            settings["greens_temp_c"] = (greens - 32.0) * (5.0 / 9.0) if unit == "F" else greens
    phases = profile.get("phases")
    if isinstance(phases, list) and len(phases) >= 2 and isinstance(phases[1], (int, float)) and not isinstance(phases[1], bool):
        # the dry-end threshold, in the profile's unit like every temperature (finite: a setting)
        threshold = validate.check_number(phases[1], "'phases'[1]")
        settings["dry_end_threshold_c"] = (threshold - 32.0) * (5.0 / 9.0) if unit == "F" else threshold
    interval = profile.get("samplinginterval")
    source = "simulator" if profile.get("daena_source") == "simulator" else "real"
    return RoastSession(
        source_format=source_format,
        source=source,
        time_s=timex,
        bt_c=_temperatures(bt_raw, "temp2", unit),
        et_c=_temperatures(et_raw, "temp1", unit),
        events=events,
        original_unit=unit,
        roasted_at=_roasted_at(profile),
        machine=_text(profile.get("roastertype"), "roastertype"),
        beans=_text(profile.get("beans"), "beans"),
        title=_text(profile.get("title"), "title"),
        notes=_text(profile.get("roastingnotes"), "roastingnotes"),
        batch_weight_g=_weight_g(profile.get("weight"), 0),
        roasted_weight_g=_weight_g(profile.get("weight"), 1),
        sample_interval_s=float(interval) if isinstance(interval, (int, float)) and interval > 0 else median(steps),
        roast_uuid=profile.get("roastUUID") if isinstance(profile.get("roastUUID"), str) else None,
        controls=controls,
        control_unit="pct" if controls else None,
        extra=extra,
        settings=settings,
        artisan_computed=computed,
        charge_inferred=charge_inferred,
    )
