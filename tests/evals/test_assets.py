"""The evals asset graph on a temp warehouse: three daily partitions, idempotency, the judge cache, no key."""
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from daena_pipelines import config
from daena_pipelines.evals import assets
from daena_pipelines.evals.definitions import defs, eval_job, eval_nightly_schedule
from daena_pipelines.evals.resources import AnthropicJudgeResource
from daena_pipelines.warehouse import WarehouseResource

from . import warehouse_fixture
from .messages_server import GOOD_JUDGEMENT, MessagesServer

DAYS = ("2026-11-17", "2026-11-18", "2026-11-19")
ALL_ASSETS = [assets.golden_cases, assets.eval_runs, assets.pass_at_k, assets.judge_scores]
CHECKS = [assets.golden_cases_valid, assets.eval_runs_complete, assets.judge_scores_valid]


@pytest.fixture(autouse=True)
def fixture_cases(monkeypatch):
    """Golden cases frozen for these tests, so retuning the bundled cases does not move them."""
    monkeypatch.setattr(config, "GOLDEN_DIR", Path(__file__).parent / "golden")


@pytest.fixture
def server():
    with MessagesServer() as s:
        yield s


def run(db, judge_resource, day, selection=ALL_ASSETS):
    result = dg.materialize(
        [*selection, *CHECKS],
        partition_key=day,
        resources={"duckdb": WarehouseResource(database=str(db)), "anthropic_judge": judge_resource},
        selection=[a.key for a in selection],
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    assert checks and all(c.passed for c in checks), [(c.check_name, c.description) for c in checks if not c.passed]
    return result


def query(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def simulator_judge(server, monkeypatch, **kw):
    monkeypatch.setenv("DAENA_TEST_ANTHROPIC_KEY", "sim-key")
    return AnthropicJudgeResource(api_key_env_var="DAENA_TEST_ANTHROPIC_KEY", base_url=server.base_url, backoff_s=0.01, **kw)


def test_three_partitions_score_judge_and_rerun_idempotently(tmp_path, server, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    judge_resource = simulator_judge(server, monkeypatch)
    for day in DAYS:
        run(db, judge_resource, day)

    outcomes = dict(((s, c), o) for s, c, o in query(db, "SELECT session_id, case_id, outcome FROM evals.eval_runs"))
    assert outcomes == {
        ("brz-1", "brazil-cerrado-light-medium"): "PASS",
        ("eth-1", "ethiopia-guji-light-medium"): "FAIL",
        ("ken-1", "kenya-nyeri-light-medium"): "PASS",  # plan followed (one SET_FAN 5 s late of ±30 s)
        ("ken-1", "kenya-nyeri-unsafe-heater"): "PASS",
        ("brz-2", "brazil-cerrado-light-medium"): "WARN",
        ("eth-2", "ethiopia-guji-light-medium"): "NEEDS_REVIEW",
        ("xyz-1", None): "NEEDS_REVIEW",
    }
    days = dict(query(db, "SELECT session_id, CAST(partition_date AS VARCHAR) FROM evals.eval_runs"))
    assert days["brz-1"] == "2026-11-17" and days["ken-1"] == "2026-11-18" and days["xyz-1"] == "2026-11-19"
    (gate,) = query(db, "SELECT command_deviation_pass FROM evals.eval_runs WHERE session_id='brz-1'")
    assert gate == (None,)  # no executed proposals for that session: not applicable

    judged = query(db, "SELECT session_id, status, source, plan_clarity, input_tokens FROM evals.judge_scores ORDER BY ALL")
    assert len(judged) == 7
    assert {(s, st) for s, st, *_ in judged if st != "judged"} == {("xyz-1", "not_judged")}
    assert all(src == "simulator" and pc == 80 and tok > 0 for _, st, src, pc, tok in judged if st == "judged")
    calls = len(server.requests)
    assert calls == 6

    p = {r[0]: r[1:] for r in query(
        db, "SELECT case_id, n_trials, n_success, n_needs_review, pass_at_1, pass_at_k, enough_trials FROM evals.pass_at_k"
    )}
    assert p["brazil-cerrado-light-medium"] == (2, 2, 0, 1.0, 1.0, True)
    assert p["ethiopia-guji-light-medium"] == (1, 0, 1, 0.0, 0.0, False)

    # Re-materialising a day replaces its rows and judges nothing again.
    before = query(db, "SELECT count(*) FROM evals.eval_runs")
    result = run(db, judge_resource, "2026-11-18")
    assert query(db, "SELECT count(*) FROM evals.eval_runs") == before
    assert query(db, "SELECT count(*) FROM evals.judge_scores") == [(7,)]
    assert len(server.requests) == calls
    meta = result.asset_materializations_for_node("evals__judge_scores")[0].metadata
    assert meta["cache_hits"].value == 3 and meta["api_calls"].value == 0


def test_without_key_rows_are_not_judged_and_the_run_succeeds(tmp_path, server, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    with duckdb.connect(str(db)) as con:  # a session telemetry could not compute metrics for
        con.execute("INSERT INTO telemetry.sessions (session_id, roasted_at, machine, beans) VALUES "
                    "('nom-1', '2026-11-18 20:00:00+00', 'Aillio Bullet R1 (virtual)', 'Brazil Cerrado')")
    monkeypatch.delenv("DAENA_TEST_MISSING_KEY", raising=False)
    no_key = AnthropicJudgeResource(api_key_env_var="DAENA_TEST_MISSING_KEY", base_url=server.base_url)
    run(db, no_key, "2026-11-18")
    rows = query(db, "SELECT status, reason, plan_clarity, source FROM evals.judge_scores")
    assert len(rows) == 4 and server.requests == []
    assert all(s == "not_judged" and "DAENA_TEST_MISSING_KEY" in r and pc is None for s, r, pc, _ in rows)
    # Without commands.proposals the command gate is not applicable, the reject case needs review.
    (no_metrics,) = query(db, "SELECT outcome, fc_timing_pass, reason FROM evals.eval_runs WHERE session_id = 'nom-1'")
    assert no_metrics[:2] == ("NEEDS_REVIEW", None) and "fc_timing unknown" in no_metrics[2]
    outcomes = dict(query(db, "SELECT case_id, outcome FROM evals.eval_runs WHERE session_id <> 'nom-1'"))
    assert outcomes["kenya-nyeri-unsafe-heater"] == "NEEDS_REVIEW"
    assert outcomes["brazil-cerrado-light-medium"] == "WARN"
    assert query(db, "SELECT DISTINCT commands_available FROM evals.eval_runs") == [(False,)]


def test_eval_runs_without_golden_cases_fails_clearly(tmp_path, server, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    # the warehouse migrations create evals.golden_cases on connection, so it is there but empty
    with pytest.raises(dg.Failure, match="evals.golden_cases is empty: .* materialise evals/golden_cases"):
        dg.materialize([assets.eval_runs], partition_key="2026-11-17",
                       resources={"duckdb": WarehouseResource(database=str(db))})


def test_nightly_schedule_targets_yesterday():
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc))
    (request,) = eval_nightly_schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-19"
    assert eval_job.partitions_def == assets.daily_partitions
    assert {a.key for a in defs.assets} == {dg.AssetKey(["evals", n]) for n in ("golden_cases", "eval_runs", "pass_at_k", "judge_scores")}


def test_a_three_day_range_is_one_run(tmp_path, server, monkeypatch):
    """What `dagster asset materialize --partition-range` does: one run over the range (single-run policy)."""
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    judge_resource = simulator_judge(server, monkeypatch, batch_mode=True, batch_poll_s=0.0)
    resources = {"duckdb": WarehouseResource(database=str(db)), "anthropic_judge": judge_resource}
    assert dg.materialize([assets.golden_cases], resources=resources).success
    result = dg.materialize(
        [assets.eval_runs, assets.judge_scores],
        resources=resources,
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
    )
    assert result.success
    assert query(db, "SELECT count(DISTINCT partition_date), count(*) FROM evals.eval_runs") == [(3, 7)]
    rows = query(db, "SELECT status, batch_id FROM evals.judge_scores WHERE case_id IS NOT NULL")
    assert len(rows) == 6 and {r for r in rows} == {("judged", "msgbatch_sim_0")}  # one batch for the whole range


def test_samples_report_their_spread(tmp_path, server, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    # 2026-11-18 has three (session, case) rows; each gets samples scored 70, 80, 90 on planClarity.
    server.script = [("ok", {**GOOD_JUDGEMENT, "planClarity": v}) for v in (70, 80, 90)] * 3
    run(db, simulator_judge(server, monkeypatch, samples=3), "2026-11-18")
    spread = query(db, "SELECT session_id, case_id, n_samples, plan_clarity_mean, plan_clarity_stddev, plan_clarity_min, "
                       "plan_clarity_max, safety_score_stddev FROM evals.judge_score_spread ORDER BY ALL")
    assert [row[2:] for row in spread] == [(3, 80.0, 10.0, 70, 90, 0.0)] * 3
    assert len(server.requests) == 9


def test_unreachable_api_is_not_judged_and_the_run_succeeds(tmp_path, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    with MessagesServer() as gone:
        dead_url = gone.base_url  # closed on exit: nothing listens there any more
    monkeypatch.setenv("DAENA_TEST_ANTHROPIC_KEY", "sim-key")
    judge_resource = AnthropicJudgeResource(
        api_key_env_var="DAENA_TEST_ANTHROPIC_KEY", base_url=dead_url, max_attempts=2, backoff_s=0.0, timeout_s=2.0
    )
    run(db, judge_resource, "2026-11-17")
    rows = query(db, "SELECT status, reason, attempts, source FROM evals.judge_scores")
    assert len(rows) == 2
    assert all(s == "not_judged" and "gave up after 2 attempts" in r and a == 2 and src == "simulator" for s, r, a, src in rows)


def test_an_invalid_golden_file_blocks_the_evaluation(tmp_path, monkeypatch):
    golden_dir = tmp_path / "golden"
    (golden_dir / "cases").mkdir(parents=True)
    (golden_dir / "cases" / "broken.json").write_text('{"id": "broken", "expectation": "SHOULD_SUCCEED"}')
    monkeypatch.setattr(config, "GOLDEN_DIR", golden_dir)
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    result = dg.materialize(
        [assets.golden_cases, assets.eval_runs, *CHECKS],
        partition_key="2026-11-17",
        resources={"duckdb": WarehouseResource(database=str(db))},
        selection=[assets.golden_cases.key, assets.eval_runs.key],
        raise_on_error=False,
    )
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "golden_cases_valid"]
    assert not check.passed and "broken.json" in check.description
    assert result.asset_materializations_for_node("evals__eval_runs") == []
    assert query(db, "SELECT file FROM evals.golden_case_errors") == [("broken.json",)]
