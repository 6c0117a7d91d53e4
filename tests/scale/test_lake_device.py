"""The sidecar's warehouse worker on a DuckLake warehouse: a stepped simulation keeps one
connection for the whole run, and it must be the same DuckLake connection every other writer gets
(db.connect), not a DuckDB connection to a path that happens to start with ``ducklake:``."""
from __future__ import annotations

from datetime import datetime, timezone

from daena_pipelines.db import connect
from daena_pipelines.device.command_store import WarehouseIO


def test_a_stepped_sidecar_writes_its_session_into_the_lake(lake_target):
    io = WarehouseIO(lake_target, "m1", "rec-1", keep_connection=True)
    io.add("session", {"recording_id": "rec-1", "machine_id": "m1", "roaster_serial": "S1", "model": "Bullet R2",
                       "source": "simulator", "started_at": datetime(2026, 1, 1, tzinfo=timezone.utc)})
    io.cycle(read=True)
    io.close()
    assert io.unwritten == 0
    with connect(lake_target, read_only=True) as con:
        assert con.execute("SELECT recording_id, source FROM device.sidecar_sessions").fetchall() == [("rec-1", "simulator")]
