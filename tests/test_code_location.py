"""The code location loads the way users load it: `dagster dev -w workspace.yaml` and `dg dev`."""
import os
import subprocess
import sys
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*args: str, tmp_path: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path), "DAENA_DATA_DIR": str(tmp_path / "data")}
    return subprocess.run(args, cwd=PROJECT, env=env, capture_output=True, text=True, timeout=300)


def test_workspace_yaml_validates(tmp_path):
    result = _run(str(BIN / "dagster"), "definitions", "validate", "-w", "workspace.yaml", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dg_sees_the_project(tmp_path):
    result = _run(str(BIN / "dg"), "list", "defs", "--json", tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "telemetry/sessions" in result.stdout and "landing_folder_sensor" in result.stdout
