"""Two NBMF benchmark runs at once on a DuckLake warehouse (two hosts), each first importing the
CI artifact's benchmark history the warehouse lacks: both find the same runs missing; inserts
never conflict on DuckLake, so without more both would add them and every sample would count twice
in the timing gate's baselines."""
from __future__ import annotations

import datetime as dt
import threading

from daena_pipelines.db import connect
from daena_pipelines.regressions import history
from tests.scale import workload


class _InsertsTogether:
    """A connection whose first INSERT into the history waits until the other one's is due too:
    both have read what the warehouse holds before either writes."""

    def __init__(self, con, barrier: threading.Barrier):
        self._con, self._barrier, self._waited = con, barrier, False

    def execute(self, query: str, *args):
        if query.startswith(f"INSERT INTO {history.HISTORY}") and not self._waited:
            self._waited = True
            self._barrier.wait()
        return self._con.execute(query, *args)

    def __getattr__(self, name):
        return getattr(self._con, name)


def test_two_imports_of_one_artifact_at_once_add_its_runs_once(lake_target, tmp_path):
    artifact = tmp_path / "bench-history"
    with connect(tmp_path / "scratch.duckdb") as scratch:
        history.record_samples(scratch, "run-1", "nbmf", [("k", "cpu", i, 1.0 + i / 10) for i in range(3)], dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc))
        history.export_artifact(scratch, artifact)
    with connect(lake_target) as first, connect(lake_target) as second:
        barrier = threading.Barrier(2, timeout=60)
        outcomes = workload.at_once(lambda con: history.import_artifact(_InsertsTogether(con, barrier), artifact), (first, second))
        assert sorted(outcomes) == [0, 1], outcomes  # one added the run, the other found it there
        assert first.execute(f"SELECT run_id, count(*) FROM {history.HISTORY} GROUP BY ALL").fetchall() == [("run-1", 3)]
