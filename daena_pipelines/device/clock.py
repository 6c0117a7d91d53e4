"""Clocks for the sidecar loop and the virtual R1: real time, scaled time, or stepped time.

``now()`` is in device seconds (what a roast timer shows). A scaled clock runs ``time_scale``
times faster than the wall; a stepped clock jumps forward on ``sleep`` so a simulated roast is
deterministic and as fast as the CPU allows.
"""
from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

BOOT_CLOCK = getattr(time, "CLOCK_BOOTTIME", None)  # Linux only


def since_boot() -> float:
    """Seconds on a clock that keeps running while the host is suspended (Linux's CLOCK_BOOTTIME; elsewhere
    time.monotonic). time.monotonic is CLOCK_MONOTONIC there, which stops during a suspend: a roaster the host
    slept through would be missing from the session's time, and approvals read before the suspend would look
    freshly read after it (docs/device.md, "Host suspend")."""
    return time.clock_gettime(BOOT_CLOCK) if BOOT_CLOCK is not None else time.monotonic()


class RealClock:
    time_scale = 1.0

    def __init__(self) -> None:
        self._start = since_boot()

    def now(self) -> float:
        return since_boot() - self._start

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wall(self) -> datetime:
        return datetime.now(UTC)


class ScaledClock:
    """Device time = ``at`` + wall time × ``time_scale`` since creation; wall dates start at ``start``
    (``at``: where a clock of another process stood, to go on from it)."""

    def __init__(self, time_scale: float, start: datetime | None = None, at: float = 0.0):
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0 (use SteppedClock for as-fast-as-possible)")
        self.time_scale = time_scale
        self._start_wall = start or datetime.now(UTC)
        self._start = since_boot()
        self._offset = at

    def now(self) -> float:
        return self._offset + (since_boot() - self._start) * self.time_scale

    def set_scale(self, time_scale: float) -> None:
        """Change speed from now on (e.g. fast-forward a preheat, then measure in real time)."""
        self._offset, self._start, self.time_scale = self.now(), since_boot(), time_scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.time_scale)

    def wall(self) -> datetime:
        return self._start_wall + timedelta(seconds=self.now())


class SteppedClock:
    """Time moves only when someone sleeps: deterministic simulation at CPU speed."""

    time_scale = 0.0  # 0 = not tied to the wall clock

    def __init__(self, start: datetime | None = None):
        self._now = 0.0
        self._start_wall = start or datetime.now(UTC)

    def now(self) -> float:
        return self._now

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            self._now += seconds

    def wall(self) -> datetime:
        return self._start_wall + timedelta(seconds=self._now)


def make_clock(time_scale: float, start: datetime | None = None):
    """``time_scale`` 1 = real time, >1 faster, 0 = stepped (deterministic, CPU speed)."""
    if time_scale == 0:
        return SteppedClock(start)
    if time_scale == 1 and start is None:
        return RealClock()
    return ScaledClock(time_scale, start)
