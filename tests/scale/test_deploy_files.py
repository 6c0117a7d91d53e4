"""The deployment files: the compose file against the Compose Specification's schema (the copy
check-jsonschema ships, no network), and the three descriptions of one instance agreeing."""
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def test_compose_file_validates_against_the_compose_spec():
    checker = Path(sys.executable).parent / "check-jsonschema"
    result = subprocess.run([str(checker), "--builtin-schema", "vendor.compose-spec", str(DEPLOY / "compose.yaml")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_services_get_what_the_instance_and_the_warehouse_read():
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    instance = (DEPLOY / "dagster.yaml").read_text()
    for name in ("user_code", "webserver", "daemon"):
        env = compose["services"][name]["environment"]
        for variable in ("DAGSTER_PG_HOST", "DAGSTER_PG_PORT", "DAGSTER_PG_DB", "DAGSTER_PG_USER", "DAGSTER_PG_PASSWORD"):
            assert f"env: {variable}" in instance and variable in env, (name, variable)
        assert env["DAENA_WAREHOUSE"].startswith("ducklake:postgres:") and env["PGPASSWORD"]
    assert compose["services"]["user_code"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert (DEPLOY / "Dockerfile").is_file() and (DEPLOY / "workspace.yaml").is_file()
    lake_db = compose["x-dagster-env"]["DAENA_WAREHOUSE"].split("dbname=")[1].split()[0]
    assert f"CREATE DATABASE {lake_db};" in (DEPLOY / "postgres-init.sql").read_text()


def test_helm_values_and_dagster_yaml_describe_the_same_instance():
    instance = yaml.safe_load((DEPLOY / "dagster.yaml").read_text())
    values = yaml.safe_load((DEPLOY / "helm-values.yaml").read_text())
    monitoring = values["dagsterDaemon"]["runMonitoring"]
    assert monitoring["enabled"] and instance["run_monitoring"]["enabled"]
    assert monitoring["freeSlotsAfterRunEndSeconds"] == instance["run_monitoring"]["free_slots_after_run_end_seconds"]
    assert values["concurrency"]["pools"]["defaultLimit"] == instance["concurrency"]["pools"]["default_limit"]
    assert values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]["maxConcurrentRuns"] == \
        instance["concurrency"]["runs"]["max_concurrent_runs"]
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    deployment = values["dagster-user-deployments"]["deployments"][0]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", "daena_pipelines.definitions"]
    assert any(e["name"] == "DAENA_WAREHOUSE" and e["value"].startswith("ducklake:postgres:") for e in deployment["env"])
