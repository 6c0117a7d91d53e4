"""Every value a session contributes, checked before the batch write.

A parser turns bytes into a ``RoastSession``; this module decides whether that session may go
to the warehouse. Each problem class gets one of two answers (docs/telemetry.md, "Ingest
behaviour"):

- reject (``InvalidSession``, one error row naming the file): values no roast can have or the
  warehouse cannot store — text that is not valid Unicode (lone surrogates), a non-number where
  a number belongs, no BT reading at all, events in an impossible order, times beyond a day,
  samples denser than any roast logger records;
- load with a flag (``settings.quality_flags``, reported by the ``quality_flags`` check): values
  that are possible, or a part of an otherwise good roast — temperature readings beyond any probe
  (kept as dropouts), a BT curve whose peak does not fit a roast in the file's unit.
"""
from __future__ import annotations

from datetime import datetime, timezone

import numpy as np

from daena_pipelines.telemetry.metrics import FLOAT_MAX, highest, median
from daena_pipelines.telemetry.model import EVENTS, InvalidSession, RoastSession
from daena_pipelines.values import as_number, as_text

# Beyond any roaster probe (type-K thermocouples end near 1370 °C): such a reading is a sensor
# error code or corruption (a real profile in ../shared has ET = 2046 in one sample), so it
# becomes a dropout and the session a flag, rather than the whole roast a rejection.
MAX_ABS_TEMPERATURE_C = 2000.0
MAX_RECORDING_S = 24 * 3600.0
# Artisan samples at 0.5 s or slower by default and the R1 sidecar records at 1 s; anything much
# denser is corruption and would make the per-sample windows (RoR, spikes) arbitrarily wide.
MIN_MEDIAN_STEP_S = 0.05
# A roast's BT between CHARGE and DROP peaks near 180-240 °C. A peak outside this range in °C is
# what a Fahrenheit curve marked 'C' (or a Celsius one marked 'F') looks like after conversion.
ROAST_PEAK_BT_RANGE_C = (120.0, 300.0)
# a roast's time: after the first day of the epoch (a clock never set reads 1970-01-01), before 2100
EARLIEST, LATEST = (datetime(y, m, d, tzinfo=timezone.utc).timestamp() for y, m, d in ((1970, 1, 2), (2100, 1, 1)))
TIME_RANGE = "between 1970-01-02 and 2100-01-01 UTC"
_AFTER_DROP_ALLOWED = {"DROP", "COOL"}


def decode_text(data: bytes, where: str = "") -> str:
    """A roast file's bytes as text (UTF-8, a leading byte order mark dropped); InvalidSession when
    empty or not UTF-8. ``where`` prefixes the messages (e.g. the file)."""
    if not data or data.isspace():  # (data.strip() would copy it)
        raise InvalidSession("empty", f"{where}empty file ({len(data)} bytes)")
    try:
        return data.decode("utf-8-sig")  # a byte order mark some editors add is not content
    except UnicodeDecodeError as exc:
        near = data[max(exc.start - 12, 0):exc.start + 12]
        raise InvalidSession("encoding", f"{where}not UTF-8 text: byte {exc.start} ({exc.reason}), near {near!r}") from None


def check_text(value, name: str, required: bool = False) -> str | None:
    """``value`` if it is text the warehouse can store (or None), else ``InvalidSession``."""
    if type(value) is str and value.isascii():  # the common case, without the calls below
        return value
    if value is None:
        if required:
            raise InvalidSession("bad_value", f"{name} is missing")
        return None
    return as_text(value, name, InvalidSession)


def check_number(value, name: str) -> float | None:
    """A finite int/float (not bool, not a numeric string) or None."""
    return None if value is None else as_number(value, name, InvalidSession)


def _check_nested_text(value, name: str) -> None:
    """Every string (keys too) inside the JSON-like `value`."""
    if isinstance(value, str):
        check_text(value, name)
    elif isinstance(value, dict):
        for key, item in value.items():
            check_text(str(key), f"{name} key")
            if isinstance(item, _HOLDS_TEXT):  # a number or flag holds none: no call, no name built
                _check_nested_text(item, f"{name}.{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if isinstance(item, _HOLDS_TEXT):
                _check_nested_text(item, f"{name}[{i}]")


_HOLDS_TEXT = (str, dict, list, tuple)


def _check_series(values: np.ndarray, name: str, n: int, limit: float) -> None:
    if values.shape != (n,):
        raise InvalidSession("length_mismatch", f"{name} has shape {values.shape}, expected {n} samples")
    # infinite values too; NaN compares False (beyond the largest float is infinity: one ufunc less)
    beyond = np.isinf(values) if limit == FLOAT_MAX and values.dtype.kind == "f" else np.abs(values) > limit
    if np.count_nonzero(beyond):  # (a fraction of the per-call cost of ndarray.any)
        bad = int(np.argmax(beyond))
        raise InvalidSession("out_of_range", f"{name}[{bad}] = {values[bad]:.6g} is beyond ±{limit:g}")


def _drop_impossible(values: np.ndarray, name: str, flags: list[str]) -> np.ndarray:
    """`values` with readings beyond any probe as dropouts (NaN); a flag in `flags` says how many."""
    beyond = np.abs(values) > MAX_ABS_TEMPERATURE_C  # NaN compares False
    if not np.count_nonzero(beyond):
        return values
    first = int(np.argmax(beyond))
    flags.append(f"{name}: {int(beyond.sum())} reading(s) beyond ±{MAX_ABS_TEMPERATURE_C:g} °C treated as dropouts "
                 f"(first: sample {first} = {values[first]:.6g} °C)")
    return np.where(beyond, np.nan, values)


def _check_events(events: dict[str, int], n: int) -> None:
    for name, index in events.items():
        if name not in EVENTS or isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < n:
            raise InvalidSession("bad_events", f"event {name!r} at sample {index!r} is not a known event within the {n} samples")
    if "CHARGE" not in events:
        raise InvalidSession("no_charge", "no CHARGE event marked: times from CHARGE are undefined")
    charge, drop = events["CHARGE"], events.get("DROP")
    for name, index in events.items():
        if name != "CHARGE" and index <= charge:
            raise InvalidSession("event_order", f"{name} (sample {index}) is not after CHARGE (sample {charge}): {name} before CHARGE")
        if drop is not None and name not in _AFTER_DROP_ALLOWED and index > drop:
            raise InvalidSession("event_order", f"{name} (sample {index}) comes after DROP (sample {drop})")
    if drop is not None and events.get("COOL", drop) < drop:
        raise InvalidSession("event_order", f"COOL (sample {events['COOL']}) comes before DROP (sample {drop})")


def _unit_flags(session: RoastSession) -> list[str]:
    charge = session.events["CHARGE"]
    stop = session.events.get("DROP", len(session.bt_c) - 1) + 1
    peak = highest(session.bt_c[charge:stop])  # BT has no infinite value by now
    low, high = ROAST_PEAK_BT_RANGE_C
    if peak is None or low <= peak <= high:
        return []
    return [f"unit: BT peaks at {peak:.1f} °C between CHARGE and DROP, outside {low:g}-{high:g} °C: not a "
            f"full roast, or the file's unit marker '{session.original_unit}' does not match its data"]


def validate(session: RoastSession, source_path: str) -> RoastSession:
    """The session, with ``settings['quality_flags']`` set when it loads with flags; raise
    ``InvalidSession`` (with the reason) when it must not load."""
    check_text(source_path, "the file's path")
    for name in ("source_format", "source", "original_unit"):
        check_text(getattr(session, name), name, required=True)
    for name in ("machine", "beans", "title", "notes", "roast_uuid", "control_unit"):
        check_text(getattr(session, name), name)
    for name in ("batch_weight_g", "roasted_weight_g", "sample_interval_s"):
        check_number(getattr(session, name), name)
    if session.roasted_at is not None:
        if not isinstance(session.roasted_at, datetime) or session.roasted_at.tzinfo is None:
            raise InvalidSession("bad_value", f"roasted_at is {session.roasted_at!r}, expected a time with a UTC offset")
        if not EARLIEST <= session.roasted_at.timestamp() < LATEST:
            raise InvalidSession("out_of_range", f"roasted_at {session.roasted_at.isoformat()} is not {TIME_RANGE}")

    time_s = session.time_s
    n = len(time_s)
    if n < 2:
        raise InvalidSession("empty_profile", f"only {n} samples recorded")
    # strictly increasing times within the bound at both ends are all within it: the test of every
    # time is needed only otherwise (comparing, unlike subtracting, makes no warning for an infinity)
    if not (time_s.shape == (n,) and -MAX_RECORDING_S <= time_s[0] and time_s[-1] <= MAX_RECORDING_S
            and np.count_nonzero(time_s[1:] > time_s[:-1]) == n - 1):  # NaN compares False
        _check_series(time_s, "time", n, MAX_RECORDING_S)  # raises for a wrong shape or a time beyond the bound
        raise InvalidSession("time_not_increasing", "sample times are missing or do not strictly increase")
    steps = time_s[1:] - time_s[:-1]  # np.diff, without its wrapper's cost
    # with at most (m - 1) // 2 of the m steps below the bound, both middle values of the sorted
    # steps, so their mean, are at or above it: the median's sort is needed only otherwise
    if np.count_nonzero(steps < MIN_MEDIAN_STEP_S) > (n - 2) // 2 and (step := median(steps)) < MIN_MEDIAN_STEP_S:
        raise InvalidSession("too_dense", f"median sampling step {step:.3g} s is below {MIN_MEDIAN_STEP_S} s: no roast logger samples that fast")
    flags = list(session.settings.get("quality_flags", []))
    bt, et = session.bt_c, session.et_c
    # no reading beyond any probe means no infinite one either: the common case in these two tests
    if not (bt.shape == et.shape == (n,) and not np.count_nonzero(np.abs(bt) > MAX_ABS_TEMPERATURE_C)
            and not np.count_nonzero(np.abs(et) > MAX_ABS_TEMPERATURE_C)):
        _check_series(bt, "BT", n, FLOAT_MAX)
        _check_series(et, "ET", n, FLOAT_MAX)
        session.bt_c, session.et_c = _drop_impossible(bt, "BT", flags), _drop_impossible(et, "ET", flags)
    if not np.count_nonzero(session.bt_c == session.bt_c):  # all NaN
        raise InvalidSession("no_bt", "no BT reading: every BT sample is missing or a dropout (-1)")
    for group, channels in (("control", session.controls), ("channel", session.extra)):
        for name, values in channels.items():
            check_text(name, f"{group} name {name!r}")
            _check_series(np.asarray(values, dtype=float), f"{group} {name!r}", n, FLOAT_MAX)
    _check_nested_text(session.settings, "settings")
    _check_events(session.events, n)

    flags += _unit_flags(session)
    if flags:
        session.settings["quality_flags"] = flags
    return session
