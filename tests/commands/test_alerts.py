"""Each alert rule: constructed data that must trigger it next to data that must not."""
import json
from dataclasses import fields
from datetime import timedelta

import pytest
from proposal_builders import FULL, T0, build, load, write_ingest

from daena_pipelines.commands import alerts, metrics, store
from daena_pipelines.db import connect, transaction
from daena_pipelines.device.safety import SafetyLimits
from daena_pipelines.device.sidecar import SidecarConfig

TO_EXECUTING = ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "EXECUTING")


def run_alerts(tmp_path, rows, as_of=None, **thresholds):
    db = tmp_path / "w.duckdb"
    load(db, rows)
    with connect(db) as con, transaction(con):
        alerts.build_alerts(con, alerts.AlertThresholds(**thresholds), as_of)
        cursor = con.execute("SELECT * FROM commands.alerts")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]


def of_type(found, alert_type):
    return sorted((a for a in found if a["alert_type"] == alert_type), key=lambda a: (a["machine_id"], a["proposal_id"] or ""))


def spaced(prefix, count, seconds, machine="bullet-r1-virtual", **overrides):
    return [build(f"{prefix}{i}", start=T0 + timedelta(seconds=i * seconds), machine_id=machine, **overrides)
            for i in range(count)]


def test_safety_violation(tmp_path):
    rows = [
        build("unsafe-rejected", ("PROPOSED", "REJECTED"), target_value=11.0),
        build("unsafe-run", ("PROPOSED", "PENDING_APPROVAL", "APPROVED", "EXECUTING", "FAILED"),
              command_type="PREHEAT", target_value=320.0, target_unit="C"),
        build("overshoot", FULL, command_type="SET_FAN", target_value=12.0, actual_value=13.0),
        build("edge-low", FULL, target_value=0.0), build("edge-high", FULL, target_value=9.0),
        build("drop", FULL, command_type="DROP", target_value=None),
    ]
    found = of_type(run_alerts(tmp_path, rows), "SAFETY_VIOLATION")
    assert [(a["proposal_id"], a["severity"], a["observed_value"], a["threshold"]) for a in found] == [
        ("overshoot", "CRITICAL", 13.0, 12.0),
        ("unsafe-rejected", "WARNING", 11.0, 9.0),
        ("unsafe-run", "CRITICAL", 320.0, 300.0),
    ]


def test_constraint_violation(tmp_path):
    rows = [
        build("over-own-max", ("PROPOSED", "REJECTED"), target_value=8.0, constraints=json.dumps({"max_value": 7})),
        build("short", FULL, target_value=5.0, actual_value=4.0, outcome="PARTIAL", constraints=json.dumps({"max_deviation": 0})),
        build("within", FULL, target_value=5.0, actual_value=5.5, constraints=json.dumps({"min_value": 3, "max_value": 7, "max_deviation": 1})),
        build("unconstrained", FULL, target_value=5.0, actual_value=2.0),
    ]
    found = of_type(run_alerts(tmp_path, rows), "CONSTRAINT_VIOLATION")
    assert [(a["proposal_id"], a["observed_value"], a["threshold"]) for a in found] == [
        ("over-own-max", 8.0, 7.0), ("short", 1.0, 0.0)]
    assert "deviation value 1.0" in found[1]["message"]


def test_rate_limit_exceeded(tmp_path):
    rows = (spaced("burst", 7, 5, machine="m-burst")  # 7 within 30 s: over the limit of 6, one alert
            + spaced("busy", 6, 5, machine="m-busy")  # 6 within 25 s: at the limit
            + spaced("paced", 7, 11.5, machine="m-paced"))  # 7 over 69 s: never more than 6 in 60 s
    found = of_type(run_alerts(tmp_path, rows), "RATE_LIMIT_EXCEEDED")
    assert [(a["machine_id"], a["proposal_id"], a["observed_value"]) for a in found] == [("m-burst", "burst6", 7.0)]
    assert found[0]["threshold"] == 6


def test_execution_failure(tmp_path):
    rows = [build(f"p-{status}", (*TO_EXECUTING, status), error=None if status == "COMPLETED" else "boom")
            for status in ("COMPLETED", "FAILED", "TIMEOUT", "ABORTED")]
    rows += [build("still-running", TO_EXECUTING)]
    found = of_type(run_alerts(tmp_path, rows), "EXECUTION_FAILURE")
    assert [a["proposal_id"] for a in found] == ["p-FAILED", "p-TIMEOUT"]
    assert "ended FAILED: boom" in found[0]["message"]


def test_a_command_stuck_executing_past_the_sidecar_timeout_alerts(tmp_path):
    """Nothing ends an EXECUTING row the sidecar never finished (it died with its worker): before, it stayed
    EXECUTING for ever without an alert. 60 s after its start at as_of is within the limit, 60.5 s is not."""
    as_of = T0 + timedelta(seconds=1000)
    rows = [build("stuck", TO_EXECUTING, start=as_of - timedelta(seconds=3603)),
            build("on-limit", TO_EXECUTING, start=as_of - timedelta(seconds=63)),
            build("past-limit", TO_EXECUTING, start=as_of - timedelta(seconds=63.5), machine_id="m2"),
            build("finished", FULL, start=as_of - timedelta(seconds=3603))]
    found = of_type(run_alerts(tmp_path, rows, as_of=as_of), "EXECUTION_STUCK")
    assert [(a["proposal_id"], a["severity"], a["observed_value"], a["threshold"]) for a in found] == [
        ("stuck", "ERROR", 3600, 60), ("past-limit", "ERROR", 60.5, 60)]
    assert found[0]["alert_at"] == as_of - timedelta(seconds=3600)
    assert found[0]["message"] == "SET_POWER 5.0 still EXECUTING 3600 s after it started (limit 60 s): nothing recorded how it ended"


def test_the_stuck_limit_follows_the_sidecars_command_timeout_and_warehouse_cycle(tmp_path):
    """The limit was a fixed 60 s, right only for the sidecar's default 20 s command timeout: a sidecar run with a
    300 s timeout raised EXECUTION_STUCK for each long command still inside it. Now it is command timeout + 5
    warehouse cycles + 30 s, the first two the sidecar's own defaults unless configured."""
    defaults = alerts.AlertThresholds()
    assert (defaults.command_timeout_s, defaults.warehouse_cycle_s) == (SafetyLimits().command_timeout_s,
                                                                        SidecarConfig().queue_poll_interval_s)
    as_of = T0 + timedelta(seconds=1000)
    rows = [build("inside-timeout", TO_EXECUTING, start=as_of - timedelta(seconds=203)),
            build("stuck", TO_EXECUTING, start=as_of - timedelta(seconds=403), machine_id="m2")]
    found = of_type(run_alerts(tmp_path, rows, as_of=as_of, command_timeout_s=300), "EXECUTION_STUCK")
    assert [(a["proposal_id"], a["observed_value"], a["threshold"]) for a in found] == [("stuck", 400, 340)]
    assert found[0]["message"] == "SET_POWER 5.0 still EXECUTING 400 s after it started (limit 340 s): nothing recorded how it ended"


def test_approval_expired(tmp_path):
    rows = [build("stale", (*TO_EXECUTING[:3], "EXPIRED"), gaps=[1, 5, 302], expiry_reason="approval expired at 10:05"),
            build("ran", FULL), build("waiting", TO_EXECUTING[:3])]
    [alert] = of_type(run_alerts(tmp_path, rows), "APPROVAL_EXPIRED")
    assert (alert["proposal_id"], alert["severity"], alert["observed_value"]) == ("stale", "WARNING", 302)
    assert alert["alert_at"] == T0 + timedelta(seconds=308)
    assert alert["message"] == "approved SET_POWER 5.0 never ran: the sidecar closed it EXPIRED (approval expired at 10:05)"


def test_approval_timeout(tmp_path):
    as_of = T0 + timedelta(seconds=1000)
    rows = [
        build("slow", FULL, gaps=[1, 149, 1, 1]),  # 150 s to approval
        build("quick", FULL, gaps=[1, 99, 1, 1]),  # 100 s
        build("slow-reject", ("PROPOSED", "PENDING_APPROVAL", "REJECTED"), gaps=[1, 200]),
        build("forgotten", ("PROPOSED", "PENDING_APPROVAL"), start=as_of - timedelta(seconds=200)),
        build("fresh", ("PROPOSED", "PENDING_APPROVAL"), start=as_of - timedelta(seconds=50)),
    ]
    found = of_type(run_alerts(tmp_path, rows, as_of=as_of), "APPROVAL_TIMEOUT")
    assert [(a["proposal_id"], round(a["observed_value"])) for a in found] == [
        ("forgotten", 200), ("slow", 150), ("slow-reject", 201)]
    assert all(a["threshold"] == 120 for a in found)


def test_approval_timeout_ages_pending_against_the_latest_log_time_by_default(tmp_path):
    rows = [build("waiting", ("PROPOSED", "PENDING_APPROVAL")),
            build("later", FULL, start=T0 + timedelta(seconds=500))]
    found = of_type(run_alerts(tmp_path, rows), "APPROVAL_TIMEOUT")
    assert [a["proposal_id"] for a in found] == ["waiting"]


def test_unusual_pattern(tmp_path):
    def series(prefix, targets, seconds, machine):
        return [build(f"{prefix}{i}", start=T0 + timedelta(seconds=i * seconds), target_value=t, machine_id=machine)
                for i, t in enumerate(targets)]

    rows = (series("hunt", [6, 5, 6, 5, 6, 5], 30, "m-hunting")  # 4 reversals within 150 s
            + series("slope", [8, 7, 7, 6, 5, 4, 3], 30, "m-steady")  # monotone, a repeat is no reversal
            + series("slow", [6, 5, 6, 5, 6, 5], 120, "m-slow"))  # 4 reversals, 120 s apart: at most 3 in 300 s
    found = of_type(run_alerts(tmp_path, rows), "UNUSUAL_PATTERN")
    assert [(a["machine_id"], a["proposal_id"], a["observed_value"]) for a in found] == [("m-hunting", "hunt5", 4.0)]


def test_high_failure_rate(tmp_path):
    def group(machine, outcomes):
        return [build(f"{machine}-{i}", (*TO_EXECUTING, status), start=T0 + timedelta(minutes=i), machine_id=machine)
                for i, status in enumerate(outcomes)]

    rows = (group("m-bad", ["COMPLETED"] * 3 + ["FAILED", "TIMEOUT"])  # 0.4 > 0.25
            + group("m-ok", ["COMPLETED"] * 4 + ["FAILED"])  # 0.2
            + group("m-aborted", ["COMPLETED"] * 2 + ["ABORTED"] * 3)  # aborts are no failures: 0.0
            + group("m-few", ["COMPLETED"] + ["FAILED"] * 3))  # 0.75 but only 4 finished
    found = of_type(run_alerts(tmp_path, rows), "HIGH_FAILURE_RATE")
    assert [(a["machine_id"], a["observed_value"]) for a in found] == [("m-bad", pytest.approx(0.4))]
    assert "2 of 5 finished executions failed or timed out" in found[0]["message"]
    assert found[0]["proposal_id"] is None and str(found[0]["day"]) == "2026-11-17"


def test_high_latency(tmp_path):
    def group(machine, approval_s, run_s, count=5):
        return [build(f"{machine}-{i}", FULL, gaps=[1, approval_s, 1, run_s], start=T0 + timedelta(minutes=i), machine_id=machine)
                for i in range(count)]

    timeouts = [build(f"m-timeouts-{i}", (*TO_EXECUTING, "TIMEOUT"), gaps=[1, 5, 1, 20], start=T0 + timedelta(minutes=i),
                      machine_id="m-timeouts") for i in range(5)]
    rows = (group("m-slow-approval", 100, 2) + group("m-slow-run", 5, 20) + group("m-fast", 5, 2)
            + group("m-few", 100, 20, count=4) + timeouts)  # timeouts are reported apart, not as slow runs
    found = of_type(run_alerts(tmp_path, rows), "HIGH_LATENCY")
    assert [(a["machine_id"], round(a["observed_value"]), a["threshold"]) for a in found] == [
        ("m-slow-approval", 101, 60), ("m-slow-run", 20, 15)]
    assert "decision latency p95" in found[0]["message"] and "execution duration p95" in found[1]["message"]


def test_a_group_slow_on_both_measures_has_two_alerts_with_their_own_ids(tmp_path):
    """Both HIGH_LATENCY measures of one day x machine x command type: the measure is part of the identity, or
    the two alerts share an alert_id (a primary key: the whole alerts build fails)."""
    rows = [build(f"both-{i}", FULL, gaps=[1, 100, 1, 20], start=T0 + timedelta(minutes=i), machine_id="m-both") for i in range(5)]
    found = of_type(run_alerts(tmp_path, rows), "HIGH_LATENCY")
    assert sorted(a["message"].split(" p95")[0] for a in found) == ["decision latency", "execution duration"]
    assert len({a["alert_id"] for a in found}) == 2


def test_thresholds_are_configurable(tmp_path):
    rows = [build("slow", FULL, gaps=[1, 149, 1, 1])]
    assert of_type(run_alerts(tmp_path, rows, approval_timeout_s=200), "APPROVAL_TIMEOUT") == []


def test_every_threshold_is_used():
    sql = alerts.alerts_sql()
    assert all(f"${f.name}" in sql for f in fields(alerts.AlertThresholds))


def test_no_alerts_on_an_uneventful_log(tmp_path):
    assert run_alerts(tmp_path, spaced("calm", 5, 120)) == []


def test_alerts_fire_just_past_their_thresholds_and_not_on_them(tmp_path):
    """Hand-set boundaries: a decision 120 s after creation is within the limit, 120.5 s is not; a failure rate
    of exactly 0.25 (2 of 8) does not fire, 0.4 over 5 finished does, and 4 finished never qualify."""
    def group(machine, statuses):
        return [build(f"{machine}-{i}", (*TO_EXECUTING, s), start=T0 + timedelta(minutes=i), machine_id=machine)
                for i, s in enumerate(statuses)]

    rows = [build("on-limit", FULL, gaps=[1, 119, 1, 1]), build("past-limit", FULL, gaps=[1, 119.5, 1, 1], start=T0 + timedelta(seconds=30))]
    rows += (group("m-quarter", ["COMPLETED"] * 6 + ["FAILED", "TIMEOUT"]) + group("m-five", ["COMPLETED"] * 3 + ["TIMEOUT"] * 2)
             + group("m-four", ["TIMEOUT"] * 4))
    found = run_alerts(tmp_path, rows)
    assert [(a["proposal_id"], a["observed_value"]) for a in of_type(found, "APPROVAL_TIMEOUT")] == [("past-limit", 120.5)]
    assert [(a["machine_id"], a["observed_value"]) for a in of_type(found, "HIGH_FAILURE_RATE")] == [("m-five", 0.4)]


def test_an_alert_keeps_its_id_while_the_log_grows(tmp_path):
    """alert_id is what downstream notification deduplicates on: the same pending proposal, stuck command or
    failing group must keep its id when the log's end (as_of) moves on or the group gains a sample. Before, the
    id hashed the message, which carries the wait so far and the counts: every run re-notified."""
    failing = [build(f"f{i}", (*TO_EXECUTING, "FAILED"), start=T0 + timedelta(seconds=i)) for i in range(5)]
    rows = [build("waiting", ("PROPOSED", "PENDING_APPROVAL")), build("stuck", TO_EXECUTING), *failing]
    ids = {}
    for run, (as_of, extra) in enumerate([(T0 + timedelta(seconds=500), []),
                                          (T0 + timedelta(seconds=900), [build("f5", (*TO_EXECUTING, "TIMEOUT"))])]):
        found = run_alerts(tmp_path / str(run), rows + extra, as_of=as_of)
        ids[run] = {(a["alert_type"], a["proposal_id"]): a["alert_id"] for a in found
                    if a["alert_type"] in ("APPROVAL_TIMEOUT", "EXECUTION_STUCK", "HIGH_FAILURE_RATE")}
    assert set(ids[0]) == {("APPROVAL_TIMEOUT", "waiting"), ("EXECUTION_STUCK", "stuck"), ("HIGH_FAILURE_RATE", None)}
    assert ids[0] == ids[1]


def test_a_command_run_without_a_valid_approval_is_a_critical_alert(tmp_path):
    """Running a rejected, expired or never-approved command is the safety breach this domain exists to show.
    Before, such a proposal only left commands.proposals for invalid_transitions (a WARN check the bundled
    log's planted rows keep red anyway): no alert. An illegal move that starts no execution raises none."""
    def sidecar_ran(proposal_id):
        return {"proposal_id": proposal_id, "machine_id": "bullet-r1-virtual", "session_id": None,
                "command_type": "SET_POWER", "target_value": 5.0, "status": "COMPLETED",
                "started_at": T0 + timedelta(seconds=400), "completed_at": T0 + timedelta(seconds=402),
                "observed_value": 5.0, "error": None, "source": "simulator"}

    batch = store.Batch()
    for built in (build("skipped-approval", ("PROPOSED", "PENDING_APPROVAL", "EXECUTING", "COMPLETED")),
                  build("rejected", ("PROPOSED", "REJECTED")),
                  build("expired", (*TO_EXECUTING[:3], "EXPIRED")),
                  build("approved", TO_EXECUTING[:3]),
                  build("re-approved", ("PROPOSED", "REJECTED", "APPROVED", "EXECUTING", "COMPLETED")),
                  build("skipped-executing", (*TO_EXECUTING[:3], "COMPLETED"), machine_id="m2")):
        batch.add(*built)
    # a log kept from the approval on (older entries purged) is invalid, but it shows the approval before the run
    truncated, history = build("log-from-approval", FULL, machine_id="m2")
    batch.add(truncated, history[2:])
    store.apply_executions(batch, [sidecar_ran(p) for p in ("rejected", "expired", "approved")])
    db = tmp_path / "w.duckdb"
    with connect(db) as con, transaction(con):
        write_ingest(con, store.accept(batch))
        metrics.build_outcome_metrics(con)
        alerts.build_alerts(con, alerts.AlertThresholds())
        found = con.execute("SELECT proposal_id, severity, machine_id, command_type, alert_at, message FROM commands.alerts "
                            "WHERE alert_type = 'UNAPPROVED_EXECUTION' ORDER BY proposal_id").fetchall()
    assert [row[:4] for row in found] == [(p, "CRITICAL", "bullet-r1-virtual", "SET_POWER")
                                          for p in ("expired", "re-approved", "rejected", "skipped-approval")]
    assert [row[4] for row in found] == [T0 + timedelta(seconds=s) for s in (400, 3, 400, 2)]
    assert found[2][5] == ("SET_POWER on rejected ran without a valid approval (at device.command_executions row 0 "
                           "proposal_id=rejected); the proposal's lifecycle problems are in commands.invalid_transitions")


def test_real_and_generated_proposals_are_never_pooled_in_metrics_or_alerts(tmp_path):
    """One day, machine and command type: five real commands that succeeded and five generated ones that failed.
    Pooled, the real machine showed a 0.5 failure rate (a HIGH_FAILURE_RATE alert nobody could tell from a real
    one) and ten proposals within 60 s (a rate-limit alert neither log earned on its own)."""
    real = spaced("real", 5, 5, origin="real")
    generated = [build(f"gen{i}", (*TO_EXECUTING, "FAILED"), start=T0 + timedelta(seconds=2 + 5 * i)) for i in range(5)]
    unsafe = build("gen-unsafe", ("PROPOSED", "REJECTED"), start=T0 + timedelta(hours=1), target_value=11.0)
    found = run_alerts(tmp_path, [*real, *generated, unsafe])
    with connect(tmp_path / "w.duckdb", read_only=True) as con:
        by_origin = con.execute("SELECT origin, n_proposals, failure_rate FROM commands.outcome_metrics ORDER BY origin").fetchall()
    assert by_origin == [("generated", 6, 1.0), ("real", 5, 0.0)]
    assert sorted((a["alert_type"], a["origin"], a["proposal_id"] or "") for a in found) == sorted([
        *(("EXECUTION_FAILURE", "generated", f"gen{i}") for i in range(5)),
        ("HIGH_FAILURE_RATE", "generated", ""), ("SAFETY_VIOLATION", "generated", "gen-unsafe")])
