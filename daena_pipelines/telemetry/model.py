"""The in-memory shape of one roast session, whatever file format it came from.

Parsers (Artisan .alog, sidecar recordings, later RoasTime JSON) produce a ``RoastSession`` in
°C with NaN for dropped samples; everything downstream (metrics, warehouse writes) works on it.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

# Event names, in roast order, as used in columns and in ``RoastSession.events``.
EVENTS = ("CHARGE", "DRY_END", "FCs", "FCe", "SCs", "SCe", "DROP", "COOL")

ARTISAN_COLUMNS = {
    # our column -> Artisan `computed` key
    "artisan_charge_bt_c": "CHARGE_BT",
    "artisan_tp_s": "TP_time",
    "artisan_tp_bt_c": "TP_BT",
    "artisan_dry_end_s": "DRY_time",
    "artisan_fcs_s": "FCs_time",
    "artisan_fcs_bt_c": "FCs_BT",
    "artisan_fce_s": "FCe_time",
    "artisan_drop_s": "DROP_time",
    "artisan_drop_bt_c": "DROP_BT",
    "artisan_total_s": "totaltime",
    "artisan_drying_s": "dryphasetime",
    "artisan_maillard_s": "midphasetime",
    "artisan_development_s": "finishphasetime",
    "artisan_auc_c_min": "AUC",
    "artisan_ror_at_fcs_c_per_min": "fcs_ror",
    "artisan_weight_loss_pct": "weight_loss",
}


class InvalidSession(ValueError):
    """A file that cannot become a session. ``kind`` is a short machine-readable error kind."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


@dataclass
class RoastSession:
    source_format: str  # 'artisan_alog' | 'sidecar' | 'roastime_json'
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

    @property
    def session_id(self) -> str:
        """Stable id from the measured content, so a re-saved or renamed copy maps to the same id.

        Built from the roast UUID (when the file has one) and the time/BT/ET series rounded to
        what the sensors resolve; metadata edits (notes, events, titles) do not change it.
        """
        digest = hashlib.sha256()
        digest.update((self.roast_uuid or "").encode())
        series = np.concatenate((self.time_s, self.bt_c, self.et_c))  # one pass: same bytes as three
        digest.update(np.round(np.nan_to_num(series, nan=-1.0), 2).astype("<f8").tobytes())
        return digest.hexdigest()[:20]


@dataclass
class SessionRows:
    """Everything one session contributes to the warehouse, ready to insert (plain numpy, so
    it crosses process boundaries cheaply)."""

    session: dict  # telemetry.sessions row
    points: dict[str, np.ndarray]  # store.POINT_COLUMNS arrays of equal length
    extra: dict[str, np.ndarray]  # other channels on the same time base
    metrics: dict  # telemetry.roast_metrics row
