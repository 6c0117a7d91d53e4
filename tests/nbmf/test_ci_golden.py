"""The CI command goes red when the codec gets worse, and stays green when it does not."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from daena_pipelines.config import ASSETS_DIR, PROJECT_ROOT
from daena_pipelines.regressions.promote import promote

# `daena ci` with one check that crashes: the rule is replaced before the definitions are built
CRASHING_CI = """
import sys
from daena_pipelines.telemetry import quality
def crash(con):
    raise RuntimeError("injected crash in event_order")
quality.event_order_violations = crash
from daena_pipelines import ci
sys.exit(ci.main(sys.argv[1:]))
"""


def prepare_warehouse(landing: Path, alogs: list[Path], bundled: bool = True) -> None:
    """Give CI its corpus the way a clean clone would: files in the landing folder, which CI's
    telemetry ingest loads; ``bundled``: with the bundled sessions, whose eval outcomes are golden."""
    landing.mkdir()
    for f in alogs + (sorted((ASSETS_DIR / "landing").iterdir()) if bundled else []):
        shutil.copy(f, landing / f.name)


def ci_env(tmp_path: Path) -> dict:
    golden = tmp_path / "golden"
    shutil.copytree(PROJECT_ROOT / "golden", golden)
    return {
        "DAENA_WAREHOUSE": str(tmp_path / "w.duckdb"),
        "DAENA_GOLDEN_DIR": str(golden),
        "DAENA_RESULTS_DIR": str(tmp_path / "results"),
        "DAENA_LANDING_DIR": str(tmp_path / "landing"),
    }


def open_findings(warehouse: str) -> set[tuple[str, str]]:
    with duckdb.connect(warehouse, read_only=True) as con:
        return set(con.execute("SELECT check_name, metric FROM regressions.findings WHERE resolved_at IS NULL").fetchall())


def run_ci(env: dict, repetitions: int = 2, crash: bool = False) -> subprocess.CompletedProcess:
    command = ["-c", CRASHING_CI] if crash else ["-m", "daena_pipelines.ci"]
    return subprocess.run(
        [sys.executable, *command, "--repetitions", str(repetitions)],
        env={**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )


def test_ci_fails_when_no_session_is_on_an_evals_day(tmp_path, sample_alogs):
    """Sessions, but none roasted on a day the evaluations cover (real profiles from years ago,
    without the bundled sessions): the evals golden check still runs, and every golden outcome is
    a missing row — blocking, named and recorded — instead of 'nothing to evaluate' and a pass."""
    env = ci_env(tmp_path)
    prepare_warehouse(tmp_path / "landing", sample_alogs[:1], bundled=False)
    result = run_ci(env, repetitions=1)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "evals/eval_runs: no roast session on any of its partition days (2026-11-01.." in result.stdout
    entries = json.loads((PROJECT_ROOT / "golden" / "evals" / "outcomes.golden.json").read_text())["entries"]
    assert f"| evals/eval_runs | eval_outcomes_golden | gating in CI | FAILED | {len(entries)} |" in result.stdout
    metrics = ["/".join(e["key"].values()) for e in entries]
    for metric, entry in zip(metrics, entries):
        assert f"FAIL {metric}: golden {entry['expected']!r}, actual None, change missing" in result.stdout
    assert {("eval_outcomes_golden", m) for m in metrics} <= open_findings(env["DAENA_WAREHOUSE"])


def test_ci_fails_on_a_worse_codec_setting(tmp_path, sample_alogs):
    env = ci_env(tmp_path)
    warehouse, golden = Path(env["DAENA_WAREHOUSE"]), Path(env["DAENA_GOLDEN_DIR"])
    prepare_warehouse(tmp_path / "landing", sample_alogs)
    first = run_ci(env)
    assert "nbmf_golden" in first.stdout, first.stdout + first.stderr
    # no history carried in: the timing gate passes without judging, and says so
    assert re.search(r"nbmf_timing_gate: (\d+) of \1 keys not judged \(no_history.*only nbmf_golden's x1.5 CPU rule", first.stdout), first.stdout
    assert re.search(r"nbmf_wait_gate: (\d+) of \1 keys not judged \(no_history.*nothing else holds wall-clock ratios", first.stdout)
    # golden for this corpus, promoted the documented way
    promote(warehouse, [str(golden / "nbmf" / "benchmark.golden.json")], write=True)
    assert json.loads((golden / "nbmf" / "benchmark.golden.json").read_text())["entries"]

    good = run_ci(env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "| nbmf/results | nbmf_golden | blocking | passed | 0 |" in good.stdout
    assert "| evals/eval_runs | eval_outcomes_golden | gating in CI | passed | 0 |" in good.stdout

    # Broken five ways in one run, each a blocking failure named on stdout and recorded as a finding:
    # a worse codec (no dictionaries), a crash in a check that guards neither the benchmark nor the
    # evals, a golden key deleted (by hand, or never promoted), another golden file truncated, and a
    # timing gate that crashes (its verdicts table lost a column)
    golden_file, evals_file = golden / "nbmf" / "benchmark.golden.json", golden / "evals" / "outcomes.golden.json"
    saved = {f: f.read_text() for f in (golden_file, evals_file)}
    suite = json.loads(saved[golden_file])
    dropped = "/".join(suite["entries"].pop(0)["key"].values())
    golden_file.write_text(json.dumps(suite))
    evals_file.write_text(saved[evals_file][:300])
    with duckdb.connect(str(warehouse)) as con:
        con.execute("ALTER TABLE regressions.bench_verdicts DROP COLUMN decided_at")
    worse = run_ci({**env, "DAENA_NBMF_NO_DICT": "1"}, crash=True)
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert "| nbmf/results | nbmf_golden | blocking | FAILED |" in worse.stdout
    # one key per origin: the pooled row and the real and simulated ones each fail (listed up to 40; all are findings)
    for origin in ("generated+real+simulator", "real", "simulator"):
        assert f"FAIL all/lt4k/nbmf_lossless/ratio_total/{origin}: golden " in worse.stdout
    assert "rule ratio to {'codec': 'zstd_19'} in the same run" in worse.stdout
    assert f"FAIL {dropped}: golden None" in worse.stdout
    assert "change no golden value" in worse.stdout and "missing from the golden file" in worse.stdout
    assert "FAIL golden_file:outcomes.golden.json: golden 'a readable golden file'" in worse.stdout
    assert str(evals_file) in worse.stdout
    assert "nbmf_timing_gate (nbmf/results) CRASHED" in worse.stdout
    assert "step nbmf_timing_gates failed" in worse.stdout
    assert "| telemetry/roast_metrics | event_order | blocking in CI | CRASHED | 1 |" in worse.stdout
    assert "event_order (telemetry/roast_metrics) CRASHED" in worse.stdout
    assert "step telemetry__roast_metrics_event_order failed: RuntimeError: injected crash in event_order" in worse.stdout
    assert {("nbmf_golden", f"session/all/nbmf_lossless/ratio_total/{origin}") for origin in ("real", "simulator", "real+simulator")
            } <= open_findings(str(warehouse))
    assert {("nbmf_golden", dropped),
            ("eval_outcomes_golden", "golden_file:outcomes.golden.json"), ("nbmf_timing_gate", "nbmf_timing_gate:evaluation"),
            ("event_order", "event_order:evaluation")} <= open_findings(str(warehouse))

    # all repaired: the next run passes and resolves every one of those findings
    for path, text in saved.items():
        path.write_text(text)
    with duckdb.connect(str(warehouse)) as con:
        con.execute("ALTER TABLE regressions.bench_verdicts ADD COLUMN decided_at TIMESTAMPTZ")
    recovered = run_ci(env)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    assert not {f for f in open_findings(str(warehouse)) if f[0] in ("nbmf_golden", "eval_outcomes_golden", "nbmf_timing_gate", "event_order")}
