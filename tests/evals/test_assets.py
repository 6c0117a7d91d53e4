"""The evals asset graph on a temp warehouse: three daily partitions, idempotency, the judge cache, no key."""
import json
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from daena_pipelines import ci
from daena_pipelines.definitions import defs
from daena_pipelines.defs.evals import assets, checks
from daena_pipelines.defs.evals.partitions import daily_partitions
from daena_pipelines.defs.evals.resources import AnthropicJudgeResource
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import WarehouseResource

from . import warehouse_fixture
from .messages_server import API_KEY, MessagesServer

DAYS = ("2026-11-17", "2026-11-18", "2026-11-19")
ALL_ASSETS = [assets.golden_cases, assets.eval_runs, assets.pass_at_k, assets.judge_scores]
CHECKS = [checks.golden_cases_valid, checks.eval_runs_complete, checks.judge_scores_valid]
# the tests' local server is a simulator: a day it judged warns (no real judge's verdict)
SIMULATED = {"judge_scores_valid"}


@pytest.fixture(autouse=True)
def fixture_cases(monkeypatch):
    """Golden cases frozen for these tests, so retuning the bundled cases does not move them."""
    monkeypatch.setenv("DAENA_GOLDEN_DIR", str(Path(__file__).parent / "golden"))


@pytest.fixture
def server():
    with MessagesServer() as s:
        yield s


def run(db, judge_resource, day, selection=ALL_ASSETS, warnings=frozenset()):
    """Materialise one day; every check passes but the named ones, which warn."""
    result = dg.materialize(
        [*selection, *CHECKS],
        partition_key=day,
        resources={"duckdb": WarehouseResource(database=str(db)), "daena_settings": DaenaSettings(), "anthropic_judge": judge_resource},
        selection=[a.key for a in selection],
    )
    assert result.success
    checks = result.get_asset_check_evaluations()
    failed = {c.check_name: c for c in checks if not c.passed}
    assert checks and set(failed) == set(warnings), [(c.check_name, c.description) for c in failed.values()]
    assert all(c.severity == dg.AssetCheckSeverity.WARN for c in failed.values())
    return result


def query(db, sql):
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def simulator_judge(server, monkeypatch, **kw):
    monkeypatch.setenv("DAENA_TEST_ANTHROPIC_KEY", API_KEY)
    return AnthropicJudgeResource(api_key_env_var="DAENA_TEST_ANTHROPIC_KEY", base_url=server.base_url, **kw)


def test_three_partitions_score_judge_and_rerun_idempotently(tmp_path, server, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    judge_resource = simulator_judge(server, monkeypatch)
    for day in DAYS:
        run(db, judge_resource, day, warnings=SIMULATED)

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

    judged = query(db, "SELECT session_id, status, source, plan_clarity, input_tokens, cost_usd FROM evals.judge_scores "
                       "ORDER BY ALL")
    assert len(judged) == 7
    assert {(s, st) for s, st, *_ in judged if st != "judged"} == {("xyz-1", "not_exercised")}
    assert all(src == "simulator" and pc is not None and tok > 0 and cost is None
               for _, st, src, pc, tok, cost in judged if st == "judged")
    calls = len(server.requests)
    assert calls == 6
    for sent in server.requests:  # the telemetry summary runs from CHARGE to DROP, not into the cooling tray
        user = sent["messages"][0]["content"][0]["text"]
        summary = user.split("<telemetry_summary>\n")[1].split("\n</telemetry_summary>")[0].splitlines()[1:]
        times = [float(line.split(",")[0]) for line in summary]
        assert times[0] == 0.0 and max(times) <= 660.0 and ",55.5," not in "\n".join(summary)

    p = {r[0]: r[1:] for r in query(
        db, "SELECT case_id, n_trials, n_success, n_needs_review, pass_at_1, pass_at_k, enough_trials FROM evals.pass_at_k"
    )}
    assert p["brazil-cerrado-light-medium"] == (2, 2, 0, 1.0, 1.0, True)
    assert p["ethiopia-guji-light-medium"] == (1, 0, 1, 0.0, 0.0, False)

    # Re-materialising a day replaces its rows and judges nothing again.
    before = query(db, "SELECT count(*) FROM evals.eval_runs")
    result = run(db, judge_resource, "2026-11-18", warnings=SIMULATED)
    assert query(db, "SELECT count(*) FROM evals.eval_runs") == before
    assert query(db, "SELECT count(*) FROM evals.judge_scores") == [(7,)]
    assert len(server.requests) == calls
    meta = result.asset_materializations_for_node("evals__judge_scores")[0].metadata
    simulator = meta["run_by_source"].value["simulator"]
    assert simulator["cache_hits"] == 3 and simulator["api_replies"] == 0 and simulator["cost_usd_estimate"] is None
    # the day's own counts and rows say the judgements are reused, not new (before: "judged": 3, no from_cache)
    assert meta["rows_by_status"].value == {"judged (from cache)": 3}
    assert {r.data["from_cache"] for r in meta["preview"].value.records} == {True}
    (valid,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "judge_scores_valid"]
    assert "3 of them reused from the cache" in valid.description
    # the tests' local server scored every judged row: a warning that says what, where and what to do (before: green)
    assert valid.description.startswith("all 6 judged rows (of 7) were scored by a simulator, none by the real judge: "
                                        f"endpoint {server.base_url}")
    assert "days 2026-11-17..2026-11-19" in valid.description and "What to do: judge with the official API" in valid.description
    assert valid.metadata["judged_by_source"].value == {"simulator": 6}


def test_judge_scores_valid_passes_when_the_real_judge_scored_rows(tmp_path, server, monkeypatch):
    """The warning is about no real judgement at all: once the official API has judged rows (here the
    simulator's rows relabelled as the official API writes them, since no test reaches it), the check
    passes and still names the simulated ones."""
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    run(db, simulator_judge(server, monkeypatch), "2026-11-18", warnings=SIMULATED)
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE evals.judge_scores SET source = 'anthropic', endpoint = 'https://api.anthropic.com' "
                    "WHERE session_id = 'ken-1'")
    check = checks.judge_scores_valid(duckdb=WarehouseResource(database=str(db)))
    assert check.passed, check.description
    assert check.metadata["judged_by_source"].value == {"anthropic": 2, "simulator": 1}
    assert "1 judged by a simulator" in check.description


def test_judge_scores_valid_warns_when_every_reply_was_invalid(tmp_path, server, monkeypatch):
    """A judge that answered nothing usable (here every reply truncated: max_tokens too small for thinking) is no
    judgement at all: before, the rows were well-formed (no score, a reason) and the check passed."""
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    result = run(db, simulator_judge(server, monkeypatch, max_tokens=150), "2026-11-18", warnings={"judge_scores_valid"})
    assert query(db, "SELECT status, count(*) FROM evals.judge_scores GROUP BY ALL") == [("invalid_output", 3)]
    (valid,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "judge_scores_valid"]
    assert valid.severity == dg.AssetCheckSeverity.WARN
    assert valid.description.startswith(
        "none of 3 rows judged, every reply unusable: invalid_output on 3 of 3 rows (brz-2 × brazil-cerrado-light-medium on "
        "2026-11-18, ken-1 × kenya-nyeri-light-medium on 2026-11-18, ken-1 × kenya-nyeri-unsafe-heater on 2026-11-18; "
        "reason: reply truncated at max_tokens")
    assert f"from claude-sonnet-5-5 at {server.base_url}" in valid.description
    assert valid.description.endswith("rematerialise evals/judge_scores for 2026-11-18...2026-11-18")
    assert "\n" not in valid.description
    # another day not judged for want of a key: the no-key warning as before, still naming the invalid rows
    monkeypatch.delenv("DAENA_TEST_MISSING_KEY", raising=False)
    no_key = AnthropicJudgeResource(api_key_env_var="DAENA_TEST_MISSING_KEY", base_url=server.base_url)
    result = run(db, no_key, "2026-11-17", warnings={"judge_scores_valid"})
    (valid,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "judge_scores_valid"]
    assert valid.description.startswith("2 of 5 rows not judged (no API key")
    assert "; invalid_output on 3 of 5 rows (brz-2 × brazil-cerrado-light-medium on 2026-11-18, " in valid.description


def test_judge_scores_valid_says_what_to_do_for_the_reason_rows_were_not_judged(tmp_path, server, monkeypatch):
    """Rows not judged for want of a key: set the key. Rows the API refused (here relabelled with the reason the
    judge writes for an error after the SDK's retries, since no test reaches the API): fix what the reason says —
    before, that warning too told the user to set ANTHROPIC_API_KEY, which was already set."""
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    monkeypatch.delenv("DAENA_TEST_MISSING_KEY", raising=False)
    no_key = AnthropicJudgeResource(api_key_env_var="DAENA_TEST_MISSING_KEY", base_url=server.base_url)
    result = run(db, no_key, "2026-11-18", warnings={"judge_scores_valid"})
    (valid,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "judge_scores_valid"]
    assert valid.description.endswith("What to do: set ANTHROPIC_API_KEY (docs/evals.md) and rematerialise evals/judge_scores")
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE evals.judge_scores SET reason = 'AuthenticationError 401 authentication_error: invalid x-api-key "
                    "(after the SDK''s retry policy, max_retries=2)' WHERE status = 'not_judged'")
    check = checks.judge_scores_valid(duckdb=WarehouseResource(database=str(db)))
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert "not judged (AuthenticationError 401" in check.description
    assert check.description.endswith("What to do: fix what the reason says (docs/evals.md: the API's errors and the judge's "
                                      "retries) and rematerialise evals/judge_scores")


def test_judge_scores_valid_warns_for_a_day_whose_every_reply_was_invalid_beside_a_judged_day(tmp_path, server, monkeypatch):
    """The table spans every day: a day's run that got nothing usable from the judge warns even when another day was
    judged by the real judge. Before, the judged day made the check pass ('all 5 rows valid'), the new day unnamed
    as a day with no judgement."""
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    run(db, simulator_judge(server, monkeypatch), "2026-11-18", warnings=SIMULATED)
    with duckdb.connect(str(db)) as con:  # relabelled as the official API writes its rows (no test reaches it)
        con.execute("UPDATE evals.judge_scores SET source = 'anthropic', endpoint = 'https://api.anthropic.com'")
    result = run(db, simulator_judge(server, monkeypatch, max_tokens=150), "2026-11-17", warnings={"judge_scores_valid"})
    assert query(db, "SELECT partition_date::VARCHAR, status, count(*) FROM evals.judge_scores GROUP BY ALL ORDER BY ALL") == [
        ("2026-11-17", "invalid_output", 2), ("2026-11-18", "judged", 3)]
    (valid,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "judge_scores_valid"]
    assert valid.severity == dg.AssetCheckSeverity.WARN
    assert valid.description.startswith("no row judged on 1 day(s) (2026-11-17), every reply there unusable: "
                                        "invalid_output on 2 of 5 rows (")
    assert "reason: reply truncated at max_tokens" in valid.description and "\n" not in valid.description
    assert valid.description.endswith("rematerialise evals/judge_scores for 2026-11-17...2026-11-17")


def test_judge_scores_valid_names_the_invalid_replies_beside_judged_ones(tmp_path, server, monkeypatch):
    """Some replies invalid, others judged: the simulator's warning, and once the real judge scored rows the pass,
    name the invalid rows and their reason (before: only a count in the statuses)."""
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    server.script = [("reply", "{not json")]  # the first request of the day
    result = run(db, simulator_judge(server, monkeypatch), "2026-11-18", warnings=SIMULATED)
    (invalid,) = query(db, "SELECT session_id, case_id FROM evals.judge_scores WHERE status = 'invalid_output'")
    named = f"invalid_output on 1 of 3 rows ({invalid[0]} × {invalid[1]} on 2026-11-18; reason: reply is not JSON"
    (warning,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "judge_scores_valid"]
    assert warning.description.startswith("all 2 judged rows (of 3) were scored by a simulator") and named in warning.description
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE evals.judge_scores SET source = 'anthropic', endpoint = 'https://api.anthropic.com' "
                    "WHERE status = 'judged'")
    check = checks.judge_scores_valid(duckdb=WarehouseResource(database=str(db)))
    assert check.passed
    assert check.description.startswith("all 3 rows valid: ") and named in check.description


def test_without_key_rows_are_not_judged_and_the_run_succeeds(tmp_path, server, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    with duckdb.connect(str(db)) as con:  # a session telemetry could not compute metrics for
        warehouse_fixture.add_session(con, "nom-1", datetime(2026, 11, 18, 20, tzinfo=timezone.utc), "Brazil Cerrado")
    monkeypatch.delenv("DAENA_TEST_MISSING_KEY", raising=False)
    no_key = AnthropicJudgeResource(api_key_env_var="DAENA_TEST_MISSING_KEY", base_url=server.base_url)
    result = run(db, no_key, "2026-11-18", warnings={"judge_scores_valid"})
    (warning,) = [c for c in result.get_asset_check_evaluations() if not c.passed]
    assert warning.description.startswith("3 of 4 rows not judged (no API key")
    rows = query(db, "SELECT case_id, status, reason, plan_clarity FROM evals.judge_scores ORDER BY ALL")
    assert len(rows) == 4 and server.requests == []
    # Without commands.proposals the reject case exercised no gate: not sent, whatever the key.
    assert [(c, s) for c, s, _, _ in rows if s != "not_judged"] == [("kenya-nyeri-unsafe-heater", "not_exercised")]
    assert all("DAENA_TEST_MISSING_KEY" in r and pc is None for _, s, r, pc in rows if s == "not_judged")
    # Without commands.proposals the command gate is not applicable, the reject case needs review.
    (no_metrics,) = query(db, "SELECT outcome, fc_timing_pass, reason FROM evals.eval_runs WHERE session_id = 'nom-1'")
    assert no_metrics[:2] == ("NEEDS_REVIEW", None) and "fc_timing unknown" in no_metrics[2]
    outcomes = dict(query(db, "SELECT case_id, outcome FROM evals.eval_runs WHERE session_id <> 'nom-1'"))
    assert outcomes["kenya-nyeri-unsafe-heater"] == "NEEDS_REVIEW"
    assert outcomes["brazil-cerrado-light-medium"] == "WARN"
    assert query(db, "SELECT DISTINCT commands_available FROM evals.eval_runs") == [(False,)]
    # nothing judged, so nothing to compare with the labels: the agreement check warns, it does not pass
    resources = {"duckdb": WarehouseResource(database=str(db)), "daena_settings": DaenaSettings(), "anthropic_judge": no_key}
    (agreement,) = dg.materialize([assets.judge_agreement, checks.judge_agreement_ok], resources=resources).get_asset_check_evaluations()
    assert not agreement.passed and agreement.severity == dg.AssetCheckSeverity.WARN
    assert agreement.description.startswith("compared 0") and "What to do: judge the labelled sessions" in agreement.description


def test_eval_runs_without_golden_cases_fails_clearly(tmp_path, server, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    # the warehouse migrations create evals.golden_cases on connection, so it is there but empty
    with pytest.raises(dg.Failure, match="evals.golden_cases is empty: .* materialise evals/golden_cases"):
        dg.materialize([assets.eval_runs], partition_key="2026-11-17",
                       resources={"duckdb": WarehouseResource(database=str(db)), "daena_settings": DaenaSettings()})


def test_nightly_schedule_targets_yesterday():
    # the job takes its daily partitions from its assets, so job and schedule resolve with the definitions
    eval_job, eval_nightly_schedule = defs.resolve_job_def("eval_job"), defs.resolve_schedule_def("eval_nightly_schedule")
    context = dg.build_schedule_context(scheduled_execution_time=datetime(2026, 11, 20, 2, 30, tzinfo=timezone.utc))
    (request,) = eval_nightly_schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-11-19"
    assert eval_job.partitions_def == daily_partitions
    # the freshness promise: a run between the schedule's tick and two hours later
    for asset in (assets.eval_runs, assets.judge_scores):
        policy = asset.specs_by_key[asset.key].freshness_policy
        assert (policy.deadline_cron, policy.lower_bound_delta.total_seconds()) == ("30 4 * * *", 7200)
    assert eval_nightly_schedule.cron_schedule == "30 2 * * *"
    assert {a.key for a in dg.load_assets_from_modules([assets])} == {dg.AssetKey(["evals", n]) for n in (
        "golden_cases", "eval_runs", "pass_at_k", "judge_scores", "judge_agreement")}


def test_a_three_day_range_is_one_run(tmp_path, server, monkeypatch):
    """What `dagster asset materialize --partition-range` does: one run over the range (single-run policy)."""
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    judge_resource = simulator_judge(server, monkeypatch, batch_mode=True, batch_poll_s=0.0)
    resources = {"duckdb": WarehouseResource(database=str(db)), "daena_settings": DaenaSettings(), "anthropic_judge": judge_resource}
    assert dg.materialize([assets.golden_cases], resources=resources).success
    result = dg.materialize(
        [assets.eval_runs, assets.judge_scores],
        resources=resources,
        tags={"dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]},
    )
    assert result.success
    assert query(db, "SELECT count(DISTINCT partition_date), count(*) FROM evals.eval_runs") == [(3, 7)]
    rows = query(db, "SELECT status, batch_id FROM evals.judge_scores WHERE case_id IS NOT NULL ORDER BY ALL")
    # One batch for the whole range; the reject case with no proposals table exercised nothing and is not sent.
    assert rows == [("judged", "msgbatch_sim_0")] * 5 + [("not_exercised", None)]
    assert query(db, "SELECT batch_id, status FROM evals.judge_batches") == [("msgbatch_sim_0", "ended")]
    # each day's materialisation carries that day's counts and rows, not the range's
    events = {e.partition: e.metadata for e in result.asset_materializations_for_node("evals__eval_runs")}
    assert sorted(events) == list(DAYS)
    for day, metadata in events.items():
        (rows, sessions), = query(db, f"SELECT count(*), count(DISTINCT session_id) FROM evals.eval_runs WHERE partition_date = '{day}'")
        assert (metadata["dagster/row_count"].value, metadata["sessions"].value) == (rows, sessions)
        assert {str(r.data["partition_date"]) for r in metadata["preview"].value.records} == {day}
        assert sum(metadata["rows_by_outcome"].value.values()) == rows
        # the fixture's roasts are simulated: the day's tally and preview say so (before: bare outcomes)
        assert all(k.endswith(" (simulator roast)") for k in metadata["rows_by_outcome"].value)
        assert {r.data["session_source"] for r in metadata["preview"].value.records} == {"simulator"}
    assert query(db, "SELECT count(*) FROM evals.eval_runs") == [(sum(m["dagster/row_count"].value for m in events.values()),)]
    # the columns explain themselves in the UI: the gates, the outcome values
    columns = {c.name: c.description for c in events[DAYS[0]]["dagster/column_schema"].value.columns}
    assert columns["outcome"].startswith("PASS | WARN | FAIL | NEEDS_REVIEW")
    assert columns["fc_crash_pass"].startswith("gate: no RoR crash around first crack")


def test_a_day_without_roasts_is_done_with_nothing(tmp_path, server, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    result = run(db, simulator_judge(server, monkeypatch), "2026-11-05")  # before any fixture roast
    for node in ("evals__eval_runs", "evals__judge_scores"):
        (event,) = result.asset_materializations_for_node(node)
        assert event.partition == "2026-11-05" and event.metadata["dagster/row_count"].value == 0
        assert event.metadata["note"].value.startswith("no roasts on this day")
    assert query(db, "SELECT count(*) FROM evals.eval_runs") == [(0,)] and server.requests == []


def test_samples_report_their_spread(tmp_path, server, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    # 2026-11-18 has three (session, case) rows; each gets samples scored 70, 80, 90 on planClarity.
    good = {"physicsPlausibility": 90, "constraintRespect": 70, "safetyScore": 95, "warnings": [], "violations": [],
            "reasoning": "ok"}
    server.script = [("reply", json.dumps({**good, "planClarity": v})) for v in (70, 90, 90)] * 3
    run(db, simulator_judge(server, monkeypatch, samples=3), "2026-11-18", warnings=SIMULATED)
    spread = query(db, "SELECT source, n_samples, plan_clarity_mean, plan_clarity_median, plan_clarity_mode, "
                       "round(plan_clarity_stddev, 3), plan_clarity_min, plan_clarity_max, safety_score_stddev "
                       "FROM evals.judge_score_spread ORDER BY ALL")
    assert spread == [("simulator", 3, 250 / 3, 90.0, 90, 11.547, 70, 90, 0.0)] * 3
    assert len(server.requests) == 9


def test_unreachable_api_is_not_judged_and_the_run_succeeds(tmp_path, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    with MessagesServer() as gone:
        dead_url = gone.base_url  # closed on exit: nothing listens there any more
    monkeypatch.setenv("DAENA_TEST_ANTHROPIC_KEY", API_KEY)
    judge_resource = AnthropicJudgeResource(
        api_key_env_var="DAENA_TEST_ANTHROPIC_KEY", base_url=dead_url, max_retries=0, timeout_s=2.0
    )
    run(db, judge_resource, "2026-11-17", warnings={"judge_scores_valid"})
    rows = query(db, "SELECT status, reason, source FROM evals.judge_scores")
    assert len(rows) == 2
    assert all(s == "not_judged" and "APIConnectionError" in r and src == "simulator" for s, r, src in rows)


def test_a_cached_simulator_judgement_is_not_served_to_a_run_against_another_endpoint(tmp_path, server, monkeypatch):
    """Issue #12: after a simulator run, a run against the official API (no base URL, no network here) and a
    run against another local server each get nothing from the simulator's cache."""
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    run(db, simulator_judge(server, monkeypatch), "2026-11-18", warnings=SIMULATED)
    assert query(db, "SELECT DISTINCT source, status FROM evals.judge_scores") == [("simulator", "judged")]
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    official = AnthropicJudgeResource(api_key_env_var="DAENA_TEST_NO_SUCH_KEY")
    run(db, official, "2026-11-18", selection=[assets.judge_scores], warnings={"judge_scores_valid"})
    rows = query(db, "SELECT source, endpoint, status, from_cache, plan_clarity FROM evals.judge_scores")
    assert rows == [("anthropic", "https://api.anthropic.com", "not_judged", False, None)] * 3
    with MessagesServer() as other:
        run(db, simulator_judge(other, monkeypatch), "2026-11-18", selection=[assets.judge_scores], warnings=SIMULATED)
        assert len(other.requests) == 3
    assert query(db, "SELECT DISTINCT from_cache FROM evals.judge_scores") == [(False,)]


def test_a_plain_http_endpoint_off_this_machine_is_refused_before_the_key_is_sent(tmp_path, server, monkeypatch, caplog):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    monkeypatch.setenv("DAENA_TEST_ANTHROPIC_KEY", "sk-ant-never-logged")
    monkeypatch.setenv("ANTHROPIC_BASE_URL", "http://judge.example.com:8080")
    resources = {"duckdb": WarehouseResource(database=str(db)), "daena_settings": DaenaSettings(),
                 "anthropic_judge": AnthropicJudgeResource(api_key_env_var="DAENA_TEST_ANTHROPIC_KEY")}
    assert dg.materialize([assets.golden_cases, assets.eval_runs], partition_key="2026-11-17", resources=resources,
                          selection=[assets.golden_cases.key, assets.eval_runs.key]).success
    result = dg.materialize([assets.judge_scores], partition_key="2026-11-17", resources=resources, raise_on_error=False)
    assert not result.success
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    message = failure.step_failure_data.error.message
    assert "refusing to send the API key to http://judge.example.com:8080" in message
    assert "sk-ant-never-logged" not in message + caplog.text
    assert query(db, "SELECT count(*) FROM evals.judge_scores") == [(0,)]


def test_an_invalid_golden_file_blocks_the_evaluation(tmp_path, monkeypatch):
    golden_dir = tmp_path / "golden"
    (golden_dir / "cases").mkdir(parents=True)
    (golden_dir / "cases" / "broken.json").write_text('{"id": "broken", "expectation": "SHOULD_SUCCEED"}')
    monkeypatch.setenv("DAENA_GOLDEN_DIR", str(golden_dir))
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    resources = {"duckdb": WarehouseResource(database=str(db)), "daena_settings": DaenaSettings()}
    result = dg.materialize(
        [assets.golden_cases, assets.eval_runs, *CHECKS],
        partition_key="2026-11-17",
        resources=resources,
        selection=[assets.golden_cases.key, assets.eval_runs.key],
        raise_on_error=False,
    )
    (check,) = [c for c in result.get_asset_check_evaluations() if c.check_name == "golden_cases_valid"]
    assert not check.passed and "broken.json" in check.description and "What to do: fix or add the case files" in check.description
    assert result.asset_materializations_for_node("evals__eval_runs") == []
    assert query(db, "SELECT file FROM evals.golden_case_errors") == [("broken.json",)]
    # CI records the failed blocking check, naming the file (before: recorded as passed, only stdout named it),
    # and the run after the repair resolves it
    now = datetime.now(timezone.utc)
    with duckdb.connect(str(db)) as con:
        assert ci.record_ci_findings(con, result.get_asset_check_evaluations(), [], [], now)["opened"] == 1
    (finding,) = query(db, "SELECT finding_key, details->>'note', resolved_at FROM regressions.findings")
    assert finding[0] == "evals/golden_cases/golden_cases_valid:golden_cases_valid:evaluation" and finding[2] is None
    assert finding[1].startswith("broken.json (case broken): ") and "What to do: fix or add the case files" in finding[1]
    (golden_dir / "cases" / "broken.json").unlink()
    shutil.copy(Path(__file__).parent / "golden" / "cases" / "brazil-cerrado-light-medium.json", golden_dir / "cases")
    repaired = dg.materialize([assets.golden_cases, checks.golden_cases_valid], resources=resources)
    with duckdb.connect(str(db)) as con:
        assert ci.record_ci_findings(con, repaired.get_asset_check_evaluations(), [], [], now)["resolved"] == 1


def test_judge_agreement_is_computed_per_source_and_warns_below_the_thresholds(tmp_path, server, monkeypatch):
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    judge_resource = simulator_judge(server, monkeypatch)
    resources = {"duckdb": WarehouseResource(database=str(db)), "daena_settings": DaenaSettings(), "anthropic_judge": judge_resource}
    assert dg.materialize([assets.golden_cases], resources=resources).success
    assert dg.materialize([assets.eval_runs, assets.judge_scores], resources=resources, tags={
        "dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[-1]}).success
    result = dg.materialize([assets.judge_agreement, checks.judge_agreement_ok], resources=resources)
    rows = query(db, "SELECT source, comparison, dimension, n_pairs, spearman, kappa, agreement_rate, status "
                     "FROM evals.judge_agreement ORDER BY comparison, dimension")
    assert [r[:4] for r in rows] == [("simulator", "judge_vs_gates", "constraintRespect", 5)] + [
        ("simulator", "judge_vs_human", d, 6) for d in sorted(judge_scores_dimensions())]
    # The fixture labels rate safety flat at 90/95 while the simulated judge varies it: kappa/rho fall short.
    low = {r[2] for r in rows if r[7] == "below_threshold"}
    (check,) = result.get_asset_check_evaluations()
    assert check.severity == dg.AssetCheckSeverity.WARN and check.passed == (not low)
    assert low and all(d in check.description for d in low)


def judge_scores_dimensions():
    from daena_pipelines.evals.judge import SCORE_FIELDS
    return SCORE_FIELDS


def test_an_overloaded_api_leaves_the_day_not_judged_and_a_rerun_judges_it(tmp_path, server, monkeypatch):
    """529 overloaded_error on every attempt (the SDK retries it up to max_retries): the partition succeeds with
    rows not_judged naming the 529, never a score; rematerialising the day once the API answers judges them."""
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=True)
    judge_resource = simulator_judge(server, monkeypatch, max_retries=1)
    server.script = [("status", 529, {"retry-after-ms": "1"})] * 6  # three rows on 2026-11-18, two attempts each
    run(db, judge_resource, "2026-11-18", warnings={"judge_scores_valid"})
    rows = query(db, "SELECT status, plan_clarity, reason FROM evals.judge_scores")
    assert len(rows) == 3 and len(server.requests) == 6
    assert all(s == "not_judged" and pc is None and "OverloadedError (HTTP 529)" in r for s, pc, r in rows)
    run(db, judge_resource, "2026-11-18", selection=[assets.judge_scores], warnings=SIMULATED)
    assert query(db, "SELECT status, count(*) FROM evals.judge_scores GROUP BY ALL") == [("judged", 3)]


def test_a_range_tagged_past_the_last_partition_evaluates_no_day_dagster_does_not_have(tmp_path, monkeypatch):
    """The partitions end at yesterday (today is not complete). A run whose range tags reach past it (a script's
    tags; the CLI and the UI refuse such a range) evaluates the days that exist and nothing of today: before,
    today's roasts were scored under a partition_date no partition shows."""
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    today = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)
    with duckdb.connect(str(db)) as con:
        warehouse_fixture.add_session(con, "today-1", today, "Brazil Cerrado")
    resources = {"duckdb": WarehouseResource(database=str(db)), "daena_settings": DaenaSettings()}
    assert dg.materialize([assets.golden_cases], resources=resources).success
    yesterday = daily_partitions.get_last_partition_key()
    assert yesterday == (today.date() - timedelta(days=1)).isoformat()
    result = dg.materialize([assets.eval_runs], resources=resources, tags={
        "dagster/asset_partition_range_start": yesterday,
        "dagster/asset_partition_range_end": (today.date() + timedelta(days=3)).isoformat()})
    assert [e.partition for e in result.asset_materializations_for_node("evals__eval_runs")] == [yesterday]
    assert query(db, "SELECT partition_date, session_id FROM evals.eval_runs") == []


def test_rows_scored_by_an_earlier_version_of_a_case_are_flagged_until_their_days_are_rescored(tmp_path, monkeypatch):
    """A golden case file edited after some days were evaluated: the nightly run rescores yesterday only, so the
    older days keep verdicts of the old case (and pass@k pooled them). eval_runs_complete warns, naming the case
    and the days to backfill (before: it passed); rescoring those days clears it."""
    golden_dir = tmp_path / "golden"
    shutil.copytree(Path(__file__).parent / "golden", golden_dir)
    monkeypatch.setenv("DAENA_GOLDEN_DIR", str(golden_dir))
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    resources = {"duckdb": WarehouseResource(database=str(db)), "daena_settings": DaenaSettings()}
    assert dg.materialize([assets.golden_cases], resources=resources).success
    assert dg.materialize([assets.eval_runs], resources=resources, tags={
        "dagster/asset_partition_range_start": DAYS[0], "dagster/asset_partition_range_end": DAYS[1]}).success
    case_file = golden_dir / "cases" / "brazil-cerrado-light-medium.json"
    case = json.loads(case_file.read_text())
    case["tolerances"]["drop_bt_c"] = 5.0  # a reviewed change of the case: brz-2's 2.7 °C off is no longer near it
    case_file.write_text(json.dumps(case))

    def evaluate(day):
        result = dg.materialize([assets.golden_cases, assets.eval_runs, checks.eval_runs_complete], partition_key=day,
                                resources=resources, selection=[assets.golden_cases.key, assets.eval_runs.key])
        (check,) = result.get_asset_check_evaluations()
        return check

    nightly = evaluate(DAYS[1])
    assert not nightly.passed and nightly.severity == dg.AssetCheckSeverity.WARN
    assert nightly.description.startswith("1 rows were not scored against their golden case as it is now: "
                                          "brazil-cerrado-light-medium (file changed since) on 2026-11-17..2026-11-17, 1 rows")
    assert "What to do: rematerialise evals/eval_runs over 2026-11-17...2026-11-17" in nightly.description
    assert evaluate(DAYS[0]).passed


def test_rows_from_before_case_versions_were_recorded_are_flagged_as_such_not_as_a_changed_file(tmp_path):
    """A warehouse evaluated before evals migration 6 has case_sha256 NULL on every row: which version of the case
    scored them is unknown. eval_runs_complete warns about them (as migration 6 says) but must not claim the case
    file changed since, which nothing shows (before: '(file changed since)')."""
    db = tmp_path / "w.duckdb"
    warehouse_fixture.build(db, with_proposals=False)
    resources = {"duckdb": WarehouseResource(database=str(db)), "daena_settings": DaenaSettings()}
    assert dg.materialize([assets.golden_cases, assets.eval_runs], partition_key=DAYS[0], resources=resources,
                          selection=[assets.golden_cases.key, assets.eval_runs.key]).success
    with duckdb.connect(str(db)) as con:
        con.execute("UPDATE evals.eval_runs SET case_sha256 = NULL")  # as migration 6 leaves an older row
    result = checks.eval_runs_complete(duckdb=WarehouseResource(database=str(db)))
    assert not result.passed and result.severity == dg.AssetCheckSeverity.WARN
    assert "(scored before case versions were recorded) on 2026-11-17..2026-11-17" in result.description
    assert "file changed since" not in result.description
