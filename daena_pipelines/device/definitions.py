"""Dagster definitions of the device domain."""
import dagster as dg

defs = dg.Definitions()
