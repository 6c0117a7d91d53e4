"""Two findings runs at once on a DuckLake warehouse (the deployment's pool lets 4 steps write):
both read the same new check results from the event log. DuckLake has no keys and inserts never
conflict, so without more both would open the same finding; the later must find the results
recorded and read again from the new watermarks."""
from __future__ import annotations

import datetime as dt
import threading

from daena_pipelines.db import connect
from daena_pipelines.regressions import findings
from tests.scale import workload

STREAM = "check:nbmf/results:nbmf_golden@instance-1"
FAILED = findings.CheckEvaluation("nbmf/results", "nbmf_golden", False, dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                                  "run-1", [{"metric": "ratio_total", "golden": 2.0, "actual": 1.5}])


def test_two_findings_writers_at_once_record_a_result_once(lake_target, monkeypatch):
    both_inside, waited = threading.Barrier(2, timeout=60), set()
    advance = findings._advance

    def advance_when_both_are_inside(con, watermarks):  # both transactions have read the state before either commits
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            both_inside.wait()
        advance(con, watermarks)

    monkeypatch.setattr(findings, "_advance", advance_when_both_are_inside)
    with connect(lake_target) as first, connect(lake_target) as second:
        def record(con):
            read_from = findings.read_watermarks(con)  # as the asset does: what it read the event log after
            return findings.record_evaluations(con, [FAILED], {STREAM: 5}, read_from=read_from)

        outcomes = workload.at_once(record, (first, second))
        recorded = [o for o in outcomes if isinstance(o, dict)]
        assert recorded == [{"opened": 1, "updated": 0, "resolved": 0}], outcomes
        assert [type(o) for o in outcomes if not isinstance(o, dict)] == [findings.WatermarksMoved]
        assert first.execute("SELECT finding_key, occurrences FROM regressions.findings").fetchall() == [
            ("nbmf/results/nbmf_golden:ratio_total", 1)]
        assert first.execute("SELECT stream, position FROM regressions.findings_watermarks").fetchall() == [(STREAM, 5)]
