"""The settings object: every documented DAENA_* variable is one of its fields, only config.py reads
the environment, values are read when used, and the Dagster resource resolves to the same object."""
import re
from pathlib import Path

import pytest

from daena_pipelines.config import ENV_VARS, PROJECT_ROOT, ZSTD_MAX_LEVEL, Settings
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.nbmf.codec import CodecSettings
from daena_pipelines.nbmf.dictionaries import DictionaryStore

# Documented variables that are not settings of the code location: test switches and compose's own.
NOT_SETTINGS = {
    "DAENA_UPDATE_SNAPSHOT": "tests/test_definitions_snapshot.py rewrites its snapshot",
    "DAENA_FAULT_TABLE": "tests/device/test_faults.py writes its table",
    "DAENA_TAG": "deploy/compose.yaml: the image tag",
    "DAENA_LANDING_HOST_DIR": "deploy/compose.yaml: the host folder mounted as DAENA_LANDING_DIR",
}
DOCUMENTS = [PROJECT_ROOT / "README.md", *(PROJECT_ROOT / "docs").glob("*.md"), *(PROJECT_ROOT / "deploy").iterdir()]


def documented() -> set[str]:
    return {name for path in DOCUMENTS if path.is_file() for name in re.findall(r"DAENA_[A-Z0-9_]*[A-Z0-9]", path.read_text())}


def test_every_documented_variable_is_a_setting_and_every_setting_documented():
    names = documented()
    assert {"DAENA_WAREHOUSE", "DAENA_GOLDEN_DIR"} <= names  # the scan reads the documents
    assert names - set(NOT_SETTINGS) == set(ENV_VARS.values()) - {"DAGSTER_HOME"}


def test_only_config_reads_daena_variables():
    readers = [
        str(path.relative_to(PROJECT_ROOT))
        for path in (PROJECT_ROOT / "daena_pipelines").rglob("*.py")
        if path.name != "config.py" and re.search(r"(environ|getenv)\W[^\n]*DAENA_", path.read_text())
    ]
    assert readers == []


def test_read_when_used_and_nested_defaults_follow_their_folder(tmp_path, monkeypatch):
    for name in ENV_VARS.values():
        monkeypatch.delenv(name, raising=False)
    assert Settings.from_env().warehouse == PROJECT_ROOT / "data" / "warehouse.duckdb"
    monkeypatch.setenv("DAENA_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.setenv("DAENA_GOLDEN_DIR", str(tmp_path / "g"))
    monkeypatch.setenv("DAENA_NBMF_ZSTD_LEVEL", "5")
    now = Settings.from_env()
    assert (now.warehouse, now.quarantine_dir, now.bench_history_dir, now.sidecar_landing_dir) == (
        tmp_path / "d" / "warehouse.duckdb", tmp_path / "d" / "quarantine", tmp_path / "d" / "results" / "bench-history",
        tmp_path / "d" / "landing",
    )
    assert DictionaryStore().root == tmp_path / "g" / "nbmf" / "dicts"  # golden/ moves the NBMF dictionaries too
    assert (CodecSettings.from_env().level_small, CodecSettings.from_env().level_large) == (5, 5)
    monkeypatch.setenv("DAENA_WAREHOUSE", "ducklake:postgres:dbname=x")
    assert Settings.from_env().warehouse == "ducklake:postgres:dbname=x"


def test_the_resource_resolves_to_the_settings_with_its_own_values_first(tmp_path, monkeypatch):
    monkeypatch.setenv("DAENA_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("DAENA_GOLDEN_DIR", str(tmp_path / "golden"))
    assert DaenaSettings().get() == Settings.from_env()
    given = DaenaSettings(data_dir=str(tmp_path / "given")).get()
    assert (given.quarantine_dir, given.results_dir, given.golden_dir) == (
        tmp_path / "given" / "quarantine", tmp_path / "given" / "results", tmp_path / "golden"
    )


def test_the_ui_hint_opens_the_instance_the_runs_were_recorded_in(tmp_path, monkeypatch):
    """`dagster dev` in the project folder takes DAGSTER_HOME from .env over the environment's: the
    hint after `DAGSTER_HOME=<other> daena materialize` must not send the user there."""
    from daena_pipelines import cli

    monkeypatch.setattr(cli, "PROJECT_ROOT", tmp_path)
    (tmp_path / ".env").write_text(f"DAGSTER_HOME={tmp_path / 'dagster_home'}\n")
    assert "cd " + str(tmp_path) + " && .venv/bin/dg dev" in cli.ui_hint(tmp_path / "dagster_home")[0]
    (hint,) = cli.ui_hint(tmp_path / "elsewhere")
    assert hint.endswith(f"cd ~ && DAGSTER_HOME={tmp_path / 'elsewhere'} {tmp_path}/.venv/bin/dagster dev -w {tmp_path}/workspace.yaml")


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("DAENA_LOCK_WAIT_S", "abc", "a number of seconds >= 0"),  # before: ValueError 'could not convert string to float'
    ("DAENA_LOCK_WAIT_S", "nan", "a number of seconds >= 0"),  # before: accepted; a locked warehouse was then waited on for ever
    ("DAENA_LOCK_WAIT_S", "-1", "a number of seconds >= 0"),
    ("DAENA_NBMF_ZSTD_LEVEL", "fast", "an integer zstd level up to 22"),  # before: ValueError 'invalid literal for int()'
    ("DAENA_NBMF_ZSTD_LEVEL", "99", "an integer zstd level up to 22"),  # before: accepted; zstd refused it mid-benchmark
    ("DAENA_NBMF_NO_DICT", "on", "one of 1, true, yes (on) or 0, false, no (off)"),  # before: silently read as off
])
def test_a_setting_that_cannot_be_used_stops_the_command_naming_the_variable(tmp_path, monkeypatch, capsys, name, value, expected):
    from daena_pipelines import cli

    monkeypatch.setenv("DAENA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(name, value)
    assert cli.main(["materialize"]) == 2
    assert capsys.readouterr().err == f"daena: {name}={value!r} is not {expected}; set it so, or unset it for the default\n"
    assert list(tmp_path.iterdir()) == []  # nothing ran: no warehouse, no results


def test_usable_settings_values(monkeypatch):
    import zstandard

    assert ZSTD_MAX_LEVEL == zstandard.MAX_COMPRESSION_LEVEL
    for name, value in {"DAENA_LOCK_WAIT_S": " 2.5 ", "DAENA_NBMF_ZSTD_LEVEL": "-3", "DAENA_NBMF_NO_DICT": "TRUE"}.items():
        monkeypatch.setenv(name, value)
    settings = Settings.from_env()
    assert (settings.lock_wait_s, settings.nbmf_zstd_level, settings.nbmf_no_dict) == (2.5, -3, True)
    monkeypatch.setenv("DAENA_NBMF_NO_DICT", "no")
    assert Settings.from_env().nbmf_no_dict is False
