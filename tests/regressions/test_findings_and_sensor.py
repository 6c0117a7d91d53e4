import datetime as dt
import json

import dagster as dg
import duckdb

from daena_pipelines.lib.golden_checks import golden_asset_check
from daena_pipelines.regressions.findings import CheckEvaluation, read_watermarks, record_evaluations, skip_to
from daena_pipelines.defs.regressions.assets import findings as findings_asset
from daena_pipelines.defs.regressions.jobs import findings_job
from daena_pipelines.defs.regressions.sensors import regressions_sensor
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import WarehouseResource

T0 = dt.datetime(2025, 11, 21, 20, 0, tzinfo=dt.timezone.utc)


def failure(metric):
    return {"metric": metric, "golden": 2.0, "actual": 1.5, "change": "-0.5 (-25.0%)", "rule": {"kind": "exact"}}


def findings(con):
    return {
        row[0]: row[1:]
        for row in con.execute(
            "SELECT finding_key, first_seen, last_seen, resolved_at, occurrences FROM regressions.findings"
        ).fetchall()
    }


def test_findings_open_refresh_resolve_and_reopen(tmp_path):
    at = [T0 + dt.timedelta(hours=i) for i in range(4)]
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        ev = lambda i, passed, metrics: CheckEvaluation("nbmf/results", "nbmf_golden", passed, at[i], f"run{i}", [failure(m) for m in metrics])  # noqa: E731
        assert record_evaluations(con, [ev(0, False, ["a", "b"])]) == {"opened": 2, "updated": 0, "resolved": 0}
        assert record_evaluations(con, [ev(1, False, ["a"])]) == {"opened": 0, "updated": 1, "resolved": 1}
        assert record_evaluations(con, [ev(2, True, [])]) == {"opened": 0, "updated": 0, "resolved": 1}
        assert record_evaluations(con, [ev(3, False, ["b"])]) == {"opened": 1, "updated": 0, "resolved": 0}
        rows = findings(con)
        details = json.loads(con.execute("SELECT details FROM regressions.findings WHERE metric = 'b'").fetchone()[0])
    a, b = rows["nbmf/results/nbmf_golden:a"], rows["nbmf/results/nbmf_golden:b"]
    assert (a[0], a[1], a[2], a[3]) == (at[0], at[1], at[2], 2)
    assert (b[0], b[1], b[2], b[3]) == (at[0], at[3], None, 2)  # reopened
    assert details["golden"] == 2.0 and details["actual"] == 1.5


def test_sensor_requests_the_findings_asset_which_turns_golden_check_evaluations_into_findings(tmp_path, monkeypatch):
    golden = tmp_path / "golden"
    (golden / "evals").mkdir(parents=True)
    (golden / "evals" / "outcomes.golden.json").write_text(json.dumps({
        "name": "eval_outcomes", "table": "evals.eval_runs", "key_columns": ["case_id"], "value_column": "outcome",
        "latest_by": None, "rules": [{"match": {}, "rule": {"kind": "exact"}}],
        "entries": [{"key": {"case_id": "scorched"}, "expected": "fail", "rule": {"kind": "exact"}}],
    }))
    monkeypatch.setenv("DAENA_GOLDEN_DIR", str(golden))
    warehouse = WarehouseResource(database=str(tmp_path / "w.duckdb"))
    resources = {"duckdb": warehouse, "daena_settings": DaenaSettings()}

    class Outcome(dg.Config):
        outcome: str

    @dg.asset(key=["evals", "eval_runs"])
    def eval_runs(config: Outcome, duckdb: WarehouseResource):
        if config.outcome == "crash":
            raise RuntimeError("eval engine crashed")
        with duckdb.get_connection() as con:
            con.execute("CREATE SCHEMA IF NOT EXISTS evals")
            con.execute("CREATE OR REPLACE TABLE evals.eval_runs AS SELECT 'scorched' AS case_id, ? AS outcome", [config.outcome])

    check = golden_asset_check(asset=["evals", "eval_runs"], suite_file="evals/outcomes.golden.json", name="eval_golden", blocking=True)
    definitions = dg.Definitions(assets=[eval_runs, findings_asset], asset_checks=[check], jobs=[findings_job],
                                 resources=resources)
    instance = dg.DagsterInstance.ephemeral()

    def tick():
        return regressions_sensor.evaluate_tick(dg.build_sensor_context(
            instance=instance, definitions=definitions, resources={"duckdb": warehouse}))

    assert regressions_sensor.job_name == "findings_job"  # the sensor's target
    states, counts, previews, run_keys = [], [], [], set()
    for outcome in ("fail", "pass", "crash", "fail"):  # golden, regressed, crashed, recovered
        dg.materialize([eval_runs, check], instance=instance, resources=resources, raise_on_error=False,
                       run_config={"ops": {"evals__eval_runs": {"config": {"outcome": outcome}}}})
        (request,) = tick().run_requests  # new results: the findings asset is requested, nothing recorded yet
        assert request.run_key not in run_keys
        run_keys.add(request.run_key)
        assert tick().run_requests[0].run_key == request.run_key  # the same pending run, not a second one
        if outcome == "crash":  # while a findings run waits in the queue, it is the one to read what arrives
            waiting = instance.create_run_for_job(definitions.resolve_job_def("findings_job"))  # not started yet
            assert tick().skip_message.endswith(f"findings run {waiting.run_id} is queued and will read them")
            instance.delete_run(waiting.run_id)
        result = definitions.resolve_job_def("findings_job").execute_in_process(instance=instance, run_config={
            "ops": {"regressions__findings": {"config": {"checks": ["evals/eval_runs:eval_golden"]}}}})
        metadata = result.asset_materializations_for_node("regressions__findings")[0].metadata
        counts.append({k: metadata[k].value for k in ("evaluations_read", "opened", "resolved", "open_findings")})
        previews.append([(r.data["check_name"], r.data["golden"], r.data["actual"]) for r in metadata["preview"].value.records])
        with warehouse.get_connection() as con:
            states.append(sorted(con.execute(
                "SELECT finding_key, resolved_at IS NULL, details FROM regressions.findings").fetchall()))
    # the first run: the golden check and the planned materialisation both passed
    assert counts[0] == {"evaluations_read": 2, "opened": 0, "resolved": 0, "open_findings": 0}
    assert states[0] == []
    (key, is_open, details), = states[1]
    assert key == "evals/eval_runs/eval_golden:scorched" and is_open
    assert json.loads(details)["actual"] == "pass"
    assert [(k, o) for k, o, _ in states[2]] == [
        ("evals/eval_runs/eval_golden:scorched", True), ("evals/eval_runs/materialization:materialization", True)]
    assert [(k, o) for k, o, _ in states[3]] == [
        ("evals/eval_runs/eval_golden:scorched", False), ("evals/eval_runs/materialization:materialization", False)]
    assert counts[3]["resolved"] == 2 and counts[3]["open_findings"] == 0
    assert previews[1] == [("eval_golden", "fail", "pass")]  # the open findings, as a table
    assert sorted(previews[2]) == [("eval_golden", "fail", "pass"), ("materialization", "materialized", "not materialized")]
    assert previews[3] == []
    # up to date: no request, and no cursor, the read positions are in the warehouse
    idle = regressions_sensor.evaluate_tick(context := dg.build_sensor_context(
        instance=instance, definitions=definitions, resources={"duckdb": warehouse}))
    assert not idle.run_requests and idle.skip_message.startswith("regressions.findings is up to date")
    assert context.cursor is None
    with warehouse.get_connection() as con:
        streams = dict(con.execute("SELECT stream, position FROM regressions.findings_watermarks").fetchall())
    instance_id = instance.run_storage.get_run_storage_id()  # positions belong to this instance's event log
    assert set(streams) == {f"check:evals/eval_runs:eval_golden@{instance_id}", f"runs@{instance_id}"}
    # the idle tick read past the findings runs (they planned no watched asset) once, for good
    last_end = max(r.storage_id for t in (dg.DagsterEventType.RUN_SUCCESS, dg.DagsterEventType.RUN_FAILURE)
                   for r in instance.fetch_run_status_changes(t, limit=100).records)
    assert streams[f"runs@{instance_id}"] == last_end


def test_watermarks_only_move_forward(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        record_evaluations(con, [], {"runs@x": 10})
        skip_to(con, {"runs@x": 7, "check:a:b@x": 3})  # a slower writer's older position is ignored
        record_evaluations(con, [], {"check:a:b@x": 5})
        assert read_watermarks(con) == {"runs@x": 10, "check:a:b@x": 5}
