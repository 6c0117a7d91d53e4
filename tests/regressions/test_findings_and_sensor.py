import datetime as dt
import json

import dagster as dg
import duckdb

from daena_pipelines.lib.golden_checks import golden_asset_check
from daena_pipelines.regressions.findings import CheckEvaluation, record_evaluations
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


def test_sensor_turns_golden_check_evaluations_into_findings(tmp_path, monkeypatch):
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
    definitions = dg.Definitions(assets=[eval_runs], asset_checks=[check], resources=resources)
    instance = dg.DagsterInstance.ephemeral()
    cursor = None
    states, messages = [], []
    for outcome in ("fail", "pass", "crash", "fail"):  # golden, regressed, crashed, recovered
        dg.materialize([eval_runs, check], instance=instance, resources=resources, raise_on_error=False,
                       run_config={"ops": {"evals__eval_runs": {"config": {"outcome": outcome}}}})
        context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"duckdb": warehouse},
                                          definitions=definitions)
        messages.append(regressions_sensor(context).skip_message)
        cursor = context.cursor
        with warehouse.get_connection() as con:
            states.append(sorted(con.execute(
                "SELECT finding_key, resolved_at IS NULL, details FROM regressions.findings").fetchall()))
    assert messages[0] == "2 evaluations recorded: {'opened': 0, 'updated': 0, 'resolved': 0}"
    assert states[0] == []
    (key, is_open, details), = states[1]
    assert key == "evals/eval_runs/eval_golden:scorched" and is_open
    assert json.loads(details)["actual"] == "pass"
    assert [(k, o) for k, o, _ in states[2]] == [
        ("evals/eval_runs/eval_golden:scorched", True), ("evals/eval_runs/materialization:materialization", True)]
    assert [(k, o) for k, o, _ in states[3]] == [
        ("evals/eval_runs/eval_golden:scorched", False), ("evals/eval_runs/materialization:materialization", False)]
    context = dg.build_sensor_context(instance=instance, cursor=cursor, resources={"duckdb": warehouse},
                                      definitions=definitions)
    assert regressions_sensor(context).skip_message == "no new golden check evaluations or watched materialisations"
