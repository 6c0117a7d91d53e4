"""Runs made by `daena materialize` belong to the code location's jobs, as the UI reads them."""
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
