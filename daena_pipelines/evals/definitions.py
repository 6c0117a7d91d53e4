"""Dagster definitions of the evals domain."""
import dagster as dg

defs = dg.Definitions()
