"""Every definition of the code location, compared with tests/snapshots/definitions.json.

Placing a module under daena_pipelines/defs/ registers what it defines, so a file added, moved or
left out changes the code location silently; this test makes that change visible. After an
intended change, rewrite the snapshot and review its diff:

    DAENA_UPDATE_SNAPSHOT=1 .venv/bin/python -m pytest tests/test_definitions_snapshot.py
"""
import json
import os
from pathlib import Path

import dagster as dg
import pytest

from daena_pipelines.definitions import defs
from tests.conftest import under_ci

SNAPSHOT = Path(__file__).parent / "snapshots" / "definitions.json"


def describe(definitions: dg.Definitions) -> dict:
    graph = definitions.resolve_asset_graph()
    repo = definitions.get_repository_def()
    assets = {}
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        assets[key.to_user_string()] = {
            "group": node.group_name,
            "kinds": sorted(node.kinds),
            "owners": list(node.owners),
            "deps": sorted(k.to_user_string() for k in node.parent_keys),
            "partitioned": node.partitions_def is not None,
            "executable": node.is_executable,
        }
    checks = {}
    for check_key in sorted(graph.asset_check_keys, key=lambda k: k.to_user_string()):
        spec = graph.get_check_spec(check_key)
        checks[check_key.to_user_string()] = {"blocking": spec.blocking}
    jobs = {
        job.name: sorted(k.to_user_string() for k in job.asset_layer.selected_asset_keys)
        for job in sorted(repo.get_all_jobs(), key=lambda j: j.name)
        if not job.name.startswith("__")
    }
    schedules = {
        s.name: {"job": s.job_name, "cron": s.cron_schedule, "default_status": s.default_status.value}
        for s in sorted(repo.schedule_defs, key=lambda s: s.name)
    }
    sensors = {
        s.name: {
            "jobs": sorted(t.job_name for t in s.targets),
            "default_status": s.default_status.value,
            "minimum_interval_seconds": s.minimum_interval_seconds,
        }
        for s in sorted(repo.sensor_defs, key=lambda s: s.name)
    }
    resources = sorted(definitions.resources or {})
    return {"assets": assets, "asset_checks": checks, "jobs": jobs, "schedules": schedules, "sensors": sensors,
            "resources": resources}


def test_definitions_match_the_snapshot():
    current = describe(defs)
    if os.environ.get("DAENA_UPDATE_SNAPSHOT"):
        if under_ci():  # a rewrite there would accept whatever this run defines
            pytest.fail("DAENA_UPDATE_SNAPSHOT is set under CI: rewrite the snapshot locally and commit it")
        SNAPSHOT.write_text(json.dumps(current, indent=1, sort_keys=True) + "\n")
    expected = json.loads(SNAPSHOT.read_text())
    assert set(expected) == set(current), f"{SNAPSHOT.name} has sections {sorted(expected)}, the code location {sorted(current)}"
    for section in expected:
        assert current[section] == expected[section], (
            f"{section} differ from {SNAPSHOT.name}; if intended, rewrite it (see this module's docstring)"
        )
