"""Several processes whose first connection to a DuckLake warehouse is at the same moment (a
deployment's code server, daemon and first runs starting together, or after an upgrade): each
creates the catalog and applies the migrations it finds missing, so they race."""
from __future__ import annotations

import os
import subprocess
import sys
import threading

from daena_pipelines import migrations
from daena_pipelines.commands import tables as commands_tables
from daena_pipelines.db import connect, table_exists
from daena_pipelines.telemetry import store
from tests.scale import workload

OPEN_AND_MIGRATE = "import sys; from daena_pipelines.db import connect\nwith connect(sys.argv[1]): pass"
NEWEST = [(domain, version) for domain, (_module, newest) in sorted(migrations.DOMAINS.items()) for version in range(1, newest + 1)]


def _connect_at_once(target: str, processes: int) -> None:
    starters = [subprocess.Popen([sys.executable, "-c", OPEN_AND_MIGRATE, target], env=os.environ.copy(),
                                 stderr=subprocess.PIPE, text=True) for _ in range(processes)]
    errors = [p.communicate(timeout=240)[1] for p in starters]
    assert [p.returncode for p in starters] == [0] * processes, "\n".join(e[-1500:] for e in errors)


def _ledger(target: str) -> list[tuple[str, int]]:
    with connect(target, read_only=True) as con:
        return con.execute("SELECT domain, version FROM meta.schema_migrations ORDER BY ALL").fetchall()


def test_processes_connecting_first_at_once_all_succeed_and_each_migration_is_applied_once(lake_target):
    _connect_at_once(lake_target, 3)
    assert _ledger(lake_target) == NEWEST


def test_an_old_lake_migrated_by_two_processes_at_once_gets_each_migration_once(lake_target, monkeypatch):
    with monkeypatch.context() as old:  # the lake as the first telemetry schema left it
        old.setattr(store, "MIGRATIONS", store.MIGRATIONS[:1])
        old.setitem(migrations.DOMAINS, "telemetry", (migrations.DOMAINS["telemetry"][0], 1))
        with connect(lake_target) as con:
            assert "extra" in {c for (c,) in con.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'points'").fetchall()}
    _connect_at_once(lake_target, 2)
    assert _ledger(lake_target) == NEWEST
    with connect(lake_target, read_only=True) as con:  # migration 4 dropped the column, migration 5 made the view
        assert "extra" not in {c for (c,) in con.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'points'").fetchall()}
        assert table_exists(con, store.POINTS_WITH_EXTRA)  # information_schema.tables lists views too


def test_two_connections_applying_the_same_migration_at_once_apply_it_once(lake_target, monkeypatch):
    """Deterministic: both transactions find the migration missing before either commits. On a
    fresh lake the commands migration changes nothing (no tables yet) but its ledger row."""
    with connect(lake_target) as first, connect(lake_target) as second:
        first.execute("DELETE FROM meta.schema_migrations WHERE domain = 'commands'")
        both_inside = threading.Barrier(2, timeout=60)
        original = commands_tables.MIGRATIONS[0]  # the race over one migration: the domain's first
        monkeypatch.setattr(commands_tables, "MIGRATIONS", [
            migrations.Migration(1, original.description, lambda con: (both_inside.wait(), original.run(con)))])
        results = workload.at_once(lambda con: migrations.migrate(con, ["commands"]), (first, second))
        assert sorted(len(r) for r in results) == [0, 1]  # one applied it, the other found it applied
        assert first.execute("SELECT count(*) FROM meta.schema_migrations WHERE domain = 'commands'").fetchone()[0] == 1
