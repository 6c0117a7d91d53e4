"""Test helper: load real Artisan profiles from ../shared into the telemetry contract tables.

A small stand-in for the telemetry ingest (built elsewhere): enough to give the NBMF corpus
real sessions, real BT/ET series, real control changes and real roast notes.
"""
from __future__ import annotations

import ast
import datetime as dt
import hashlib
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from daena_pipelines.telemetry.model import RoastSession

SHARED_DIR = Path(__file__).parents[2].parent / "shared"
ALOG_DIR = SHARED_DIR / "data" / "artisan-scottjames"

SESSIONS_DDL = """
CREATE TABLE IF NOT EXISTS telemetry.sessions (
    session_id VARCHAR PRIMARY KEY, source_format VARCHAR, source VARCHAR, source_path VARCHAR,
    content_sha256 VARCHAR, roasted_at TIMESTAMPTZ, machine VARCHAR, beans VARCHAR, title VARCHAR,
    notes VARCHAR, batch_weight_g DOUBLE, roasted_weight_g DOUBLE, original_unit VARCHAR,
    sample_interval_s DOUBLE, control_unit VARCHAR, ingested_at TIMESTAMPTZ)
"""
POINTS_DDL = """
CREATE TABLE IF NOT EXISTS telemetry.points (
    session_id VARCHAR, t_s DOUBLE, bt_c DOUBLE, et_c DOUBLE, ror_c_per_min DOUBLE,
    heater DOUBLE, fan DOUBLE, drum DOUBLE, extra MAP(VARCHAR, DOUBLE))
"""
# Artisan special-event type index -> our control column
EVENT_CONTROLS = {0: "fan", 1: "drum", 3: "heater"}


def alog_files() -> list[Path]:
    if not ALOG_DIR.is_dir():
        pytest.skip(f"real Artisan profiles not found at {ALOG_DIR} (../shared missing)")
    return sorted(ALOG_DIR.glob("*.alog"))


def _temps(values: list, unit: str) -> np.ndarray:
    arr = np.array(values, dtype=float)
    arr[arr <= -1] = np.nan  # Artisan writes -1 for a dropped sample
    return (arr - 32) * 5 / 9 if unit == "F" else arr


def load_alogs(con: duckdb.DuckDBPyConnection, paths: list[Path]) -> list[str]:
    """Insert the profiles into telemetry.sessions/points; returns the session ids.

    Empty profiles and re-saved copies of a session already loaded are left out, as the real
    ingest rejects or de-duplicates them."""
    con.execute("CREATE SCHEMA IF NOT EXISTS telemetry")
    con.execute(SESSIONS_DDL)
    con.execute(POINTS_DDL)
    ids = []
    for path in paths:
        raw = path.read_bytes()
        d = ast.literal_eval(raw.decode("utf-8"))
        unit = d.get("mode", "C")
        time_s = np.array(d["timex"], dtype=float)
        if not len(time_s):
            continue
        bt, et = _temps(d["temp2"], unit), _temps(d["temp1"], unit)
        session = RoastSession("artisan_alog", "real", time_s, bt, et, {}, roast_uuid=d.get("roastUUID"))
        if session.session_id in ids:
            continue
        charge = d["timeindex"][0] if d["timeindex"][0] >= 0 else 0
        t = time_s - time_s[charge]
        ror = np.full(len(t), np.nan)
        ror[5:] = (bt[5:] - bt[:-5]) / (t[5:] - t[:-5]) * 60
        controls = {name: np.full(len(t), np.nan) for name in ("heater", "fan", "drum")}
        for idx, etype, value in zip(d.get("specialevents", []), d.get("specialeventstype", []), d.get("specialeventsvalue", [])):
            if etype in EVENT_CONTROLS and 0 <= idx < len(t):
                controls[EVENT_CONTROLS[etype]][idx:] = (value - 1) * 10  # Artisan's stored slider encoding
        weight = d.get("weight", [None, None, "g"])
        grams = 1000.0 if weight[2] == "Kg" else 1.0
        con.execute(
            "INSERT INTO telemetry.sessions VALUES (?, 'artisan_alog', 'real', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pct', ?)",
            [
                session.session_id, str(path), hashlib.sha256(raw).hexdigest(),
                dt.datetime.fromtimestamp(d["roastepoch"], dt.timezone.utc), d.get("roastertype") or None,
                (d.get("beans") or "").replace("\\n", "\n") or None, d.get("title"),
                (d.get("roastingnotes") or "").replace("\\n", "\n") or None,
                weight[0] * grams if weight[0] else None, weight[1] * grams if weight[1] else None,
                unit, d.get("samplinginterval"), dt.datetime(2025, 11, 21, 20, 0, tzinfo=dt.timezone.utc),
            ],
        )
        points = pd.DataFrame(
            {"session_id": session.session_id, "t_s": t, "bt_c": bt, "et_c": et, "ror_c_per_min": ror, **controls}
        )
        # NaN -> NULL (the contract's missing value); extra stays NULL
        con.execute(
            "INSERT INTO telemetry.points SELECT session_id, t_s, "
            + ", ".join(f"CASE WHEN isnan({c}) THEN NULL ELSE {c} END" for c in ("bt_c", "et_c", "ror_c_per_min", "heater", "fan", "drum"))
            + ", NULL FROM points"
        )
        ids.append(session.session_id)
    return ids
