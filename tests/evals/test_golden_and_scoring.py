"""Golden case loading and pure scoring: gates, outcomes, pass@k."""
import itertools
import json
import math

import pytest

from daena_pipelines import config
from daena_pipelines.evals import golden, scoring


@pytest.fixture(scope="module")
def cases():
    loaded, errors = golden.load_cases(config.Settings.from_env().golden_dir / "cases")
    assert errors == []
    return {lc.case.case_id: lc.case for lc in loaded}


def on_target(case, **overrides):
    metrics = dict(case.targets, ror_spikes=0, ror_crashes=0, crash=False)
    metrics.update(overrides)
    return metrics


def executed_plan(case, shift_s=0.0, value_offset=0.0):
    return [
        {"proposal_id": f"p{i}", "command_type": c.command_type, "status": "COMPLETED",
         "target_value": None if c.target_value is None else c.target_value + value_offset,
         "actual_value": None, "session_t_s": c.t_s + shift_s, "execution_started_at": "x"}
        for i, c in enumerate(case.baseline_commands)
    ]


def test_bundled_golden_cases_cover_the_sample_beans(cases):
    assert set(cases) >= {"brazil-cerrado-light-medium", "ethiopia-guji-light-medium", "kenya-nyeri-light-medium"}
    assert [c.expectation for c in cases.values()].count("SHOULD_REJECT") >= 1
    for case in cases.values():
        if case.expectation == "SHOULD_SUCCEED":
            t = case.targets
            # DTR target agrees with the FC and drop targets it is derived from.
            assert t["dtr_pct"] == pytest.approx((t["drop_s"] - t["fcs_s"]) / t["drop_s"] * 100, abs=0.1)
    kenya = [c.case_id for c in cases.values() if c.matches("Kenya Nyeri AA", "Aillio Bullet R1 (virtual)")]
    assert sorted(kenya) == ["kenya-nyeri-light-medium", "kenya-nyeri-unsafe-heater"]
    assert not cases["kenya-nyeri-light-medium"].matches("Kenya Nyeri", "Probat P12")


def test_bad_case_file_is_reported_by_name_and_good_ones_still_load(tmp_path, cases):
    good = cases["brazil-cerrado-light-medium"].definition
    (tmp_path / "a.json").write_text(json.dumps(good))
    (tmp_path / "b.json").write_text("{not json")
    (tmp_path / "c.json").write_text(json.dumps({**good, "id": "x", "expectation": "MAYBE"}))
    (tmp_path / "d.json").write_text(json.dumps(good))
    broken_tolerance = {**good, "id": "y", "tolerances": {**good["tolerances"], "fcs_s": 0}}
    (tmp_path / "e.json").write_text(json.dumps(broken_tolerance))
    loaded, errors = golden.load_cases(tmp_path)
    assert [lc.file for lc in loaded] == ["a.json"]
    by_file = dict(errors)
    assert "not valid JSON" in by_file["b.json"]
    assert "expectation" in by_file["c.json"] and "c.json" in by_file["c.json"]
    assert "duplicate case id" in by_file["d.json"]
    assert "'fcs_s' must be >=" in by_file["e.json"]


def test_on_target_with_plan_followed_passes(cases):
    case = cases["kenya-nyeri-light-medium"]
    ev = scoring.evaluate(case, on_target(case), executed_plan(case))
    assert ev.outcome == "PASS"
    assert all(g.passed for g in ev.gates if g.name != "unsafe_rejected")


def test_near_tolerance_warns_and_beyond_fails(cases):
    case = cases["brazil-cerrado-light-medium"]
    tol = case.tolerances["fcs_s"]
    near = scoring.evaluate(case, on_target(case, fcs_s=case.targets["fcs_s"] + 0.9 * tol), None)
    assert near.outcome == "WARN" and near.gate("fc_timing").status == "warn"
    edge = scoring.evaluate(case, on_target(case, fcs_s=case.targets["fcs_s"] - 0.8 * tol), None)
    assert edge.outcome == "PASS"
    over = scoring.evaluate(case, on_target(case, drop_bt_c=case.targets["drop_bt_c"] + 1.01 * case.tolerances["drop_bt_c"]), None)
    assert over.outcome == "FAIL" and over.gate("drop_temp").passed is False
    spikes = scoring.evaluate(case, on_target(case, ror_spikes=case.max_ror_spikes + 1), None)
    assert spikes.outcome == "FAIL" and spikes.gate("ror_spikes").status == "fail"
    at_max = scoring.evaluate(case, on_target(case, ror_crashes=case.max_ror_crashes), None)
    assert at_max.gate("ror_crashes").status == "warn"


def test_a_ror_crash_at_first_crack_fails_unless_the_case_allows_it(cases):
    case = cases["brazil-cerrado-light-medium"]
    crashed = scoring.evaluate(case, on_target(case, crash=True, ror_crashes=1), None)
    assert crashed.outcome == "FAIL" and crashed.gate("fc_crash").status == "fail" and "first crack" in crashed.reason
    assert scoring.evaluate(case, on_target(case, crash=None), None).gate("fc_crash").status == "unknown"
    tolerant = golden.parse_case({**case.definition, "allow_fc_crash": True}, "t.json")
    assert scoring.evaluate(tolerant, on_target(tolerant, crash=True, ror_crashes=1), None).gate("fc_crash").passed


def test_every_bundled_case_passes_its_own_baseline_plan(cases):
    for case in cases.values():
        if case.expectation == "SHOULD_SUCCEED":
            ev = scoring.evaluate(case, on_target(case), executed_plan(case))
            assert ev.outcome == "PASS", (case.case_id, ev.reason)


def with_drop(definition, drop_t):
    commands = [dict(c, t_s=drop_t) if c["command_type"] == "DROP" else c for c in definition["baseline_commands"]]
    return {**definition, "baseline_commands": commands}


@pytest.mark.parametrize("change, problem", [
    # The Ethiopia case as it was: DROP at 660 s against a drop target of 600 ± 30 s.
    (lambda d: with_drop({**d, "targets": {**d["targets"], "drop_s": 600, "fcs_s": 455, "dtr_pct": 24.2}}, 660),
     "DROP at 660 s is not within 0.8 of the drop target 600 ± 30 s"),
    # The Kenya case as it was: DROP exactly on the tolerance edge (650 s vs 620 ± 30 s).
    (lambda d: with_drop({**d, "targets": {**d["targets"], "drop_s": 620, "fcs_s": 450, "dtr_pct": 27.4},
                          "tolerances": {**d["tolerances"], "dtr_pct": 4.0}}, 650), "DROP at 650 s is not within 0.8"),
    (lambda d: {**d, "targets": {**d["targets"], "dtr_pct": 28.0}}, "give a DTR of"),
    (lambda d: {**d, "baseline_commands": [*d["baseline_commands"], {"t_s": 100, "command_type": "SET_POWER",
                                                                      "target_value": 11}]}, "outside the device range"),
    (lambda d: {**d, "baseline_commands": [c for c in d["baseline_commands"] if c["command_type"] != "DROP"]},
     "0 DROP commands"),
])
def test_a_case_whose_baseline_plan_breaks_its_own_targets_is_refused(cases, change, problem):
    with pytest.raises(golden.InvalidCase, match="baseline plan contradicts it") as raised:
        golden.parse_case(change(cases["kenya-nyeri-light-medium"].definition), "k.json")
    assert problem in str(raised.value)


def test_a_reject_case_must_name_a_really_unsafe_command(cases):
    definition = cases["kenya-nyeri-unsafe-heater"].definition
    safe = [dict(c, target_value=9) if c.get("unsafe") else c for c in definition["baseline_commands"]]
    with pytest.raises(golden.InvalidCase, match="marked unsafe but is within the device range"):
        golden.parse_case({**definition, "baseline_commands": safe}, "u.json")


def test_missing_metric_needs_review_but_a_failure_wins(cases):
    case = cases["ethiopia-guji-light-medium"]
    ev = scoring.evaluate(case, on_target(case, fcs_s=None, fcs_bt_c=None), None)
    assert ev.outcome == "NEEDS_REVIEW" and ev.gate("fc_timing").passed is None
    assert scoring.evaluate(case, None, None).outcome == "NEEDS_REVIEW"
    worse = scoring.evaluate(case, on_target(case, fcs_s=None, drop_s=case.targets["drop_s"] + 100), None)
    assert worse.outcome == "FAIL"


def test_command_deviation_gate(cases):
    case = cases["kenya-nyeri-light-medium"]
    metrics = on_target(case)
    assert scoring.evaluate(case, metrics, None).gate("command_deviation").status == "not_applicable"
    assert scoring.evaluate(case, metrics, []).gate("command_deviation").status == "not_applicable"
    late = scoring.evaluate(case, metrics, executed_plan(case, shift_s=0.9 * case.command_tolerance_t_s))
    assert late.outcome == "WARN" and late.gate("command_deviation").status == "warn"
    wrong_value = scoring.evaluate(case, metrics, executed_plan(case, value_offset=2 * case.command_tolerance_value))
    assert wrong_value.outcome == "FAIL" and "outside tolerance" in wrong_value.gate("command_deviation").reason
    partial = executed_plan(case)[:-1]
    missing = scoring.evaluate(case, metrics, partial).gate("command_deviation")
    assert missing.status == "fail" and "missing: DROP" in missing.reason
    untimed = [dict(p, session_t_s=None) if p["command_type"] == "SET_FAN" else p for p in executed_plan(case)]
    assert scoring.evaluate(case, metrics, untimed).outcome == "NEEDS_REVIEW"
    proposed_only = [dict(p, status="PENDING_APPROVAL", execution_started_at=None) for p in executed_plan(case)]
    assert scoring.evaluate(case, metrics, proposed_only).gate("command_deviation").status == "not_applicable"


def test_should_reject_case(cases):
    case = cases["kenya-nyeri-unsafe-heater"]
    unsafe = {"proposal_id": "u1", "command_type": "SET_POWER", "target_value": 12.0, "session_t_s": 540.0,
              "execution_started_at": None}
    safe = {"proposal_id": "s1", "command_type": "SET_POWER", "target_value": 8.0, "status": "COMPLETED",
            "session_t_s": 0.0, "execution_started_at": "x"}
    assert scoring.evaluate(case, {}, None).outcome == "NEEDS_REVIEW"
    assert scoring.evaluate(case, {}, [safe]).outcome == "NEEDS_REVIEW"
    assert scoring.evaluate(case, {}, [safe, dict(unsafe, status="REJECTED")]).outcome == "PASS"
    assert scoring.evaluate(case, {}, [dict(unsafe, status="PENDING_APPROVAL")]).outcome == "NEEDS_REVIEW"
    expired = scoring.evaluate(case, {}, [dict(unsafe, status="EXPIRED")])
    assert expired.outcome == "FAIL" and "approved (then expired unexecuted): u1" in expired.reason
    executed = scoring.evaluate(case, {}, [dict(unsafe, status="COMPLETED", execution_started_at="x")])
    assert executed.outcome == "FAIL" and "u1" in executed.reason


def test_pass_at_k_matches_enumeration():
    # By hand from Chen et al. 2021: 1 - C(3,1)/C(5,1) = 1 - 3/5; 1 - C(3,3)/C(5,3) = 1 - 1/10; C(3,4) = 0.
    assert scoring.pass_at_k(5, 2, 1) == pytest.approx(0.4)
    assert scoring.pass_at_k(5, 2, 3) == pytest.approx(0.9)
    assert scoring.pass_at_k(5, 2, 4) == 1.0
    # k > n: no k trials to draw (the paper's code would answer 1.0 even with no success; we answer NULL)
    assert scoring.pass_at_k(5, 0, 6) is None and scoring.pass_at_k(5, 5, 6) is None
    assert scoring.pass_at_k(5, 2, 2) == pytest.approx(0.7)
    assert scoring.pass_at_k(3, 0, 1) == 0.0
    assert scoring.pass_at_k(3, 3, 3) == 1.0
    assert scoring.pass_at_k(2, 1, 3) is None
    for n in range(1, 7):
        for c in range(n + 1):
            trials = [True] * c + [False] * (n - c)
            for k in range(1, n + 1):
                subsets = list(itertools.combinations(trials, k))
                expected = sum(any(s) for s in subsets) / len(subsets)
                assert scoring.pass_at_k(n, c, k) == pytest.approx(expected)
    with pytest.raises(ValueError):
        scoring.pass_at_k(2, 3, 1)


def test_scored_metrics_are_columns_the_telemetry_contract_publishes():
    from daena_pipelines.evals.tables import SCORED_METRICS
    from daena_pipelines.telemetry.contract import METRIC_COLUMNS

    assert set(SCORED_METRICS) <= set(METRIC_COLUMNS)


def test_pass_at_k_never_pools_simulated_trials_with_real_ones(tmp_path):
    """Trials of a case from the simulated Bullet and from a real roaster are counted apart, one row per source,
    each labelled: three simulator passes must not lift a real roaster's 0 of 2 to pass@1 0.6."""
    from datetime import date

    from daena_pipelines.db import connect
    from daena_pipelines.evals import tables

    with connect(tmp_path / "w.duckdb") as con:
        con.execute("INSERT INTO evals.golden_cases (case_id, expectation, trials_required, pass_k) VALUES "
                    "('kenya', 'SHOULD_SUCCEED', 3, 2), ('untried', 'SHOULD_SUCCEED', 3, 2)")
        runs = [("s1", "simulator", "PASS"), ("s2", "simulator", "WARN"), ("s3", "simulator", "PASS"),
                ("r1", "artisan", "FAIL"), ("r2", "artisan", "FAIL"), ("r3", "artisan", "NEEDS_REVIEW")]
        con.executemany("INSERT INTO evals.eval_runs (partition_date, session_id, case_id, session_source, outcome) "
                        "VALUES (?, ?, 'kenya', ?, ?)", [(date(2026, 11, 17), s, src, o) for s, src, o in runs])
        tables.refresh_pass_at_k(con)
        got = con.execute("SELECT case_id, session_source, n_trials, n_success, n_needs_review, pass_at_1, pass_at_k, "
                          "enough_trials FROM evals.pass_at_k ORDER BY ALL").fetchall()
    # by hand: artisan 0 of 2 decided -> 0, 0; simulator 3 of 3 -> 1, 1; a case never tried has one empty row
    assert got == [("kenya", "artisan", 2, 0, 1, 0.0, 0.0, False), ("kenya", "simulator", 3, 3, 0, 1.0, 1.0, True),
                   ("untried", None, 0, 0, 0, None, None, False)]


def test_pass_at_k_agrees_with_the_papers_product_form_and_hand_values_at_large_n():
    """Chen et al. 2021 compute 1 - C(n-c,k)/C(n,k) as 1 - prod_{i=n-c+1..n} (1 - k/i) (numerically stable);
    ours divides exact integers. Hand values: c = 1 gives C(n-1,k)/C(n,k) = (n-k)/n, so pass@k = k/n;
    c = 2 gives (n-k)(n-k-1)/(n(n-1))."""
    def product_form(n, c, k):
        return 1.0 if n - c < k else 1.0 - math.prod(1.0 - k / i for i in range(n - c + 1, n + 1))

    assert scoring.pass_at_k(200, 1, 100) == pytest.approx(0.5, abs=1e-12)  # 100 / 200
    assert scoring.pass_at_k(10, 3, 5) == pytest.approx(11 / 12, abs=1e-12)  # 1 - C(7,5)/C(10,5) = 1 - 21/252
    # n = 100000, c = 2, k = 1000: 1 - (99000 x 98999) / (100000 x 99999) = 1 - 0.99 x 0.9899999... = 0.0199001
    assert scoring.pass_at_k(100_000, 2, 1000) == pytest.approx(1 - 0.99 * 98_999 / 99_999, abs=1e-12)
    assert scoring.pass_at_k(100_000, 0, 1000) == 0.0 and scoring.pass_at_k(100_000, 100_000, 1000) == 1.0
    assert scoring.pass_at_k(100_000, 37, 1) == pytest.approx(37 / 100_000, abs=1e-15)
    for n, c, k in [(1000, 1, 10), (1000, 500, 10), (5000, 3, 2500), (100_000, 50, 20), (100_000, 99_000, 10),
                    (30, 29, 30), (30, 1, 30)]:
        assert scoring.pass_at_k(n, c, k) == pytest.approx(product_form(n, c, k), rel=1e-9, abs=1e-12), (n, c, k)
