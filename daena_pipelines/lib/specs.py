"""Defaults every asset of the project shares: owners, kinds, the DuckDB pool, and asset keys
derived from the warehouse table names the domain contracts publish."""
from __future__ import annotations

from collections.abc import Iterable

import dagster as dg

from daena_pipelines.config import Settings
from daena_pipelines.lib.warehouse import DUCKDB_POOL

OWNERS = ["team:roasting-data"]
KINDS = frozenset({"duckdb", "python"})


def key(table: str) -> dg.AssetKey:
    """The asset key of a warehouse table: ``schema.table`` -> ``schema/table``."""
    return dg.AssetKey(table.split("."))


def keys(tables: Iterable[str]) -> list[dg.AssetKey]:
    return [key(t) for t in tables]


def table_metadata(table: str) -> dict:
    """Definition metadata of the asset that writes ``table``: where it is, before anything runs."""
    return {"dagster/table_name": table, "warehouse": dg.MetadataValue.path(str(Settings.from_env().warehouse))}


def table_spec(table: str, description: str, deps: Iterable[str] = (), kinds: Iterable[str] = KINDS) -> dg.AssetSpec:
    """The spec of the asset that writes ``table``: grouped by its schema, owned by the team."""
    return dg.AssetSpec(
        key(table), description=description, group_name=table.split(".")[0], owners=OWNERS, kinds=set(kinds),
        deps=keys(deps), metadata=table_metadata(table),
    )


def asset_defaults(group: str, kinds: Iterable[str] = KINDS, table: str | None = None) -> dict:
    """Keyword arguments of ``@dg.asset`` for an asset that writes the warehouse (``table``, if one)."""
    return dict(group_name=group, owners=OWNERS, kinds=set(kinds), pool=DUCKDB_POOL,
                **({"metadata": table_metadata(table)} if table else {}))
