"""Two commands ingests at once on a DuckLake warehouse: each replaces the rows of the commands tables
(commands migration 4 made the tables). Deleting rows that are not there yet changes nothing and
inserts never conflict on DuckLake, so without db.serialize_writes both would commit and every
proposal would be there twice; with it the later commit conflicts and the ingest runs again."""
from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timezone

from daena_pipelines.commands import alerts, metrics, store, tables
from daena_pipelines.commands.model import Proposal
from daena_pipelines.db import connect, retrying_transaction
from tests.scale import workload

PROPOSAL = Proposal(**{f.name: None for f in dataclasses.fields(Proposal) if f.name != "location"} | {
    "proposal_id": "p-1", "machine_id": "m1", "command_type": "heater", "status": "PROPOSED", "origin": "generated", "source": "test"})


def test_two_commands_ingests_at_once_both_succeed_and_leave_one_copy(lake_target, monkeypatch):
    both_inside, waited = threading.Barrier(2, timeout=60), set()
    insert = tables.insert

    def insert_when_both_are_inside(con, *args, **kwargs):  # both transactions have deleted before either commits
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            both_inside.wait()
        insert(con, *args, **kwargs)

    monkeypatch.setattr(tables, "insert", insert_when_both_are_inside)
    accepted = store.Accepted([PROPOSAL], [], [], [])
    with connect(lake_target) as first, connect(lake_target) as second:
        now = datetime.now(timezone.utc)
        outcomes = workload.at_once(lambda con: tables.replace_ingest(con, accepted, now, (now, tables.AS_OF_RUN_CLOCK)), (first, second))
        assert outcomes == [None, None]
        assert first.execute("SELECT proposal_id FROM commands.proposals").fetchall() == [("p-1",)]
        # the keyless tables the migration made there take the metrics and alerts, and a rebuild replaces them
        for _ in range(2):
            retrying_transaction(first, metrics.build_outcome_metrics)
            retrying_transaction(first, lambda con: alerts.build_alerts(con, alerts.AlertThresholds()))
        assert first.execute("SELECT machine_id, n_proposals, n_proposed FROM commands.outcome_metrics").fetchall() == [("m1", 1, 1)]
        assert first.execute("SELECT count(*) FROM commands.alerts").fetchone()[0] == 0
