"""Dagster definitions of the regressions domain."""
import dagster as dg

defs = dg.Definitions()
