"""Aillio RoasTime JSON roasts -> `RoastSession` (°C, NaN for dropouts, events as sample indices).

Field meanings follow Artisan's importer for these files (its `extractProfileBulletDict`, see
docs/telemetry.md): samples at `sampleRate` per second; `beanTemperature` is BT and
`drumTemperature` ET; `exitTemperature` and `beanDerivative` are extra curves; `celsius: false`
means °F; CHARGE is `roastStartIndex` and DROP `roastEndIndex` (0-based), while the yellowing
(DRY END) and crack indices are 1-based; `actions.actionTimeList` entries set power (ctrlType 0),
fan (1) or drum speed (2) on the Bullet's own 1-9 scale from their 1-based sample index on.
"""
from __future__ import annotations

import codecs
from datetime import datetime, timezone

import numpy as np
import orjson

from daena_pipelines.telemetry import validate
from daena_pipelines.telemetry.model import InvalidSession, RoastSession
from daena_pipelines.values import BadJson, check_unique_keys, short

# A file is taken for a RoasTime roast when it is a JSON object (its first byte after JSON's
# whitespace is "{") holding RoasTime's BT curve (dispatch by content): the first test needs the
# head alone, so a file that fails it is never read in full.
SIGNATURE = b'"beanTemperature"'
HEAD_BYTES = 256
_ONE_BASED_EVENTS = {  # RoasTime key -> our event
    "indexYellowingStart": "DRY_END", "indexFirstCrackStart": "FCs", "indexFirstCrackEnd": "FCe",
    "indexSecondCrackStart": "SCs", "indexSecondCrackEnd": "SCe",
}
_CONTROL_TYPES = {0: "heater", 1: "fan", 2: "drum"}
_OLD_CONTROL_ARRAYS = {"inductionPowerSetting": "heater", "blowerSetting": "fan", "drumSpeedSetting": "drum"}


def could_be_roastime(head: bytes) -> bool:
    """Whether a file beginning with `head` (up to HEAD_BYTES of it) can be a RoasTime roast (a
    UTF-8 byte order mark, which a Windows editor may add, is not content)."""
    return head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")[:1] == b"{"


def looks_like_roastime(data: bytes) -> bool:
    return could_be_roastime(data[:HEAD_BYTES]) and SIGNATURE in data


def _numbers(values: list, key: str) -> np.ndarray:
    """A JSON list of numbers as floats, null as NaN (a dropout). Anything else is named by its
    index: numpy would read True as 1.0 and the text '201.5' as 201.5, silently."""
    bad = next((i for i, v in enumerate(values) if v is not None and (type(v) is bool or not isinstance(v, (int, float)))), None)
    if bad is not None:
        raise InvalidSession("bad_value", f"'{key}'[{bad}] is {short(values[bad])} ({type(values[bad]).__name__}), expected a number")
    return np.asarray(values, dtype=float)


def _series(data: dict, key: str, n: int, fahrenheit: bool) -> np.ndarray:
    """A temperature curve on BT's samples: cut or padded with dropouts to n, °C, NaN for dropouts."""
    values = data.get(key)
    if not isinstance(values, list):
        return np.full(n, np.nan)
    array = np.concatenate((_numbers(values[:n], key), np.full(n - min(len(values), n), np.nan)))
    array[array == -1] = np.nan
    return (array - 32.0) * (5.0 / 9.0) if fahrenheit else array


def _int(value) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _events(data: dict, n: int) -> tuple[dict[str, int], bool]:
    start = _int(data.get("roastStartIndex"))
    events = {"CHARGE": min(max(start, 0), n - 1) if start is not None else 0}
    for key, name in _ONE_BASED_EVENTS.items():
        index = _int(data.get(key))
        if index is not None and index > 1:
            events[name] = min(index - 1, n - 1)
    end = _int(data.get("roastEndIndex"))
    events["DROP"] = min(max(end, 0), n - 1) if end is not None else n - 1
    if events["DROP"] <= events["CHARGE"]:
        raise InvalidSession("event_order", f"CHARGE (sample {events['CHARGE']}) is not before DROP (sample {events['DROP']})")
    return events, start is None


def _actions(data: dict) -> list[tuple[int, str, float]]:
    """(1-based sample index, control, level) of each setting in `actions.actionTimeList`, in
    index order; an entry without an integer index or a numeric value is named, never skipped."""
    actions = (data.get("actions") or {}).get("actionTimeList") if isinstance(data.get("actions"), dict) else None
    settings = []
    for i, action in enumerate(actions or []):
        where = f"'actions.actionTimeList'[{i}]"
        if not isinstance(action, dict):
            raise InvalidSession("bad_value", f"{where} is {short(action)}, expected an object")
        ctrl_type, index, value = _int(action.get("ctrlType")), _int(action.get("index")), action.get("value")
        if ctrl_type is not None and ctrl_type not in _CONTROL_TYPES:  # a control the Bullet R1 lacks: none of ours
            continue
        if ctrl_type is None or index is None or type(value) not in (int, float):
            raise InvalidSession("bad_value", f"{where} has ctrlType {short(action.get('ctrlType'))}, index {short(action.get('index'))} "
                                 f"and value {short(value)}: expected numbers (ctrlType 0-2, a sample index, a level)")
        settings.append((index, _CONTROL_TYPES[ctrl_type], float(value)))
    return sorted(settings, key=lambda setting: setting[0])


def _controls(data: dict, n: int) -> dict[str, np.ndarray]:
    controls: dict[str, np.ndarray] = {}
    for index, name, value in _actions(data):
        series = controls.setdefault(name, np.full(n, np.nan))
        series[min(max(index - 1, 0), n - 1):] = value  # held until the next setting
    for key, name in _OLD_CONTROL_ARRAYS.items():  # older files: one setting per sample
        values = data.get(key)
        if name not in controls and isinstance(values, list) and values:
            series = np.full(n, np.nan)
            series[: min(n, len(values))] = _numbers(values[:n], key)
            controls[name] = series
    return controls


def _roasted_at(value) -> datetime | None:
    """`dateTime`: milliseconds since the epoch, or ISO 8601 text (without an offset: UTC); None
    when absent (null, 0, empty). Anything else is refused, not taken for a roast without a date."""
    if value is None or value == 0 or value == "":
        return None
    try:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)
    except (ValueError, OverflowError, OSError):  # beyond the years a datetime holds, or not ISO 8601
        pass
    raise InvalidSession("bad_value", f"'dateTime' is {short(value)}: expected milliseconds since 1970 or ISO 8601 text, a time {validate.TIME_RANGE}")


def _text(value) -> str | None:
    return value.strip() if isinstance(value, str) and value.strip() else None


def _grams(value) -> float | None:
    """A weight in grams; RoasTime often writes it as text ('421', '0421', '707.5': 48 of 56 real
    files in a public Bullet collection), which Artisan's importer reads with float() too."""
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not np.isfinite(value) or value <= 0:
        return None
    return float(value)


def parse_roastime(data: bytes, source_path: str) -> RoastSession:
    text = data.removeprefix(codecs.BOM_UTF8)
    try:
        roast = orjson.loads(text)
        check_unique_keys(text, roast)  # orjson keeps the last of a key written twice
    except orjson.JSONDecodeError as exc:
        raise InvalidSession("syntax", f"not JSON: {exc}") from None
    except BadJson as exc:
        raise InvalidSession("syntax", str(exc)) from None
    if not isinstance(roast, dict):
        raise InvalidSession("not_a_dict", f"top-level JSON value is a {type(roast).__name__}, expected an object")
    bt_raw = roast.get("beanTemperature")
    if not isinstance(bt_raw, list):
        raise InvalidSession("missing_field", "required key 'beanTemperature' is missing or not a list")
    n = len(bt_raw)
    if n < 2:
        raise InvalidSession("empty_profile", f"only {n} samples recorded")
    rate = roast.get("sampleRate", 2.0)
    if not isinstance(rate, (int, float)) or isinstance(rate, bool) or rate <= 0:
        raise InvalidSession("bad_value", f"'sampleRate' is {rate!r}, expected samples per second > 0")
    fahrenheit = roast.get("celsius") is False
    events, charge_inferred = _events(roast, n)
    extra = {name: _series(roast, key, n, fahrenheit=False) for key, name in  # extra channels stay in source units
             (("exitTemperature", "Exhaust"), ("beanDerivative", "RoR (RoasTime)")) if isinstance(roast.get(key), list)}
    controls = _controls(roast, n)
    bean = roast.get("bean")
    return RoastSession(
        source_format="roastime_json",
        source="real",
        time_s=np.arange(n) / float(rate),
        bt_c=_series(roast, "beanTemperature", n, fahrenheit),
        et_c=_series(roast, "drumTemperature", n, fahrenheit),
        events=events,
        original_unit="F" if fahrenheit else "C",
        roasted_at=_roasted_at(roast.get("dateTime")),
        machine="Aillio Bullet R1",
        beans=_text(roast.get("beanName")) or (_text(bean.get("beanName")) if isinstance(bean, dict) else None),
        title=_text(roast.get("roastName")) or _text(roast.get("beanName")),
        notes=_text(roast.get("comments")),
        batch_weight_g=_grams(roast.get("weightGreen")),
        roasted_weight_g=_grams(roast.get("weightRoasted")),
        sample_interval_s=1.0 / float(rate),
        roast_uuid=_text(roast.get("uid")),
        controls=controls,
        control_unit="r1_level" if controls else None,
        extra=extra,
        charge_inferred=charge_inferred,
    )
