"""Dagster definitions of the commands domain."""
import dagster as dg

defs = dg.Definitions()
