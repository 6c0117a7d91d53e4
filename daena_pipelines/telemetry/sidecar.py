"""Reader of the device sidecar's recording file (``*.sidecar.jsonl``), written by
``device/recording.py``. The format (one JSON object per line):
JSON Lines, one object per line, each with a ``type``:

- ``header`` (first line): format/version, recording_id, source ('real'|'simulator'), machine,
  device identity (vendor/product id, serial, firmware, roast count), ``channel_mapping``
  (which wire channel is BT and which ET), started_at (ISO 8601, UTC), poll/record intervals,
  session metadata (beans, title, notes, batch_weight_g) and, when simulated, the simulator's seed,
  time scale and injected faults.
- ``sample``: ``t`` (s since recording start), ``st`` (state byte), ``a``/``b`` (temperature
  channels A and B, °C), ``ex`` (exhaust °C), ``h``/``f``/``d`` (heater/fan/drum levels), and every
  other field the driver decoded under its own name, which carries its unit (for the R1:
  ``device_ror_a_c_per_min``, ``ir_c``, ``pcb_c``, ``fan_rpm``, ``voltage``, ``coil_fan``, ``coil_fan2``,
  ``preheat_target_c``, ``device_timer_s``); recordings before these names used ``ror``/``ir``/``pcb``.
  An invalid sample has ``"ok": false`` and a ``why`` instead of readings; a channel whose probe failed
  (docs/device.md, "Failed probe") is ``null`` in an otherwise valid sample.
- ``event``: ``name`` (CHARGE, DRY_END, FCs, DROP, COOL), ``i`` (sample index), ``t``, ``by`` (how it
  was detected).
- ``command`` (one per finished command execution, and one per approval closed EXPIRED),
  ``fault`` (disconnects, stalls, trips, every abort step, the exit procedure).
- ``footer`` (last line, only when the session closed cleanly): end reason, counters and ``exit``
  (policy, whether the sidecar commanded the roaster, the outcome, the last heater/state seen), and
  ``probe_fault`` (the failed probe and what it read, or null).

Every line is flushed as written (and fsynced right behind, except in stepped simulations), so a
crash leaves a readable prefix; the parser accepts a file without footer and a torn last line.
"""
from __future__ import annotations

import math
from datetime import datetime, timezone

import numpy as np
import orjson

from daena_pipelines.telemetry import validate
from daena_pipelines.telemetry.contract import SIDECAR_FORMAT, SIDECAR_VERSION
from daena_pipelines.telemetry.model import EVENTS, InvalidSession, RoastSession
from daena_pipelines.values import BadJson, check_unique_keys

CHANNELS = ("a", "b")
# short sample keys -> RoastSession.extra channel name; any other sample key is an extra channel by its own name
EXTRA_CHANNELS = {"ex": "exhaust_c", "ir": "ir_c", "pcb": "pcb_c", "ror": "device_ror_a_c_per_min"}
CONTROL_KEYS = {"h": "heater", "f": "fan", "d": "drum"}
NOT_CHANNELS = {"type", "t", "st", "ok", "why", *CHANNELS, *CONTROL_KEYS}



def _lines(data: bytes, source_path: str) -> tuple[list[dict], bool]:
    text = validate.decode_text(data, f"{source_path}: ")
    raw_lines = text.split("\n")
    records, torn_tail = [], False
    for number, line in enumerate(raw_lines, start=1):
        if not line.strip():
            continue
        try:
            record = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            if number == len(raw_lines):  # last line without newline: written when the process died
                torn_tail = True
                break
            raise InvalidSession("bad_json", f"{source_path}: line {number}: invalid JSON ({error})") from None
        if not isinstance(record, dict) or "type" not in record:
            raise InvalidSession("bad_record", f"{source_path}: line {number}: not an object with a 'type'")
        try:  # orjson keeps the last of a key written twice ('source': real or simulator? which BT?)
            check_unique_keys(line, record)
        except BadJson as exc:
            raise InvalidSession("bad_json" if records else "bad_header", f"{source_path}: line {number}: {exc}") from None
        records.append(record)
    return records, torn_tail


def _number(value, what: str) -> float:
    """A reading: a number, or NaN for a missing one (null); anything else is corruption."""
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidSession("bad_value", f"{what} is {value!r}, expected a number")
    return float(value)  # magnitudes are judged with every other format's (telemetry/validate.py)


def _header_values(header: dict, source_path: str) -> dict:
    """The header's session metadata, type-checked (text is text, numbers are numbers)."""
    values = {}
    for key in ("machine", "beans", "title", "notes", "recording_id"):
        values[key] = validate.check_text(header.get(key), f"{source_path}: header {key}")
    for key in ("batch_weight_g", "record_interval_s"):
        values[key] = validate.check_number(header.get(key), f"{source_path}: header {key}")
    return values


def _channel_keys(samples: list[dict]) -> list[str]:
    """Sample keys holding extra channels, in first-seen order."""
    keys: dict[str, None] = {}
    for sample in samples:
        for key, value in sample.items():
            if key not in NOT_CHANNELS and isinstance(value, (int, float)) and not isinstance(value, bool):
                keys.setdefault(key)
    return list(keys)


def parse_sidecar(data: bytes, source_path: str) -> RoastSession:
    """Turn a recording into a ``RoastSession`` (°C, NaN for invalid samples); raise ``InvalidSession``."""
    records, torn_tail = _lines(data, source_path)
    if not records or records[0].get("type") != "header":
        raise InvalidSession("missing_header", f"{source_path}: first line is not a sidecar header")
    header = records[0]
    if header.get("format") != SIDECAR_FORMAT:
        raise InvalidSession("not_sidecar", f"{source_path}: header format is {header.get('format')!r}, not {SIDECAR_FORMAT!r}")
    if header.get("version") != SIDECAR_VERSION:
        raise InvalidSession("unsupported_version", f"{source_path}: sidecar format version {header.get('version')!r}")
    source = header.get("source")
    if source not in ("real", "simulator"):
        raise InvalidSession("bad_header", f"{source_path}: header source {source!r} is not 'real' or 'simulator'")
    if source == "real" and header.get("simulator") is not None:  # only the virtual roaster writes that block
        raise InvalidSession("bad_header", f"{source_path}: header says source 'real' but carries the simulator's "
                                           "settings (seed, thermal model): not loaded as a real roast")
    mapping = header.get("channel_mapping") or {}
    if not isinstance(mapping, dict) or sorted(map(str, mapping.values())) != sorted(CHANNELS) or set(mapping) != {"bt", "et"}:
        raise InvalidSession("bad_header", f"{source_path}: channel_mapping {mapping!r} must map bt and et to a and b")
    try:
        started_at = datetime.fromisoformat(header["started_at"])
        started_at.astimezone(timezone.utc)  # a far-off time with an offset may not convert
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise InvalidSession("bad_header", f"{source_path}: header started_at {header.get('started_at')!r} missing, not ISO 8601 or out of range") from error
    if started_at.tzinfo is None:  # the recorder writes UTC with its offset: a time without one is not its own
        raise InvalidSession("bad_header", f"{source_path}: header started_at {header['started_at']!r} has no UTC offset (e.g. +00:00)")
    meta = _header_values(header, source_path)

    samples = [r for r in records if r["type"] == "sample"]
    if not samples:
        raise InvalidSession("no_samples", f"{source_path}: recording has no samples")
    time_s = np.array([_number(s.get("t"), f"sample {i}: 't'") for i, s in enumerate(samples)])
    if np.isnan(time_s).any() or (np.diff(time_s) <= 0).any():
        bad = int(np.argmax(np.isnan(time_s) | np.r_[False, np.diff(time_s) <= 0]))
        raise InvalidSession("time_not_increasing", f"{source_path}: sample {bad} has t={samples[bad].get('t')!r}, not after the previous sample")

    def series(key: str) -> np.ndarray:
        return np.array([_number(s.get(key), f"sample {i}: {key!r}") if s.get("ok", True) else math.nan for i, s in enumerate(samples)])

    events: dict[str, int] = {}
    for record in records:
        if record["type"] != "event":
            continue
        name, index = record.get("name"), record.get("i")
        if name not in EVENTS or isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(samples):
            raise InvalidSession("bad_event", f"{source_path}: event {name!r} at sample {index!r} is not a known event within the samples")
        events.setdefault(name, index)

    footer = next((r for r in records if r["type"] == "footer"), None)
    device = {k: header.get(k) for k in ("vendor_id", "product_id", "serial", "firmware", "roast_count")}
    return RoastSession(
        source_format="sidecar",
        source=source,
        time_s=time_s,
        bt_c=series(mapping["bt"]),
        et_c=series(mapping["et"]),
        events=events,
        original_unit="C",
        roasted_at=started_at,
        machine=meta["machine"],
        beans=meta["beans"],
        title=meta["title"],
        notes=meta["notes"],
        batch_weight_g=meta["batch_weight_g"],
        sample_interval_s=meta["record_interval_s"],
        roast_uuid=meta["recording_id"],
        controls={name: series(key) for key, name in CONTROL_KEYS.items()},
        control_unit=f"{header.get('model') or 'r1'}_level",  # r1_level 0..9 heater, r2_level 0..14
        extra={EXTRA_CHANNELS.get(key, key): series(key) for key in _channel_keys(samples)},
        settings={
            "channel_mapping": mapping,
            "device": device,
            "complete": footer is not None,
            "torn_last_line": torn_tail,
            "end_reason": footer.get("end_reason") if footer else "no footer (recording interrupted)",
            "lost_polls": footer.get("lost_polls") if footer else None,
            "event_detection": {r["name"]: r.get("by") for r in records if r["type"] == "event"},
            "simulator": header.get("simulator"),
            "faults": [r for r in records if r["type"] == "fault"],
            **({} if footer else {"quality_flags": ["incomplete recording: no footer (the recorder stopped before closing it)"]}),
        },
    )
