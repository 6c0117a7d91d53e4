"""Two judge runs recording the same new Message Batch at once on a DuckLake warehouse (the ledger
updates a batch's row, else inserts it): both find nothing to update, and inserts never conflict,
so without more the batch would be listed twice and its results fetched twice."""
from __future__ import annotations

import threading
from contextlib import nullcontext

from daena_pipelines.db import connect
from daena_pipelines.evals import tables
from tests.scale import workload


class _PausingBeforeInsert:
    """A connection whose first insert of a batch row, per thread, waits until both threads reach it."""

    def __init__(self, con, both_inside: threading.Barrier, waited: set):
        self.con, self.both_inside, self.waited = con, both_inside, waited

    def execute(self, sql, *args):
        if sql.startswith("INSERT INTO evals.judge_batches") and threading.get_ident() not in self.waited:
            self.waited.add(threading.get_ident())
            self.both_inside.wait()
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


def test_two_first_records_of_one_batch_at_once_leave_one_row(lake_target):
    both_inside, waited = threading.Barrier(2, timeout=60), set()
    with connect(lake_target) as first, connect(lake_target) as second:

        def record(con):
            ledger = tables.WarehouseBatchLedger(lambda: nullcontext(_PausingBeforeInsert(con, both_inside, waited)))
            ledger.record("msgbatch_01", "messages/batches", "claude-model", ["case-1"], "in_progress", "submitted")

        assert workload.at_once(record, (first, second)) == [None, None]
        assert first.execute("SELECT batch_id, count(*) FROM evals.judge_batches GROUP BY ALL").fetchall() == [("msgbatch_01", 1)]
