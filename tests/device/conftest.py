"""Fixtures for the device tests: a virtual R1 on a stepped clock, sidecar configs in tmp folders."""
from __future__ import annotations

import pytest

from daena_pipelines.device.clock import SteppedClock
from daena_pipelines.device.sidecar import SidecarConfig, build_sidecar
from daena_pipelines.device.virtual_r1 import OperatorPlan, VirtualR1Config, plug_in_virtual_r1


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
