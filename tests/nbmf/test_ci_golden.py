"""The CI command goes red when the codec gets worse, and stays green when it does not."""
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

from daena_pipelines.config import PROJECT_ROOT
from daena_pipelines.regressions.promote import promote


def prepare_warehouse(landing: Path, alogs: list[Path]) -> None:
    """Give CI its corpus the way a clean clone would: files in the landing folder, which CI's
    telemetry ingest loads."""
    landing.mkdir()
    for f in alogs:
        shutil.copy(f, landing / f.name)


def run_ci(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "daena_pipelines.ci", "--repetitions", "2"],
        env={**os.environ, **env, "PYTHONPATH": str(PROJECT_ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        cwd=PROJECT_ROOT,
    )


def test_ci_fails_on_a_worse_codec_setting(tmp_path, sample_alogs):
    warehouse, golden = tmp_path / "w.duckdb", tmp_path / "golden"
    shutil.copytree(PROJECT_ROOT / "golden", golden)
    prepare_warehouse(tmp_path / "landing", sample_alogs)
    env = {
        "DAENA_WAREHOUSE": str(warehouse),
        "DAENA_GOLDEN_DIR": str(golden),
        "DAENA_RESULTS_DIR": str(tmp_path / "results"),
        "DAENA_LANDING_DIR": str(tmp_path / "landing"),
    }
    first = run_ci(env)
    assert "nbmf_golden" in first.stdout, first.stdout + first.stderr
    # golden for this corpus, promoted the documented way
    promote(warehouse, [str(golden / "nbmf" / "benchmark.golden.json")], write=True)
    assert json.loads((golden / "nbmf" / "benchmark.golden.json").read_text())["entries"]

    good = run_ci(env)
    assert good.returncode == 0, good.stdout + good.stderr
    assert "| nbmf/results | nbmf_golden | blocking | passed | 0 |" in good.stdout

    worse = run_ci({**env, "DAENA_NBMF_NO_DICT": "1"})
    assert worse.returncode == 1, worse.stdout + worse.stderr
    assert "| nbmf/results | nbmf_golden | blocking | FAILED |" in worse.stdout
    assert "FAIL session/all/nbmf_lossless/ratio_total: golden " in worse.stdout
    assert "rule ratio to {'codec': 'zstd_19'} in the same run" in worse.stdout
    with duckdb.connect(str(warehouse), read_only=True) as con:
        open_findings = con.execute(
            "SELECT metric FROM regressions.findings WHERE resolved_at IS NULL"
        ).fetchall()
    assert ("session/all/nbmf_lossless/ratio_total",) in open_findings

    recovered = run_ci(env)
    assert recovered.returncode == 0, recovered.stdout + recovered.stderr
    with duckdb.connect(str(warehouse), read_only=True) as con:
        # The golden findings the worse codec opened are resolved. (The warn-only latency check
        # compares with the previous run, here the dictionary-less one, so it may stay open.)
        assert con.execute(
            "SELECT count(*) FROM regressions.findings WHERE resolved_at IS NULL AND check_name = 'nbmf_golden'"
        ).fetchone()[0] == 0

    # a golden file that lost one key the run measures (deleted by hand, or never promoted): blocking
    golden_file = golden / "nbmf" / "benchmark.golden.json"
    suite = json.loads(golden_file.read_text())
    dropped = suite["entries"].pop(0)
    golden_file.write_text(json.dumps(suite))
    unguarded = run_ci(env)
    assert unguarded.returncode == 1, unguarded.stdout + unguarded.stderr
    assert "| nbmf/results | nbmf_golden | blocking | FAILED | 1 |" in unguarded.stdout
    assert f"FAIL {'/'.join(dropped['key'].values())}: golden None" in unguarded.stdout
    assert "change no golden value" in unguarded.stdout and "missing from the golden file" in unguarded.stdout

    # a truncated golden file, and a timing gate that crashes (its verdicts table lost a column):
    # each a blocking failure, named on stdout and recorded as a finding
    golden_file.write_text(golden_file.read_text()[:1000])
    with duckdb.connect(str(warehouse)) as con:
        con.execute("ALTER TABLE regressions.bench_verdicts DROP COLUMN note")
    broken = run_ci(env)
    assert broken.returncode == 1, broken.stdout + broken.stderr
    assert "FAIL golden_file:benchmark.golden.json: golden 'a readable golden file'" in broken.stdout
    assert str(golden_file) in broken.stdout
    assert "nbmf_timing_gate (nbmf/results) CRASHED" in broken.stdout
    assert "step nbmf_timing_gates failed" in broken.stdout
    with duckdb.connect(str(warehouse), read_only=True) as con:
        open_findings = {m for (m,) in con.execute("SELECT metric FROM regressions.findings WHERE resolved_at IS NULL").fetchall()}
    assert {"golden_file:benchmark.golden.json", "nbmf_timing_gate:evaluation"} <= open_findings
