"""Two commands ingests at once on a DuckLake warehouse: each replaces the commands tables whole
(CREATE OR REPLACE). DuckLake refuses the later of two commits that replaced the same table
("Transaction conflict"); the ingest must run again, not fail the run."""
from __future__ import annotations

import dataclasses
import threading
from datetime import datetime, timezone

from daena_pipelines.commands import store, tables
from daena_pipelines.commands.model import Proposal
from daena_pipelines.db import connect
from tests.scale import workload

PROPOSAL = Proposal(**{f.name: None for f in dataclasses.fields(Proposal) if f.name != "location"} | {
    "proposal_id": "p-1", "machine_id": "m1", "command_type": "heater", "status": "PROPOSED", "origin": "generated", "source": "test"})


def test_two_commands_ingests_at_once_both_succeed_and_leave_one_copy(lake_target, monkeypatch):
    both_inside, waited = threading.Barrier(2, timeout=60), set()
    create_tables = tables.create_tables

    def create_when_both_are_inside(con):
        if threading.get_ident() not in waited:
            waited.add(threading.get_ident())
            both_inside.wait()
        create_tables(con)

    monkeypatch.setattr(tables, "create_tables", create_when_both_are_inside)
    accepted = store.Accepted([PROPOSAL], [], [], [])
    with connect(lake_target) as first, connect(lake_target) as second:
        outcomes = workload.at_once(lambda con: tables.replace_ingest(con, accepted, datetime.now(timezone.utc)), (first, second))
        assert outcomes == [None, None]
        assert first.execute("SELECT proposal_id FROM commands.proposals").fetchall() == [("p-1",)]
