"""Dagster definitions of the nbmf domain."""
import dagster as dg

defs = dg.Definitions()
