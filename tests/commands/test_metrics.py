from datetime import datetime, timedelta, timezone

import numpy as np
import pytest
from proposal_builders import FULL, T0, build, load

from daena_pipelines.db import connect

TO_EXECUTING = ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "EXECUTING")


def constructed():
    """One day x machine x command type with every status, known latencies and durations."""
    rows = []
    # (final status, approval wait s, execution s)
    executed = [("COMPLETED", 4, 1), ("COMPLETED", 10, 2), ("COMPLETED", 30, 10),
                ("FAILED", 6, 3), ("TIMEOUT", 8, 20), ("ABORTED", 12, 0.5), ("PARTIAL", 5, 2)]
    for i, (status, wait, run) in enumerate(executed):
        final = "COMPLETED" if status == "PARTIAL" else status
        partial = {"outcome": "PARTIAL", "actual_value": 4.0} if status == "PARTIAL" else {}
        rows.append(build(f"e{i}", (*TO_EXECUTING, final), gaps=[1, wait, 1, run], start=T0 + timedelta(minutes=i),
                          **partial))
    rows.append(build("x1", TO_EXECUTING, gaps=[1, 20, 1], start=T0 + timedelta(minutes=10)))
    rows.append(build("a1", TO_EXECUTING[:3], gaps=[1, 40], start=T0 + timedelta(minutes=11)))
    rows.append(build("w1", TO_EXECUTING[:2], start=T0 + timedelta(minutes=12)))
    rows.append(build("n1", ("PROPOSED",), start=T0 + timedelta(minutes=13)))
    rows.append(build("r1", ("PROPOSED", "REJECTED"), start=T0 + timedelta(minutes=14)))
    rows.append(build("r2", ("PROPOSED", "PENDING_APPROVAL", "REJECTED"), start=T0 + timedelta(minutes=15)))
    rows.append(build("s1", (*TO_EXECUTING[:3], "EXPIRED"), gaps=[1, 7, 300], start=T0 + timedelta(minutes=5, seconds=30),
                      expiry_reason="approval expired"))
    return rows, executed


def metrics_rows(db):
    with connect(db, read_only=True) as con:
        cursor = con.execute("SELECT * FROM commands.outcome_metrics ORDER BY day, machine_id, command_type")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def test_counts_rates_and_distributions(tmp_path):
    rows, executed = constructed()
    load(tmp_path / "w.duckdb", rows)
    [m] = metrics_rows(tmp_path / "w.duckdb")
    assert (m["n_proposals"], m["n_completed"], m["n_failed"], m["n_timeout"], m["n_aborted"]) == (14, 4, 1, 1, 1)
    assert (m["n_executing"], m["n_approved"], m["n_pending_approval"], m["n_proposed"], m["n_rejected"]) == (1, 1, 1, 1, 2)
    assert m["n_expired"] == 1  # approved, closed unexecuted: decided, but no execution
    # Success: 3 COMPLETED-with-SUCCESS of 7 finished executions; the PARTIAL one is not a success, and
    # EXECUTING/APPROVED/EXPIRED/pending are not in the denominator.
    assert m["n_terminal_executed"] == 7 and (m["n_succeeded"], m["n_partial"]) == (3, 1)
    assert m["success_rate"] == pytest.approx(3 / 7)
    # One failure rule: FAILED + TIMEOUT; ABORTED (the operator's decision) is neither success nor failure.
    assert m["n_failures"] == 2 and m["failure_rate"] == pytest.approx(2 / 7)
    # Rejection: 2 REJECTED of 12 decided (10 approved-or-later, the expired one too, + 2 rejected);
    # PROPOSED/PENDING are undecided.
    assert m["n_decided"] == 12 and m["rejection_rate"] == pytest.approx(2 / 12)
    assert m["n_execution_timeouts"] == 1 and m["execution_timeout_max_s"] == pytest.approx(20)

    # Decision latency = (approved_at or rejected_at) - created_at over the 10 approved and the 2 rejected.
    latencies = [1 + wait for _, wait, _ in executed] + [1 + 20, 1 + 40] + [1, 2] + [1 + 7]
    # Still pending at the log's latest timestamp (r2 rejected at T0 + 15 min 2 s): w1 and n1, waiting so far.
    assert m["pending_decision_n"] == 2 and m["pending_decision_max_wait_s"] == pytest.approx(3 * 60 + 2)
    # Execution duration over executions that ended on their own: the 20 s TIMEOUT is reported apart.
    durations = [run for status, _, run in executed if status != "TIMEOUT"]
    for name, values in (("approval_latency", latencies), ("execution_duration", durations)):
        for q, label in ((50, "p50"), (95, "p95"), (99, "p99")):
            assert m[f"{name}_{label}_s"] == pytest.approx(np.percentile(values, q)), (name, label)
        assert m[f"{name}_max_s"] == pytest.approx(max(values))
        assert m[f"{name}_n"] == len(values)


def test_groups_by_utc_day_machine_and_command_type(tmp_path):
    late = datetime(2026, 11, 18, 1, 30, tzinfo=timezone(timedelta(hours=2)))  # 2026-11-17 23:30 UTC
    rows = [
        build("a", FULL, start=late, gaps=[1, 3600, 1, 1]),
        build("b", FULL, start=late + timedelta(hours=1)),
        build("c", FULL, start=late, machine_id="bullet-r1-virtual-b"),
        build("d", FULL, start=late, command_type="SET_FAN"),
    ]
    load(tmp_path / "w.duckdb", rows)
    got = [(str(m["day"]), m["machine_id"], m["command_type"], m["n_proposals"]) for m in metrics_rows(tmp_path / "w.duckdb")]
    assert got == [
        ("2026-11-17", "bullet-r1-virtual", "SET_FAN", 1),
        ("2026-11-17", "bullet-r1-virtual", "SET_POWER", 1),  # counted on the day it was created, not executed
        ("2026-11-17", "bullet-r1-virtual-b", "SET_POWER", 1),
        ("2026-11-18", "bullet-r1-virtual", "SET_POWER", 1),
    ]


def test_rates_are_null_when_nothing_finished_or_was_decided(tmp_path):
    load(tmp_path / "w.duckdb", [build("w", ("PROPOSED", "PENDING_APPROVAL"))])
    [m] = metrics_rows(tmp_path / "w.duckdb")
    assert m["success_rate"] is None and m["rejection_rate"] is None and m["approval_latency_p95_s"] is None
