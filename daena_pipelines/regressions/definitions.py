"""Dagster definitions of the regressions domain: the findings sensor.

Golden checks themselves live with the asset they check (``checks.golden_asset_check``).
"""
import dagster as dg

from daena_pipelines.regressions.sensor import regressions_sensor

defs = dg.Definitions(sensors=[regressions_sensor])
