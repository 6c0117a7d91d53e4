"""Schedules of the evals domain."""
import dagster as dg

from daena_pipelines.defs.evals import jobs

# Daily partitions: at 02:30 UTC the schedule runs the last complete day, i.e. yesterday.
eval_nightly_schedule = dg.build_schedule_from_partitioned_job(
    jobs.eval_job, name="eval_nightly_schedule", hour_of_day=2, minute_of_hour=30,
    description="Every night at 02:30 UTC, eval_job for yesterday's partition (the roasts of that UTC day). "
    "Off by default: turn it on under Automation once roasts arrive daily; `daena materialize` evaluates "
    "every day with roasts without it.",
)
