"""The timing gate's decision rule and its history, on constructed samples (its power on real
timings is measured by scripts/gate_power.py, not here)."""
import datetime as dt
import json
import os

import duckdb
import numpy as np
import pytest

from daena_pipelines.db import connect
from daena_pipelines.regressions import history
from daena_pipelines.regressions.gate import NO_HISTORY, OK, REGRESSION, GateRule, decide, step_fit

RNG = np.random.default_rng(7)


@pytest.fixture(autouse=True)
def same_draws_whatever_ran_before():
    """Each test draws from its own fresh seed: under pytest-xdist the tests before it differ."""
    global RNG
    RNG = np.random.default_rng(7)


def run(level: float, noise: float = 0.03, n: int = 7) -> np.ndarray:
    return level * (1 + noise * RNG.standard_normal(n))


def test_too_little_history_passes_saying_so():
    verdict = decide(run(3.0), [run(1.0), run(1.0)])
    assert verdict.verdict == NO_HISTORY and "2 accepted runs" in verdict.note


def test_window_flags_a_slowdown_and_not_noise_or_a_recovery():
    past = [run(1.0) for _ in range(10)]
    assert decide(run(1.3), past).verdict == REGRESSION
    assert decide(run(1.05), past).verdict == OK  # below the 10 % effect floor
    assert decide(run(0.8), past).verdict == OK  # faster is never a regression (one-sided)


def test_a_flagged_run_leaves_the_baseline_so_the_recovery_run_passes(tmp_path, monkeypatch):
    monkeypatch.setenv("DAENA_BENCH_HISTORY_DIR", str(tmp_path / "artifact"))
    with connect(tmp_path / "w.duckdb") as con:
        at = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
        levels = [1.0] * 5 + [1.5, 1.0]
        for i, level in enumerate(levels):
            history.record_samples(con, f"r{i:02d}", "s", [("k", "cpu", rep, v) for rep, v in enumerate(run(level))], at)
            run_id, (outcome,) = history.gate_latest(con, "s")
            assert run_id == f"r{i:02d}" and outcome.metric == "k/cpu"
            assert outcome.passed is (level == 1.0)
        assert (tmp_path / "artifact" / "bench_verdicts.parquet").exists()
        verdicts = history.verdicts(con, "s")
        assert verdicts["r05", "k", "cpu"] == REGRESSION
        assert verdicts["r06", "k", "cpu"] == OK  # recovery: compared with r00-r04, not with the slow r05
        assert history.accept(con, "r05", "s") == 1
        assert history.verdicts(con, "s")["r05", "k", "cpu"] == "accepted"


def test_runs_the_gate_never_judged_stay_out_of_the_baseline(tmp_path, monkeypatch):
    """A run whose gate crashed has no verdict: it may have measured another codec (daena ci's
    broken-run test: no dictionaries, telemetry encode ~10 % faster), so the next run is judged
    against the judged runs only, not flagged against the broken one."""
    monkeypatch.setenv("DAENA_BENCH_HISTORY_DIR", str(tmp_path / "artifact"))
    with connect(tmp_path / "w.duckdb") as con:
        at = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
        for i, (level, judged) in enumerate([(1.0, True), (0.8, False), (0.8, False), (1.0, True)]):
            history.record_samples(con, f"r{i:02d}", "s", [("k", "cpu", rep, v) for rep, v in enumerate(run(level, 0.01))], at)
            if judged:
                _, (outcome,) = history.gate_latest(con, "s")
        # with the unjudged runs as baseline it would be x1.25 over three runs: a regression
        assert outcome.passed and history.verdicts(con, "s")["r03", "k", "cpu"] == NO_HISTORY
        assert "1 accepted runs" in outcome.note


def test_an_accepted_slowdown_starts_the_baseline_anew(tmp_path):
    """A kept step (a new reference, a slower codec someone chose): unaccepted, every later run
    at the new level is flagged; accepted, the runs after it are judged against it alone, and a
    slowdown on top of the new level is flagged again once three runs hold it."""
    at = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    folder = tmp_path / "artifact"
    with connect(tmp_path / "w.duckdb") as con:
        def judged(run_id: str, level: float) -> bool:
            history.record_samples(con, run_id, "s", [("k", "cpu", rep, v) for rep, v in enumerate(run(level, 0.01))], at)
            _, (outcome,) = history.gate_latest(con, "s", folder=folder)
            return outcome.passed

        assert all(judged(f"r{i:02d}", 1.0) for i in range(8))
        assert not judged("r08", 1.8) and not judged("r09", 1.8)  # not accepted: still flagged
        assert history.accept(con, "r09", "s") == 1
        assert all(judged(f"r{i:02d}", 1.8) for i in range(10, 14))  # r10, r11: no history yet
        assert history.verdicts(con, "s")["r13", "k", "cpu"] == OK
        assert not judged("r14", 1.8 * 1.3)
        # judging the accepted run again (the check re-executed before a new run) keeps the acceptance
        assert history.accept(con, "r14", "s") == 1
        _, (outcome,) = history.gate_latest(con, "s", folder=folder)
        assert outcome.passed and history.verdicts(con, "s")["r14", "k", "cpu"] == "accepted"


def test_threshold_spread_comes_from_the_longer_history_not_the_window():
    """Runs whose level moves by ~8 % from run to run, then 10 quiet ones: the U test's window
    holds only the quiet ones, the threshold still knows the key's scatter (30 runs)."""
    levels = 1 + 0.08 * RNG.standard_normal(20)
    past = [run(level, 0.01) for level in levels] + [run(1.0, 0.01) for _ in range(10)]
    verdict = decide(run(1.12, 0.01), past)
    assert verdict.verdict == OK and verdict.threshold > verdict.growth > 1.10  # above the floor, inside the scatter
    assert decide(run(1.12, 0.01), past[-10:]).verdict == REGRESSION  # the window alone: floor 1.10


def test_step_detection_catches_a_creep_the_window_absorbed():
    rule = GateRule(window=3)
    past = [run(1.0, 0.01) for _ in range(12)] + [run(1.06, 0.01), run(1.12, 0.01), run(1.17, 0.01)]
    verdict = decide(run(1.2, 0.01), past, rule)
    assert verdict.growth < rule.min_ratio  # the 3-run window moved with the creep...
    assert (verdict.verdict, verdict.test) == (REGRESSION, "step")  # ...the step over the history did not
    k, gain = step_fit(np.array([1.0] * 6 + [1.5] * 3))
    assert k == 6 and gain > 1


def test_history_artifact_carries_runs_into_a_fresh_warehouse(tmp_path):
    at = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    folder = tmp_path / "artifact"
    with connect(tmp_path / "a.duckdb") as con:
        for i in range(3):
            history.record_samples(con, f"r{i}", "s", [("k", "wall", 0, 1.0 + i)], at)
        history.record_verdicts(con, "r2", "s", {("k", "wall"): decide([3.0], [[1.0], [2.0]]).as_dict()}, at)
        history.export_artifact(con, folder)
    with connect(tmp_path / "fresh.duckdb") as con:
        assert history.import_artifact(con, folder) == 3
        assert history.import_artifact(con, folder) == 0  # idempotent
        assert history.runs_of(con, "s") == ["r0", "r1", "r2"]
        assert set(history.verdicts(con, "s")) == {("r2", "k", "wall")}


def test_samples_imported_from_an_artifact_say_so_and_where_they_were_measured(tmp_path):
    """The gate's baseline may hold runs measured elsewhere (CI's runner, another clone) and carried in by the
    artifact: each sample names the machine that measured it and, once imported, the artifact it came from;
    before, an imported run's samples were indistinguishable from this warehouse's own."""
    at = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    folder = tmp_path / "artifact"
    with connect(tmp_path / "ci.duckdb") as con:
        history.record_samples(con, "r0", "s", [("k", "cpu", 0, 1.0)], at)
        history.export_artifact(con, folder)
    with duckdb.connect() as con:  # as another machine measured it
        path = str(folder / "bench_history.parquet")
        con.execute(f"COPY (SELECT * REPLACE ('{{\"host\": \"ci-runner\"}}' AS machine) FROM read_parquet('{path}')) "
                    f"TO '{path}.other' (FORMAT parquet)")
    (folder / "bench_history.parquet.other").replace(folder / "bench_history.parquet")
    with connect(tmp_path / "local.duckdb") as con:
        history.record_samples(con, "r1", "s", [("k", "cpu", 0, 1.1)], at)
        assert history.import_artifact(con, folder) == 1
        rows = con.execute(f"SELECT run_id, machine, imported_from FROM {history.HISTORY} ORDER BY run_id").fetchall()
    assert rows == [("r0", '{"host": "ci-runner"}', str(folder)), ("r1", history.this_machine(), None)]
    assert json.loads(history.this_machine())["cpu_count"] == os.cpu_count()


def test_history_artifact_is_read_by_column_name(tmp_path):
    """An artifact written by a warehouse whose columns sit in another order (a column a later
    migration appended, an older artifact) still lands each value in its own column."""
    at = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    folder = tmp_path / "artifact"
    with connect(tmp_path / "a.duckdb") as con:
        history.record_samples(con, "r0", "s", [("k", "wall", 0, 1.25)], at)
        history.record_verdicts(con, "r0", "s", {("k", "wall"): decide([3.0], [[1.0], [2.0]]).as_dict()}, at)
        history.export_artifact(con, folder)
        tables = ("regressions.bench_history", "regressions.bench_verdicts")
        written = [con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in tables]
    for name in ("bench_history", "bench_verdicts"):  # the same rows, columns in reverse order
        path = str(folder / f"{name}.parquet")
        with duckdb.connect() as con:
            columns = [row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{path}')").fetchall()]
            con.execute(f"COPY (SELECT {', '.join(reversed(columns))} FROM read_parquet('{path}')) TO '{path}.rev' (FORMAT parquet)")
        (folder / f"{name}.parquet.rev").replace(folder / f"{name}.parquet")
    with connect(tmp_path / "fresh.duckdb") as con:
        assert history.import_artifact(con, folder) == 1
        # the same rows, each sample now saying which artifact it came from
        assert [con.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in tables] == [
            [(*row[:-1], str(folder)) for row in written[0]], written[1]]
        assert history.samples(con, "s") == {("k", "wall"): {"r0": [1.25]}}


def test_accept_command_writes_the_acceptance_into_the_carried_artifact(tmp_path, monkeypatch, capsys):
    from daena_pipelines.regressions import accept

    folder = tmp_path / "artifact"
    monkeypatch.setenv("DAENA_BENCH_HISTORY_DIR", str(folder))
    warehouse = tmp_path / "w.duckdb"
    at = dt.datetime(2026, 12, 1, tzinfo=dt.timezone.utc)
    with connect(warehouse) as con:
        for i, level in enumerate([1.0, 1.0, 1.0, 0.3]):  # a step down (a new reference) is never flagged
            history.record_samples(con, f"r{i}", "nbmf", [("k", "cpu", rep, v) for rep, v in enumerate(run(level))], at)
            history.gate_latest(con, "nbmf", folder=folder)
    assert accept.main(["r3", "--warehouse", str(warehouse)]) == 0 and "accepted 0" in capsys.readouterr().out
    assert accept.main(["r3", "--every-key", "--warehouse", str(warehouse)]) == 0
    assert accept.main(["r9", "--warehouse", str(warehouse)]) == 1
    with connect(tmp_path / "fresh.duckdb") as con:  # a fresh CI warehouse carrying the artifact
        history.import_artifact(con, folder)
        assert history.verdicts(con, "nbmf")["r3", "k", "cpu"] == "accepted"


def test_the_gate_checks_count_unjudged_keys_apart_and_say_what_to_do(tmp_path, monkeypatch):
    """What the UI shows: a gate over too short a history says which keys it did not judge (not
    'all values hold'), and a flagged key says what to do about it."""
    import dagster as dg

    from daena_pipelines.defs.nbmf.assets import nbmf_results
    from daena_pipelines.defs.nbmf.checks import nbmf_timing_gates
    from daena_pipelines.lib.settings import DaenaSettings
    from daena_pipelines.lib.warehouse import WarehouseResource
    from daena_pipelines.nbmf.runs import HISTORY_SUITE

    monkeypatch.setenv("DAENA_BENCH_HISTORY_DIR", str(tmp_path / "artifact"))
    db = str(tmp_path / "w.duckdb")
    resources = {"duckdb": WarehouseResource(database=db), "daena_settings": DaenaSettings()}
    seen = []
    for i, level in enumerate([1.0] * 5 + [1.5]):
        with connect(db) as con:
            history.record_samples(con, f"r{i:02d}", HISTORY_SUITE, [("k", "cpu", rep, v) for rep, v in enumerate(run(level))],
                                   dt.datetime(2026, 12, 1, i, tzinfo=dt.timezone.utc))
        result = dg.materialize([nbmf_results, nbmf_timing_gates], resources=resources,
                                selection=dg.AssetSelection.checks(nbmf_timing_gates), raise_on_error=False)
        (cpu,) = [e for e in result.get_asset_check_evaluations() if e.check_name == "nbmf_timing_gate"]
        seen.append((cpu.passed, cpu.description))
    assert seen[0] == (True, "1 of 1 values not judged (no history yet), the other 0 hold")
    assert seen[4] == (True, "all 1 values hold")
    assert not seen[5][0] and "What to do: a slowdown: fix it; an intended step: accept the run with" in seen[5][1]
