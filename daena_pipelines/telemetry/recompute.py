"""Recompute roast_metrics of stored sessions from their stored points when metrics.METRICS_VERSION
changes (no input file needed).

A session is rebuilt from telemetry.points (t_s, BT, ET in order) and its telemetry.sessions row
(settings, weights, events). Sessions stored before the events column existed take their marked
events from their old roast_metrics row (CHARGE is the sample at t_s = 0). Settings that older
versions did not keep (the dry-end threshold; the live TP fallback time and curve; which session
saved the file) are read back from the
source file whenever that is still at its stored path with the stored SHA-256 (and then kept in
the session's settings, replacing what was stored); otherwise only a marked DRY END ends the drying phase and a TP-begun AUC
begins at the profile's TP. Artisan's values come from the stored `computed` block; rows stored
before that column existed keep the artisan_* values they had and leave the newer ones NULL.
"""
from __future__ import annotations

import hashlib
import json
import logging

import duckdb
import numpy as np
import pyarrow as pa

from daena_pipelines.db import retrying_transaction
from daena_pipelines.telemetry.alog import MAX_FILE_BYTES, parse_alog, parse_artisan_json
from daena_pipelines.telemetry.ingest import artisan_values, json_text, open_regular
from daena_pipelines.telemetry.metrics import DEFAULT_ROR, METRICS_VERSION, rate_of_rise, roast_metrics
from daena_pipelines.telemetry.contract import V1_ARTISAN_COLUMNS
from daena_pipelines.telemetry.model import InvalidSession, RoastSession
from daena_pipelines.telemetry.store import insert_metrics

log = logging.getLogger(__name__)
# settings read from an Artisan file that sessions stored by older versions may lack
FROM_FILE = ("dry_end_threshold_c", "live_tp_fallback_s", "live_tp_fallback_first", "live_tp_curve", "saved_by", "greens_temp_c")
_ARTISAN_PARSERS = {"artisan_alog": parse_alog, "artisan_json": parse_artisan_json}  # source_format -> parser

# old roast_metrics columns that held the marked events' times, before sessions.events existed
_EVENT_TIMES = {"DRY_END": "dry_end_s", "FCs": "fcs_s", "FCe": "fce_s", "DROP": "drop_s"}


def stale_session_ids(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [sid for (sid,) in con.execute(
        "SELECT session_id FROM telemetry.roast_metrics WHERE metrics_version IS DISTINCT FROM ? ORDER BY session_id",
        [METRICS_VERSION],
    ).fetchall()]


def _events_from_old_metrics(t_s: np.ndarray, old: dict) -> dict[str, int]:
    events = {"CHARGE": int(np.argmin(np.abs(t_s)))}
    for name, column in _EVENT_TIMES.items():
        if old.get(column) is not None:
            index = int(np.argmin(np.abs(t_s - old[column])))
            if abs(t_s[index] - old[column]) < 1e-6:
                events[name] = index
    return events


def settings_from_source(session: dict) -> dict[str, object] | None:
    """The FROM_FILE settings of an Artisan session, read from its source file if the file is
    still at the stored path with the stored content (SHA-256); None otherwise."""
    parse = _ARTISAN_PARSERS.get(session["source_format"])
    if parse is None:
        return None
    try:
        # (as the ingest opens it: a named pipe put at the path would wait for a writer)
        file, size = open_regular(session["source_path"])
        with file:
            if size > MAX_FILE_BYTES:
                return None  # not the stored content, which the ingest read
            data = file.read()
    except OSError:
        return None
    if hashlib.sha256(data).hexdigest() != session["content_sha256"]:
        return None  # another content now: its settings need not be the stored session's
    try:
        settings = parse(data, session["source_path"]).settings
    except InvalidSession:
        return None
    return {k: settings[k] for k in FROM_FILE if k in settings}


def stored_session(session: dict, points: dict[str, np.ndarray], old_metrics: dict) -> RoastSession:
    t_s = points["t_s"]
    events = json.loads(session["events"]) if session.get("events") else _events_from_old_metrics(t_s, old_metrics)
    computed = session.get("artisan_computed")
    settings = json.loads(session["settings"]) if session.get("settings") else {}
    from_file = settings_from_source(session)
    if from_file is not None:
        # the file as read now: stored before these were kept, or under an older reading of the
        # file's version (e.g. no live TP fallback before Artisan 1.6.1, metrics version 6)
        settings = {k: v for k, v in settings.items() if k not in FROM_FILE} | from_file
    return RoastSession(
        source_format=session["source_format"],
        source=session["source"],
        time_s=t_s,  # the stored clock counts from CHARGE (or the recording's zero when inferred)
        bt_c=points["bt_c"],
        et_c=points["et_c"],
        events={name: int(index) for name, index in events.items()},
        original_unit=session["original_unit"],
        batch_weight_g=session["batch_weight_g"],
        roasted_weight_g=session["roasted_weight_g"],
        roast_uuid=session["roast_uuid"],
        settings=settings,
        artisan_computed=json.loads(computed) if computed else None,
        charge_inferred=bool(session.get("charge_inferred")),
    )


def _fetch(con: duckdb.DuckDBPyConnection, sql: str, ids: list[str]) -> list[dict]:
    cursor = con.execute(sql, [ids])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def recompute_metrics(con: duckdb.DuckDBPyConnection, batch_size: int = 200) -> int:
    """Recompute every stored session whose metrics are of an older version; returns how many.
    Each batch is one transaction (roast_metrics rows and the points' RoR replaced together)."""
    ids = stale_session_ids(con)
    for start in range(0, len(ids), batch_size):
        chunk = ids[start : start + batch_size]
        retrying_transaction(con, lambda con: _recompute(con, chunk))
    return len(ids)


def _recompute(con: duckdb.DuckDBPyConnection, ids: list[str]) -> None:
    sessions = {r["session_id"]: r for r in _fetch(con, "SELECT * FROM telemetry.sessions WHERE list_contains(?, session_id)", ids)}
    old = {r["session_id"]: r for r in _fetch(con, "SELECT * FROM telemetry.roast_metrics WHERE list_contains(?, session_id)", ids)}
    points = con.execute(
        "SELECT session_id, t_s, bt_c, et_c FROM telemetry.points WHERE list_contains(?, session_id) ORDER BY session_id, t_s", [ids]
    ).fetchnumpy()
    sid = np.asarray(points["session_id"], dtype=object)
    columns = {name: np.ma.filled(np.ma.asarray(points[name]).astype(float), np.nan) for name in ("t_s", "bt_c", "et_c")}  # NULL -> NaN
    bounds = np.flatnonzero(np.r_[True, sid[1:] != sid[:-1], True])
    rows, ror_parts, read_back = [], [], []
    for a, b in zip(bounds[:-1], bounds[1:]):
        session_id = sid[a]
        session = stored_session(sessions[session_id], {n: c[a:b] for n, c in columns.items()}, old[session_id])
        stored_settings = sessions[session_id].get("settings")
        if session.settings != (json.loads(stored_settings) if stored_settings else {}):
            read_back.append((session_id, json_text(session.settings)))
        ev = session.events
        ror = rate_of_rise(session.time_s, session.bt_c, ev["CHARGE"], ev.get("DROP", b - a - 1) + 1, DEFAULT_ROR.half_window_s)
        metrics = roast_metrics(session, ror)
        if session.artisan_computed is not None:
            metrics.update(artisan_values(session.artisan_computed, session.roasted_weight_g, ev))
        else:  # stored before the computed block was kept: its artisan_* values stay as they were
            metrics.update({c: old[session_id].get(c) for c in (*V1_ARTISAN_COLUMNS, "artisan_dtr_pct")})
        rows.append({"session_id": session_id, **metrics})
        ror_parts.append(pa.table({"session_id": sid[a:b], "t_s": session.time_s, "ror": ror}))
    con.execute("DELETE FROM telemetry.roast_metrics WHERE list_contains(?, session_id)", [ids])
    insert_metrics(con, rows)
    if read_back:  # kept, so a later recompute has them once the file is gone or changed
        log.info("file-derived settings read back from the source files of %d stored sessions", len(read_back))
        con.register("read_back", pa.table({"session_id": [s for s, _ in read_back], "settings": [j for _, j in read_back]}))
        con.execute("UPDATE telemetry.sessions s SET settings = r.settings::JSON FROM read_back r WHERE s.session_id = r.session_id")
        con.unregister("read_back")
    if ror_parts:
        con.register("recomputed_ror", pa.concat_tables(ror_parts))
        con.execute(
            """UPDATE telemetry.points p SET ror_c_per_min = CASE WHEN isnan(r.ror) THEN NULL ELSE r.ror END
               FROM recomputed_ror r WHERE p.session_id = r.session_id AND p.t_s = r.t_s"""
        )
        con.unregister("recomputed_ror")
