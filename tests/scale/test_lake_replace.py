"""Two runs of one evals partition at once on a DuckLake warehouse (a backfill beside the daily
schedule; the deployment's pool lets 4 steps write): each replaces the day's rows. Deleting rows
that are not there yet changes nothing and inserts never conflict, so without more both would
commit and the day would hold its rows twice."""
from __future__ import annotations

import threading
from datetime import date

from daena_pipelines import db
from daena_pipelines.db import connect
from daena_pipelines.evals import tables
from tests.scale import workload

DAY = date(2026, 1, 1)


def test_two_replacements_of_one_new_partition_at_once_leave_it_once(lake_target, monkeypatch):
    both_inside, waited = threading.Barrier(2, timeout=60), set()
    insert = db.insert

    def insert_when_both_are_inside(con, *args, **kwargs):  # both transactions have deleted before either commits
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            both_inside.wait()
        insert(con, *args, **kwargs)

    rows = [[DAY if c == "partition_date" else f"session-{i}" if c == "session_id" else None for c in tables.EVAL_RUN_COLUMNS]
            for i in range(2)]
    with connect(lake_target) as first, connect(lake_target) as second:
        monkeypatch.setattr(db, "insert", insert_when_both_are_inside)  # the one used by db.replace_rows
        outcomes = workload.at_once(
            lambda con: tables.replace_partitions(con, "evals.eval_runs", DAY, DAY, tables.EVAL_RUN_COLUMNS, rows), (first, second))
        assert outcomes == [None, None]
        assert first.execute("SELECT session_id, count(*) FROM evals.eval_runs GROUP BY ALL ORDER BY ALL").fetchall() == [
            ("session-0", 1), ("session-1", 1)]
