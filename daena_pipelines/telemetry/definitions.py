"""Dagster definitions of the telemetry domain."""
import dagster as dg

defs = dg.Definitions()
