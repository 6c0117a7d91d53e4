"""Versioned schema migrations for every domain's warehouse tables, applied on first connection.

Each domain lists its schema history as numbered migrations (``MIGRATIONS`` in its table module):
every table and every later column is created by a migration, never by code at run time. The warehouse keeps a
ledger, ``meta.schema_migrations``, of what it has applied; connecting through
``daena_pipelines.db.connect`` or the Dagster ``WarehouseResource`` applies whatever is missing,
each migration in its own transaction together with its ledger row. Migration 1 of every domain
is its original ``CREATE ... IF NOT EXISTS`` DDL, so a warehouse made before the ledger existed
adopts its tables unchanged and then receives the later migrations. Runs write rows, never tables:
a derived table (the commands domain's) has its rows replaced in the run's transaction.

Adding a table or a column: append a Migration to the domain's list (``CREATE TABLE IF NOT EXISTS``,
``ALTER TABLE ... ADD COLUMN IF NOT EXISTS``: idempotent, so a warehouse that already has it, made
by code from before the migration, takes it unchanged) and raise the domain's number in
``DOMAINS``; tests/test_migrations.py checks that the two agree and opens warehouses in the
schemas earlier code left.
"""
from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import duckdb

from daena_pipelines.db import retrying_transaction, table_exists
from daena_pipelines.lake import sql_string
from daena_pipelines.telemetry import contract as telemetry


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    apply: str | Sequence[str] | Callable[[duckdb.DuckDBPyConnection], None]  # SQL, statements, or a function

    def run(self, con: duckdb.DuckDBPyConnection) -> None:
        if callable(self.apply):
            self.apply(con)
        else:
            for statement in [self.apply] if isinstance(self.apply, str) else self.apply:
                con.execute(statement)


# domain -> (module holding its MIGRATIONS, newest version). The number lets a connection
# see that nothing is due without importing every domain's module; telemetry's newest version is
# contract.SCHEMA_VERSION (store.MIGRATIONS).
DOMAINS: dict[str, tuple[str, int]] = {
    "telemetry": ("daena_pipelines.telemetry.store", telemetry.SCHEMA_VERSION),
    "evals": ("daena_pipelines.evals.tables", 6),
    "nbmf": ("daena_pipelines.nbmf.runs", 4),
    "regressions": ("daena_pipelines.regressions.findings", 6),
    "device": ("daena_pipelines.device.command_store", 6),
    "commands": ("daena_pipelines.commands.tables", 6),
}

# Run before any due migration (every warehouse this code opens has one due until it is current):
# the ledger, the row its migrations update, and the row db.serialize_writes updates.
LEDGER = """
CREATE SCHEMA IF NOT EXISTS meta;
CREATE TABLE IF NOT EXISTS meta.schema_migrations (
    domain VARCHAR NOT NULL, version INTEGER NOT NULL, description VARCHAR NOT NULL,
    applied_at TIMESTAMPTZ NOT NULL);
CREATE TABLE IF NOT EXISTS meta.migration_commits (migrations BIGINT NOT NULL);
INSERT INTO meta.migration_commits SELECT 0 WHERE NOT EXISTS (FROM meta.migration_commits);
CREATE TABLE IF NOT EXISTS meta.write_commits (writes BIGINT NOT NULL);
INSERT INTO meta.write_commits SELECT 0 WHERE NOT EXISTS (FROM meta.write_commits);
"""


def migrations_of(domain: str) -> list[Migration]:
    return list(importlib.import_module(DOMAINS[domain][0]).MIGRATIONS)


def applied_versions(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    if not table_exists(con, "meta.schema_migrations"):
        return {}
    return dict(con.execute("SELECT domain, max(version) FROM meta.schema_migrations GROUP BY domain").fetchall())


def migrate(con: duckdb.DuckDBPyConnection, domains: Sequence[str] | None = None) -> list[tuple[str, int, str]]:
    """Apply every migration the warehouse lacks (of `domains`, default all); returns
    (domain, version, description) of each one applied."""
    applied = applied_versions(con)
    due = [d for d in (domains or DOMAINS) if applied.get(d, 0) < DOMAINS[d][1]]
    if not due:
        return []
    retrying_transaction(con, lambda con: con.execute(LEDGER))
    done = []
    for domain in due:
        for migration in migrations_of(domain):
            # a concurrent first connection may apply the same migration: the loser of the commit
            # retries, sees it in the ledger and skips it
            if retrying_transaction(con, lambda con: _apply(con, domain, migration)):
                done.append((domain, migration.version, migration.description))
    return done


def _apply(con: duckdb.DuckDBPyConnection, domain: str, migration: Migration) -> bool:
    # literals, not parameters (db.table_exists says why); the values are this module's own
    key = f"{sql_string(domain)}, {int(migration.version)}"
    if con.execute(f"SELECT count(*) FROM meta.schema_migrations WHERE (domain, version) = ({key})").fetchone()[0]:
        return False
    # Inserts never conflict on DuckLake: without this update two processes that both found the
    # migration missing would both commit it (a migration that changes nothing, or only inserts,
    # would be applied twice). Both update this row, so the later commit conflicts and is retried.
    con.execute("UPDATE meta.migration_commits SET migrations = migrations + 1")
    migration.run(con)
    con.execute(f"INSERT INTO meta.schema_migrations (domain, version, description, applied_at) VALUES ({key}, {sql_string(migration.description)}, now())")
    return True
