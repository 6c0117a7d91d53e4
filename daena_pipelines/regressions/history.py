"""The history of benchmark timing samples the gate decides over: two warehouse tables and an
artifact (a folder of Parquet files) that CI carries from one run to the next.

- ``regressions.bench_history``: one row per (run, suite, key, clock, sample): a timing as a
  ratio to the reference codec measured interleaved in the same run, with the machine that
  measured it and, for a run carried in by the artifact, the artifact it was imported from.
- ``regressions.bench_verdicts``: the gate's verdict per (run, suite, key, clock); a run is in
  a key's baseline unless its verdict there is ``regression`` (``accept`` turns that into
  ``accepted``: a slowdown someone decided to keep, which starts the key's baseline anew).

``import_artifact`` adds the artifact's runs the warehouse does not have (a fresh CI clone
starts from the carried history); ``export_artifact`` writes the tables back.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

import duckdb
import pandas as pd

from daena_pipelines.config import Settings
from daena_pipelines.regressions.gate import ACCEPTED, NO_HISTORY, OK, REGRESSION, GateRule, Verdict, decide
from daena_pipelines.regressions.golden import Outcome
from daena_pipelines.db import Replacement, replace_rows, retrying_transaction, serialize_writes, transaction

HISTORY, VERDICTS = "regressions.bench_history", "regressions.bench_verdicts"  # made by the regressions migration 5 (findings.py)
NOT_JUDGED = "no history yet"  # an outcome's change when the key had too few earlier runs to be judged
VERDICT_COLUMNS = ("verdict", "test", "median", "baseline_median", "growth", "p_value", "step", "baseline_runs", "note")


def this_machine() -> str:
    """The measuring machine as JSON text (host, platform, cores, Python): samples name where they were taken."""
    return json.dumps({"host": platform.node(), "platform": platform.platform(), "cpu_count": os.cpu_count(),
                       "python": platform.python_version()}, sort_keys=True)


def record_samples(con: duckdb.DuckDBPyConnection, run_id: str, suite: str, rows: list[tuple], at: dt.datetime) -> int:
    """rows: (key, clock, sample, ratio), measured on this machine."""
    frame = pd.DataFrame(rows, columns=["key", "clock", "sample", "ratio"]).assign(
        run_id=run_id, recorded_at=at, suite=suite, machine=this_machine())
    con.execute(f"INSERT INTO {HISTORY} BY NAME SELECT run_id, recorded_at, suite, key, clock, sample, ratio, machine FROM frame")
    return len(frame)


def runs_of(con: duckdb.DuckDBPyConnection, suite: str) -> list[str]:
    return [r[0] for r in con.execute(f"SELECT DISTINCT run_id FROM {HISTORY} WHERE suite = ? ORDER BY run_id", [suite]).fetchall()]


def samples(con: duckdb.DuckDBPyConnection, suite: str) -> dict[tuple[str, str], dict[str, list[float]]]:
    """{(key, clock): {run_id: [ratios]}} in run order."""
    out: dict[tuple[str, str], dict[str, list[float]]] = {}
    for run_id, key, clock, ratio in con.execute(
        f"SELECT run_id, key, clock, ratio FROM {HISTORY} WHERE suite = ? ORDER BY run_id, key, clock, sample", [suite]
    ).fetchall():
        out.setdefault((key, clock), {}).setdefault(run_id, []).append(ratio)
    return out


def verdicts(con: duckdb.DuckDBPyConnection, suite: str) -> dict[tuple[str, str, str], str]:
    """{(run_id, key, clock): verdict}."""
    return {
        (r, k, c): v
        for r, k, c, v in con.execute(f"SELECT run_id, key, clock, verdict FROM {VERDICTS} WHERE suite = ?", [suite]).fetchall()
    }


def record_verdicts(con: duckdb.DuckDBPyConnection, run_id: str, suite: str, decided: dict[tuple[str, str], dict], at: dt.datetime) -> None:
    """decided: {(key, clock): Verdict.as_dict()}; replaces this run's earlier verdicts."""
    rows = [(run_id, suite, key, clock, *(v[c] for c in VERDICT_COLUMNS), at) for (key, clock), v in decided.items()]
    columns = ("run_id", "suite", "key", "clock", *VERDICT_COLUMNS, "decided_at")
    replace_rows(con, Replacement(VERDICTS, rows, columns, "run_id = ? AND suite = ?", (run_id, suite)))


def accept(con: duckdb.DuckDBPyConnection, run_id: str, suite: str, every_key: bool = False) -> int:
    """Keep a run's flagged slowdowns: on each flagged key the baseline starts anew at that run
    (``gate_run``); ``every_key``: on every key of the run, flagged or not (a deliberate change
    of what is measured: a step down is never flagged, yet the old level would widen the key's
    threshold). Returns how many (key, clock) verdicts were accepted."""
    where = "run_id = ? AND suite = ?" + ("" if every_key else f" AND verdict = '{REGRESSION}'")
    with transaction(con):
        n = con.execute(f"SELECT count(*) FROM {VERDICTS} WHERE {where}", [run_id, suite]).fetchone()[0]
        con.execute(f"UPDATE {VERDICTS} SET verdict = '{ACCEPTED}' WHERE {where}", [run_id, suite])
    return n


def import_artifact(con: duckdb.DuckDBPyConnection, folder: Path | None = None) -> int:
    """Rows of the artifact's runs that the warehouse lacks; returns how many runs were added.
    An unreadable artifact raises: a gate that silently lost its history would pass anything."""
    folder = folder or Settings.from_env().bench_history_dir
    history, decided = folder / "bench_history.parquet", folder / "bench_verdicts.parquet"
    if not history.exists():
        return 0

    def add(con) -> int:  # what the warehouse lacks is read inside the transaction that adds it
        known = {r[0] for r in con.execute(f"SELECT DISTINCT run_id FROM {HISTORY}").fetchall()}
        incoming = con.execute("SELECT DISTINCT run_id FROM read_parquet(?)", [str(history)]).fetchall()
        new = sorted({r[0] for r in incoming} - known)
        if not new:
            return 0
        serialize_writes(con)  # a concurrent import of the same runs conflicts, and sees them when run again
        # by name: an artifact's columns need not sit where this warehouse's do (a later migration's column)
        con.execute(f"INSERT INTO {HISTORY} BY NAME SELECT * FROM read_parquet(?) WHERE list_contains(?, run_id)", [str(history), new])
        # measured elsewhere (or here, earlier, and carried): said on every sample the gate may take as baseline
        con.execute(f"UPDATE {HISTORY} SET imported_from = ? WHERE list_contains(?, run_id)", [str(folder), new])
        if decided.exists():
            con.execute(f"INSERT INTO {VERDICTS} BY NAME SELECT * FROM read_parquet(?) WHERE list_contains(?, run_id)", [str(decided), new])
        return len(new)

    return retrying_transaction(con, add)


def export_artifact(con: duckdb.DuckDBPyConnection, folder: Path | None = None) -> Path:
    folder = folder or Settings.from_env().bench_history_dir
    folder.mkdir(parents=True, exist_ok=True)
    for table, name in ((HISTORY, "bench_history"), (VERDICTS, "bench_verdicts")):
        tmp = folder / f".{name}.parquet.tmp"
        con.execute(f"COPY (SELECT * FROM {table} ORDER BY ALL) TO '{tmp}' (FORMAT parquet)")
        tmp.replace(folder / f"{name}.parquet")  # a crash mid-write never leaves half a history
    return folder


def gate_run(con: duckdb.DuckDBPyConnection, suite: str, run_id: str, rule: GateRule = GateRule()) -> dict[tuple[str, str], Verdict]:
    """The gate's verdict for every (key, clock) of ``run_id`` against the earlier accepted runs."""
    decided = verdicts(con, suite)
    out = {}
    for (key, clock), per_run in samples(con, suite).items():
        if run_id not in per_run:
            continue
        # the baseline: earlier runs the gate judged and passed (or someone accepted); a run with no
        # verdict (its gate crashed: a broken run, e.g. without dictionaries) measured something else
        earlier = [r for r in per_run if r < run_id and decided.get((r, key, clock)) in (OK, NO_HISTORY, ACCEPTED)]
        # an accepted slowdown is a new level: the runs before it measured the old one, and
        # kept in the baseline they would flag every later run (the window for 5 runs, then the
        # step test for up to 30; measured in tests/regressions/test_gate.py)
        kept = [i for i, r in enumerate(earlier) if decided.get((r, key, clock)) == ACCEPTED]
        earlier = earlier[kept[-1] :] if kept else earlier
        out[key, clock] = decide(per_run[run_id], [per_run[r] for r in earlier], rule)
    return out


def gate_latest(
    con: duckdb.DuckDBPyConnection, suite: str, rule: GateRule = GateRule(), folder: Path | None = None
) -> tuple[str | None, list[Outcome]]:
    """Judge the suite's latest run, store its verdicts, write the artifact back; returns the run
    and one outcome per (key, clock) (failed = regression), for the check and the findings."""
    runs = runs_of(con, suite)
    run_id = runs[-1] if runs else None
    decided = gate_run(con, suite, run_id, rule) if runs else {}
    for (r, key, clock), verdict in verdicts(con, suite).items():  # judged again: an acceptance stays (record_verdicts replaces)
        if r == run_id and verdict == ACCEPTED and (key, clock) in decided:
            v = decided[key, clock]
            v.verdict, v.note = ACCEPTED, f"accepted (history.accept){': ' + v.note if v.note else ''}"
    if not decided:  # nothing timed is a failure, never a pass with nothing checked
        return run_id, [Outcome("timing_samples", {}, "timing samples of the latest run", None, "missing", {"kind": "exact"},
                                False, f"no {suite} timing samples in {HISTORY}")]
    record_verdicts(con, run_id, suite, {k: v.as_dict() for k, v in decided.items()}, dt.datetime.now(dt.timezone.utc))
    export_artifact(con, folder)
    rule_dict = {"kind": "timing_gate", **rule.describe()}
    return run_id, [
        Outcome(
            f"{key}/{clock}", {"key": key, "clock": clock},
            None if v.baseline_median is None else f"<= x{v.threshold or rule.min_ratio:.3g} of {v.baseline_median:.4g}",
            round(v.median, 6),
            NOT_JUDGED if v.growth is None else f"x{v.growth:.3f}" + (f", step x{v.step:.3f}" if v.step else ""),
            rule_dict, not v.regression, v.note or v.verdict,
        )
        for (key, clock), v in sorted(decided.items())
    ]
