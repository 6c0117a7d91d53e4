"""The in-memory shape of one roast session, whatever file format it came from.

Parsers (Artisan .alog, sidecar recordings, RoasTime JSON) produce a ``RoastSession`` in
°C with NaN for dropped samples; everything downstream (metrics, warehouse writes) works on it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

# Event names, in roast order, as used in columns and in ``RoastSession.events``.
EVENTS = ("CHARGE", "DRY_END", "FCs", "FCe", "SCs", "SCe", "DROP", "COOL")


# telemetry.points' value columns, in the order of the rows of ``SessionRows.points``
POINT_COLUMNS = ("t_s", "bt_c", "et_c", "ror_c_per_min", "heater", "fan", "drum")
CONTROL_COLUMNS = ("heater", "fan", "drum")  # the last three, from ``RoastSession.controls``

# session fields that make one copy of a roast richer than another (telemetry.sessions columns too)
RICHNESS_FIELDS = ("roasted_weight_g", "batch_weight_g", "beans", "title", "notes", "roasted_at", "machine")


class InvalidSession(ValueError):
    """A file that cannot become a session. ``kind`` is a short machine-readable error kind."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class NotARoast(Exception):
    """A file whose name allows a roast and whose content, once parsed, is none (a stray .json):
    ignored with this note, not rejected as a bad roast."""


@dataclass
class RoastSession:
    source_format: str  # 'artisan_alog' | 'artisan_json' | 'sidecar' | 'roastime_json'
    source: str  # 'real' | 'simulator'
    time_s: np.ndarray  # seconds since the recording started, strictly increasing
    bt_c: np.ndarray  # bean temperature °C, NaN where the sample dropped out
    et_c: np.ndarray  # environment/drum temperature °C, NaN where dropped
    events: dict[str, int]  # event name -> sample index; absent when not marked
    original_unit: str = "C"  # unit of the source file's temperatures
    roasted_at: datetime | None = None
    machine: str | None = None
    beans: str | None = None
    title: str | None = None
    notes: str | None = None
    batch_weight_g: float | None = None
    roasted_weight_g: float | None = None
    sample_interval_s: float | None = None
    roast_uuid: str | None = None
    # heater/fan/drum settings on the sample time base (NaN where unknown) in ``control_unit``
    controls: dict[str, np.ndarray] = field(default_factory=dict)
    control_unit: str | None = None  # 'pct' (Artisan sliders, 0-100) | 'r1_level' / 'r2_level' (Bullet steps)
    extra: dict[str, np.ndarray] = field(default_factory=dict)  # other channels, source units
    settings: dict[str, object] = field(default_factory=dict)  # e.g. AUC base/begin, BT/ET mapping
    artisan_computed: dict[str, float] | None = None  # Artisan's own analysis, converted to °C
    # CHARGE was never marked: the first sample stands in for it and times count from the
    # recording's own zero, as Artisan measures such profiles
    charge_inferred: bool = False

    @property
    def origin_s(self) -> float:
        """The recording-clock time that `t_s` counts from: CHARGE, or 0 when it is inferred."""
        return 0.0 if self.charge_inferred else float(self.time_s[self.events["CHARGE"]])

    @property
    def session_id(self) -> str:
        """Stable id from the measured content and the event marks, so a re-saved or renamed copy
        maps to the same id while a copy with re-marked events is a session of its own.

        Built from the roast UUID (when the file has one), the time/BT/ET series rounded to what
        the sensors resolve, and the marked events (sample indices); notes and titles do not
        change it.
        """
        digest = hashlib.sha256()
        digest.update((self.roast_uuid or "").encode())
        series = np.concatenate((self.time_s, self.bt_c, self.et_c))  # one pass: same bytes as three
        np.copyto(series, -1.0, where=series != series)  # NaN (validation leaves no infinite value)
        digest.update(series.round(2, out=series).astype("<f8", copy=False))  # hashed in place
        marks = {name: idx for name, idx in self.events.items() if not (name == "CHARGE" and self.charge_inferred)}
        digest.update(repr(sorted(marks.items())).encode())
        return digest.hexdigest()[:20]

    def richness(self) -> int:
        """How much a copy carries beyond the measurements (filled RICHNESS_FIELDS, Artisan's
        computed block): of two copies of one roast the richer is kept."""
        return sum(getattr(self, name) is not None for name in RICHNESS_FIELDS) + (1 if self.artisan_computed else 0)


@dataclass
class SessionRows:
    """Everything one session contributes to the warehouse, ready to insert (plain numpy, so
    it crosses process boundaries cheaply)."""

    session: dict  # telemetry.sessions row
    # one float64 row per POINT_COLUMNS entry, one column per sample: a single array pickles
    # and concatenates far cheaper than seven
    points: np.ndarray
    extra: dict[str, np.ndarray]  # other channels on the same time base
    metrics: dict  # telemetry.roast_metrics row
    richness: int = 0  # RoastSession.richness(): the richer of two copies of a roast is kept
