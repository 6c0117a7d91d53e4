"""Fixtures for the device tests: a virtual R1 on a stepped clock, sidecar configs in tmp folders."""
from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pytest

from daena_pipelines.db import connect
from daena_pipelines.device.roaster import State

from daena_pipelines.device.clock import SteppedClock
from daena_pipelines.device.sidecar import SidecarConfig, build_sidecar
from daena_pipelines.device.virtual_r1 import Faults, OperatorPlan, VirtualR1Config, plug_in_virtual_r1


@pytest.fixture
def clock():
    return SteppedClock()


@pytest.fixture
def virtual_r1(clock):
    """A plugged-in virtual R1 with nobody at the panel: (device, backend)."""
    return plug_in_virtual_r1(VirtualR1Config(), clock)


@pytest.fixture
def sim_config(tmp_path):
    """A deterministic simulated roast config writing into tmp folders; tweak per test."""

    def make(**overrides) -> SidecarConfig:
        values = dict(
            simulate=True, time_scale=0, seed=7, start_at="2026-11-17T09:00:00+00:00",
            recordings_dir=str(tmp_path / "recordings"), landing_dir=str(tmp_path / "landing"),
            virtual=VirtualR1Config(operator=OperatorPlan()),
            queue_poll_interval_s=10.0,  # each look at the queue opens DuckDB (~15 ms); fewer keeps tests fast
        )
        values.update(overrides)
        return SidecarConfig(**values)

    return make


def run_until(sidecar, condition, limit_s: float = 3600.0) -> bool:
    """Step a started sidecar until ``condition(sidecar)``; False when the session ended first."""
    while not condition(sidecar):
        if not sidecar.step() or sidecar.clock.now() > limit_s:
            return False
        sidecar.clock.sleep(sidecar.next_tick - sidecar.clock.now())
    return True


@pytest.fixture
def started(sim_config):
    """Build and start a sidecar on the virtual R1: returns (sidecar, virtual device)."""

    def make(**overrides):
        sidecar, device = build_sidecar(sim_config(**overrides))
        sidecar.start()
        return sidecar, device

    return make


@dataclass(frozen=True)
class VirtualRoaster:
    """One model's virtual twin as the fault tests drive it; a new model adds an entry to ROASTERS."""

    model: str  # SidecarConfig.model
    serial: str
    make_config: Callable[..., object]  # (operator, faults, serial=...) -> the virtual twin's config

    def virtual(self, operator=True, **faults):
        return self.make_config(OperatorPlan() if operator else None, Faults(**faults))


ROASTERS = {
    "r1": VirtualRoaster("r1", "4242", lambda operator, faults, **kw: VirtualR1Config(operator=operator, faults=faults, **kw)),
    # the same config drives the virtual R2 (r2.virtual.as_r2 scales the heater levels); its serial is the USB string
    "r2": VirtualRoaster("r2", "R2V-004242", lambda operator, faults, **kw: VirtualR1Config(operator=operator, faults=faults, **kw)),
}


@pytest.fixture(params=sorted(ROASTERS))
def roaster(request) -> VirtualRoaster:
    return ROASTERS[request.param]


@pytest.fixture
def warehouse(tmp_path):
    """A warehouse with the device tables (created up front: two first-time creators in one process conflict)."""
    path = str(tmp_path / "w.duckdb")
    with connect(path):  # the connection applies the migrations
        pass
    return path


@contextmanager
def locked_retry(warehouse, wait_s: float = 5.0):
    """A connection to the warehouse, retried while another process holds its lock."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            con = duckdb.connect(warehouse)
            break
        except duckdb.IOException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)
    with con:
        yield con


def approve(warehouse, proposal_id, command_type, target=None, *, serial="4242", session=None, machine=None,
            approved_at="now()", expires_at="NULL", unit="level"):
    """An APPROVED proposal as the approval service would write it (times are SQL expressions); ``machine``
    defaults to the machine_id a sidecar on the virtual roaster with ``serial`` has by default (its model). A sidecar
    running in real time holds the file for a moment each warehouse cycle: retried as the service would."""
    machine = machine or next((r.model for r in ROASTERS.values() if r.serial == serial), "r1")
    with locked_retry(warehouse) as con:
        con.execute(
            "INSERT INTO device.command_queue (proposal_id, machine_id, session_id, roaster_serial, command_type, target_value,"
            f" target_unit, status, approved_at, expires_at, source) VALUES (?, ?, ?, ?, ?, ?, ?, 'APPROVED', {approved_at},"
            f" {expires_at}, 'test')",
            [proposal_id, machine, session, serial, command_type, target, unit],
        )


def queue_rows(warehouse) -> dict[str, tuple]:
    """proposal_id -> (queue status, closed_reason, execution status, execution error)."""
    with duckdb.connect(warehouse) as con:
        rows = con.execute(
            "SELECT q.proposal_id, q.status, q.closed_reason, e.status, e.error FROM device.command_queue q"
            " LEFT JOIN device.command_executions e USING (proposal_id)"
        ).fetchall()
    return {row[0]: row[1:] for row in rows}


def table_row(case: str, final: dict, lost_polls: int, footer: dict, statuses: dict) -> None:
    """With DAENA_FAULT_TABLE set, append one fault case's outcome as a JSON line (the closing note's
    table): final heater/state as the roaster reported them, lost polls, footer end reason and exit."""
    if os.environ.get("DAENA_FAULT_TABLE"):
        row = {"model": final.get("model"), "case": case, "heater": final["h"], "state": State(final["st"]).name.lower(), "lost_polls": lost_polls,
               "end_reason": footer["end_reason"], "exit": footer["exit"]["outcome"], "statuses": statuses}
        with open(os.environ["DAENA_FAULT_TABLE"], "a") as out:
            out.write(json.dumps(row) + "\n")
