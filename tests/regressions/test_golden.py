"""The generic golden mechanism on constructed tables: eval outcomes and benchmark-like rows."""
import json

import duckdb
import pytest

from daena_pipelines.regressions.golden import GoldenSuite, evaluate, proposed_entries
from daena_pipelines.regressions.promote import promote

EVAL_SUITE = {
    "name": "eval_outcomes",
    "description": "outcome per bundled case, latest partition",
    "table": "evals.eval_runs",
    "key_columns": ["case_id"],
    "value_column": "outcome",
    "latest_by": "partition_date",
    "rules": [{"match": {}, "rule": {"kind": "exact"}}],
    "entries": [],
}


@pytest.fixture
def eval_warehouse(tmp_path):
    path = tmp_path / "w.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA evals")
        con.execute(
            "CREATE TABLE evals.eval_runs (session_id VARCHAR, case_id VARCHAR, outcome VARCHAR, partition_date DATE)"
        )
        con.execute(
            "INSERT INTO evals.eval_runs VALUES ('s1', 'underdeveloped', 'pass', DATE '2025-11-20'),"
            " ('s2', 'scorched', 'fail', DATE '2025-11-20'), ('s3', 'baked', 'pass', DATE '2025-11-20')"
        )
    return path


def write_suite(tmp_path, suite: dict):
    path = tmp_path / "evals.golden.json"
    path.write_text(json.dumps(suite))
    return path


def test_eval_outcomes_pass_then_a_changed_outcome_fails_with_everything_named(tmp_path, eval_warehouse):
    path = write_suite(tmp_path, EVAL_SUITE)
    diffs = promote(eval_warehouse, [str(path)], write=False)
    assert diffs[path] == ["+ baked: 'pass' (exact)", "+ scorched: 'fail' (exact)", "+ underdeveloped: 'pass' (exact)"]
    assert json.loads(path.read_text())["entries"] == []  # dry run writes nothing
    promote(eval_warehouse, [str(path)], write=True)
    suite = GoldenSuite.load(path)
    assert len(suite.entries) == 3
    with duckdb.connect(str(eval_warehouse)) as con:
        assert all(o.passed for o in evaluate(con, suite))
        # a newer partition where one case regressed; the old partition is not checked any more
        con.execute(
            "INSERT INTO evals.eval_runs VALUES ('s1', 'underdeveloped', 'fail', DATE '2025-11-21'),"
            " ('s2', 'scorched', 'fail', DATE '2025-11-21'), ('s3', 'baked', 'pass', DATE '2025-11-21')"
        )
        failed = [o for o in evaluate(con, suite) if not o.passed]
    assert [o.describe() for o in failed] == [
        "FAIL underdeveloped: golden 'pass', actual 'fail', change 'pass' -> 'fail', rule exact"
    ]
    assert promote(eval_warehouse, [str(path)], write=False)[path] == [
        "~ underdeveloped: 'pass' -> 'fail' (exact)"
    ]


def test_missing_rows_missing_tables_and_empty_golden_fail(tmp_path, eval_warehouse):
    suite = GoldenSuite(**{**EVAL_SUITE, "entries": [{"key": {"case_id": "gone"}, "expected": "pass", "rule": {"kind": "exact"}}]})
    with duckdb.connect(str(eval_warehouse)) as con:
        outcome, *unguarded = evaluate(con, suite)
        assert not outcome.passed and outcome.change == "missing"
        # and the run's keys the golden file does not hold fail too, each named
        assert [(o.metric, o.change, o.passed) for o in unguarded] == [
            ("baked", "no golden value", False), ("scorched", "no golden value", False), ("underdeveloped", "no golden value", False)
        ]
        assert not evaluate(con, GoldenSuite(**EVAL_SUITE))[0].passed  # no entries: promote first
        assert not evaluate(con, GoldenSuite(**{**EVAL_SUITE, "table": "evals.nope"}))[0].passed


@pytest.fixture
def results_warehouse(tmp_path):
    path = tmp_path / "r.duckdb"
    with duckdb.connect(str(path)) as con:
        con.execute("CREATE SCHEMA nbmf")
        con.execute("CREATE TABLE nbmf.results (run_id VARCHAR, codec VARCHAR, metric VARCHAR, value DOUBLE)")
        con.execute("CREATE TABLE nbmf.latency_samples (run_id VARCHAR, codec VARCHAR, ns BIGINT)")
    return path


def add_run(con, run_id, nbmf_ratio, zstd_ratio, max_error, nbmf_ns):
    con.execute(
        "INSERT INTO nbmf.results VALUES (?, 'nbmf', 'ratio_total', ?), (?, 'zstd_19', 'ratio_total', ?),"
        " (?, 'nbmf', 'max_abs_error_c', ?)",
        [run_id, nbmf_ratio, run_id, zstd_ratio, run_id, max_error],
    )
    con.executemany("INSERT INTO nbmf.latency_samples VALUES (?, 'nbmf', ?)", [(run_id, int(ns)) for ns in nbmf_ns])


RESULTS_SUITE = {
    "name": "bench",
    "table": "nbmf.results",
    "key_columns": ["codec", "metric"],
    "value_column": "value",
    "latest_by": "run_id",
    "rules": [
        {"match": {"codec": "nbmf", "metric": "ratio_total"},
         "rule": {"kind": "ratio_to_baseline", "baseline": {"codec": "zstd_19"}, "direction": "higher_is_better", "tolerance": 0.02}},
        {"match": {"metric": "max_abs_error_c"}, "expected": 0.05, "rule": {"kind": "at_most"}},
    ],
    "entries": [],
}


def test_ratio_to_baseline_and_declared_bounds(results_warehouse):
    suite = GoldenSuite(**RESULTS_SUITE)
    with duckdb.connect(str(results_warehouse)) as con:
        add_run(con, "r1", 3.0, 1.5, 0.025, [100] * 10)
        suite.entries = proposed_entries(con, suite)
        assert [(e["key"], e["expected"]) for e in suite.entries] == [
            ({"codec": "nbmf", "metric": "max_abs_error_c"}, 0.05),
            ({"codec": "nbmf", "metric": "ratio_total"}, 2.0),
        ]
        # a faster machine / other corpus scaling both codecs alike still passes
        add_run(con, "r2", 6.0, 3.0, 0.03, [100] * 10)
        assert all(o.passed for o in evaluate(con, suite))
        add_run(con, "r3", 2.9, 1.5, 0.06, [100] * 10)  # 1.93x: more than 2 % worse; error over bound
        failed = {o.metric: o for o in evaluate(con, suite) if not o.passed}
    assert set(failed) == {"nbmf/ratio_total", "nbmf/max_abs_error_c"}
    assert failed["nbmf/ratio_total"].change == "-0.0666667 (-3.3%)"
    assert "ratio to {'codec': 'zstd_19'} in the same run" in failed["nbmf/ratio_total"].describe()


def test_mann_whitney_between_runs(results_warehouse):
    suite = GoldenSuite(
        name="latency", table="nbmf.latency_samples", key_columns=["codec"], value_column="ns", latest_by="run_id",
        rules=[], entries=[{"key": {"codec": "nbmf"}, "expected": "not slower",
                            "rule": {"kind": "mann_whitney_u", "alpha": 0.001, "min_ratio": 1.25}}],
    )
    base = [100 + (i * 37) % 23 for i in range(200)]
    with duckdb.connect(str(results_warehouse)) as con:
        add_run(con, "r1", 3, 1.5, 0.02, base)
        (first,) = evaluate(con, suite)
        assert first.passed and first.note == "no previous run to compare with"
        add_run(con, "r2", 3, 1.5, 0.02, [v * 1.1 for v in base])  # significant but small: passes
        assert evaluate(con, suite)[0].passed
        add_run(con, "r3", 3, 1.5, 0.02, [v * 1.6 for v in base])
        (slow,) = evaluate(con, suite)
    assert not slow.passed
    assert slow.actual["median_ratio"] == pytest.approx(1.6 / 1.1, rel=0.02)
    assert "run r3 vs r2" in slow.note


@pytest.mark.parametrize("damage", ["truncated", "no_entries_field", "entry_without_key"])
def test_an_unreadable_golden_file_is_one_named_failure(tmp_path, eval_warehouse, damage):
    from daena_pipelines.regressions.golden import evaluate_file

    path = write_suite(tmp_path, EVAL_SUITE)
    promote(eval_warehouse, [str(path)], write=True)
    text = path.read_text()
    suite = json.loads(text)
    if damage == "truncated":
        path.write_text(text[: len(text) // 2])
    elif damage == "no_entries_field":
        path.write_text(json.dumps({k: v for k, v in suite.items() if k != "table"}))
    else:
        path.write_text(json.dumps({**suite, "entries": [{"expected": "pass", "rule": {"kind": "exact"}}]}))
    with duckdb.connect(str(eval_warehouse)) as con:
        (outcome,), run = evaluate_file(con, path)
    assert not outcome.passed and outcome.change == "unreadable"
    assert outcome.metric == "golden_file:evals.golden.json" and str(path) in outcome.note


def test_the_eval_golden_values_are_of_simulated_roasts_and_their_file_says_so(tmp_path):
    """The evals golden outcomes are the bundled sample sessions': recordings of the virtual roaster. Each golden
    session is one the bundled data ingests as source 'simulator', and the file's description says they are
    simulated (before: an empty description, nothing told a reader these were not real roasts)."""
    from daena_pipelines.config import ASSETS_DIR, Settings
    from daena_pipelines.db import connect
    from daena_pipelines.telemetry import ingest

    suite = GoldenSuite.load(Settings.from_env().golden_dir / "evals" / "outcomes.golden.json")
    with connect(tmp_path / "w.duckdb") as con:
        ingest.ingest(con, sorted((ASSETS_DIR / "landing").glob("*.sidecar.jsonl")), tmp_path / "quarantine", workers=1)
        source = dict(con.execute("SELECT session_id, source FROM telemetry.sessions").fetchall())
    assert {source.get(e["key"]["session_id"]) for e in suite.entries} == {"simulator"}
    assert "simulator" in suite.description and "not real roasts" in suite.description
