"""Runs made by `daena materialize` belong to the code location's jobs, as the UI reads them."""
import logging
from pathlib import Path

import dagster as dg

from daena_pipelines import runner


@dg.asset
def one() -> int:
    return 1


def test_an_in_process_run_carries_the_code_location_origin_and_tag():
    job = dg.Definitions(assets=[one], jobs=[dg.define_asset_job("one_job")]).resolve_job_def("one_job")
    with dg.DagsterInstance.ephemeral() as instance:
        result = runner.execute(job, instance, tags=runner.process_tags())
        run = instance.get_run_by_id(result.run_id)
        assert "create_run_for_job" not in vars(instance)  # the instance is itself again afterwards
        plain = job.execute_in_process(instance=instance)
    assert result.success
    origin = run.remote_job_origin.repository_origin  # the Overview timeline drops runs without one
    assert (origin.code_location_origin.location_name, origin.repository_name) == ("daena_pipelines", "__repository__")
    assert run.remote_job_origin.job_name == "one_job"
    assert run.tags[runner.REPOSITORY_TAG] == "__repository__@daena_pipelines"  # the Jobs page filters by it
    assert run.tags["dagster/code_location"] == "daena_pipelines"
    assert plain.dagster_run.remote_job_origin is None


def test_dagster_internals_are_used_in_one_place_only():
    """Private Dagster modules may change in any release: the one use is runner's origin helper."""
    package = Path(runner.__file__).parent
    users = sorted(str(p.relative_to(package)) for p in package.rglob("*.py") if "dagster._" in p.read_text())
    assert users == ["runner.py"]


def test_the_embedded_instance_frees_the_pool_slot_of_a_run_that_ended_holding_it(tmp_path, monkeypatch):
    """`dagster dev` stopped in the middle of a sensor's ingest left that run FAILURE with its
    "duckdb" slot claimed: every later warehouse step (the UI's, `dagster job execute`'s) waited on
    "Step blocked by limit for pool duckdb" for ever. The project's instance settings start the
    daemon's monitoring, which frees such a slot (its iteration is run here with the clock moved on)."""
    import datetime as dt
    import shutil
    from types import SimpleNamespace

    from dagster._daemon.monitoring import concurrency

    shutil.copy(Path(runner.__file__).parents[1] / "dagster_home" / "dagster.yaml", tmp_path)
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert "MONITORING" in instance.get_required_daemon_types()  # what `dagster dev` starts
        instance.event_log_storage.set_concurrency_slots("duckdb", 1)
        run = instance.create_run_for_job(dg.Definitions(jobs=[dg.define_asset_job("one_job", [one])], assets=[one]).resolve_job_def("one_job"))
        assert instance.event_log_storage.claim_concurrency_slot("duckdb", run.run_id, "step").is_claimed
        instance.report_run_failed(run)
        later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(minutes=5)
        monkeypatch.setattr(concurrency, "get_current_datetime", lambda: later)
        list(concurrency.execute_concurrency_slots_iteration(SimpleNamespace(instance=instance), logging.getLogger("test")))
        assert instance.event_log_storage.get_concurrency_info("duckdb").claimed_slots == []
