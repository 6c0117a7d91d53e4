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


# Imports every module of the package in a fresh interpreter and lists the DeprecationWarnings
# attributed to our own files; third-party modules' own warnings are not ours to fix. Not through
# daena_pipelines.definitions: load_from_defs_folder imports the defs modules with Dagster's
# warnings switched off, which would hide exactly these.
_IMPORT_ALL = """
import importlib, pkgutil, warnings
import daena_pipelines
root = daena_pipelines.__path__[0]
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    for module in pkgutil.walk_packages(daena_pipelines.__path__, "daena_pipelines."):
        if module.name != "daena_pipelines.definitions":
            importlib.import_module(module.name)
for w in caught:
    if issubclass(w.category, DeprecationWarning) and w.filename.startswith(root):
        print(f"{w.filename}:{w.lineno}: {w.message}")
"""


def test_no_module_of_ours_uses_a_deprecated_api_when_imported(tmp_path):
    result = _run(sys.executable, "-c", _IMPORT_ALL, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
