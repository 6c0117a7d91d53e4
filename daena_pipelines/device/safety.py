"""Local safety limits and the command/abort state machines (pure: readings in, bytes out).

Whatever a proposal says, the sidecar refuses commands outside these limits, trips an abort
when BT/ET pass their ceilings, and reaches a level only by single steps that are each confirmed
against a later status.
"""
from __future__ import annotations

from dataclasses import dataclass

from daena_pipelines.device import protocol as p

COMMAND_TYPES = ("SET_POWER", "SET_FAN", "SET_DRUM", "ABORT", "PREHEAT", "CHARGE", "DROP")
LEVEL_COMMANDS = ("SET_POWER", "SET_FAN", "SET_DRUM")
LEVEL_UNITS = (None, "r1_level", "level")
HEATER_UP_STATES = (p.State.ROASTING,)  # preheat/charge heat is the R1's own controller's job
# PRS-driven commands: the state they start from and the state that confirms them
TP_GRACE_S = 90.0  # after CHARGE the probe still reads the preheated drum until the turning point
PRS_TRANSITIONS = {
    "PREHEAT": (p.State.OFF, p.State.PREHEATING),
    "CHARGE": (p.State.CHARGE, p.State.ROASTING),
    "DROP": (p.State.ROASTING, p.State.COOLING),
}


@dataclass(frozen=True)
class SafetyLimits:
    heater_range: tuple[int, int] = p.HEATER_RANGE
    fan_range: tuple[int, int] = p.FAN_RANGE
    drum_range: tuple[int, int] = p.DRUM_RANGE
    max_bt_c: float = 235.0  # beans are past any roast level; trip (checked from TP_GRACE_S after CHARGE)
    max_et_c: float = 320.0  # drum/air too hot; trip
    heater_increase_margin_c: float = 10.0  # no heater increase this close to the BT ceiling
    min_step_interval_s: float = 0.5  # between two heater/fan/drum changes (abort excepted)
    step_confirm_s: float = 0.5  # a step not seen in the status by then counts as missed
    max_step_retries: int = 3
    prs_confirm_s: float = 2.0
    command_timeout_s: float = 20.0
    lost_control_s: float = 3.0  # no valid status for this long while heating: abort
    abort_timeout_s: float = 5.0


@dataclass(frozen=True)
class Command:
    proposal_id: str
    machine_id: str
    command_type: str
    target_value: float | None = None
    target_unit: str | None = None
    session_id: str | None = None


def _state(reading: p.StatusReading) -> p.State | None:
    try:
        return p.State(reading.state)
    except ValueError:
        return None


def refusal(command: Command, reading: p.StatusReading | None, bt_c: float | None, limits: SafetyLimits) -> str | None:
    """Why this command must not be sent now (None: it may run)."""
    kind = command.command_type
    if kind not in COMMAND_TYPES:
        return f"unknown command type {kind!r}"
    if kind == "ABORT":
        return None
    state = _state(reading) if reading is not None else None
    if state is None:
        return "device state unknown (no valid status); no command is sent"
    if kind in PRS_TRANSITIONS:
        start, _ = PRS_TRANSITIONS[kind]
        return None if state is start else f"{kind} needs state {start.name.lower()}, roaster is {state.name.lower()}"
    if command.target_unit not in LEVEL_UNITS:
        return f"target unit {command.target_unit!r} is not an R1 level"
    target = command.target_value
    if target is None or target != int(target):
        return f"target {target!r} is not a whole R1 level"
    ranges = dict(zip(LEVEL_COMMANDS, (limits.heater_range, limits.fan_range, limits.drum_range)))
    low, high = ranges[kind]
    if not low <= target <= high:
        return f"{kind} target {target:g} outside the allowed range {low}..{high}"
    if kind == "SET_POWER" and target > reading.heater:
        if state not in HEATER_UP_STATES:
            return f"heater increase refused while {state.name.lower()}"
        if bt_c is not None and bt_c >= limits.max_bt_c - limits.heater_increase_margin_c:
            return f"heater increase refused: BT {bt_c:.1f} °C within {limits.heater_increase_margin_c:g} °C of the {limits.max_bt_c:g} °C ceiling"
    if kind in ("SET_FAN", "SET_DRUM") and state is p.State.OFF:
        return "roaster is off"
    return None


def trip_reason(bt_c: float, et_c: float, limits: SafetyLimits, beans_in_drum: bool) -> str | None:
    """A reason to abort now. The BT ceiling is about beans: in an empty, preheated drum the bean
    probe reads hot air, so it only counts while beans are in (from the turning point to DROP)."""
    if beans_in_drum and bt_c > limits.max_bt_c:
        return f"BT {bt_c:.1f} °C above the {limits.max_bt_c:g} °C ceiling"
    if et_c > limits.max_et_c:
        return f"ET {et_c:.1f} °C above the {limits.max_et_c:g} °C ceiling"
    return None


class Execution:
    """Drives one approved command to completion, one write per poll cycle at most.

    ``advance(reading, now)`` returns the bytes to send this cycle (or None) and sets ``status``
    to COMPLETED/FAILED/TIMEOUT when finished, with ``observed_value`` and ``error``.
    """

    def __init__(self, command: Command, now: float, limits: SafetyLimits, last_change_at: float):
        self.command = command
        self.limits = limits
        self.started = now
        self.status = "EXECUTING"
        self.observed_value: float | None = None
        self.error: str | None = None
        self.finished: float | None = None
        self.last_change_at = last_change_at  # shared spacing of level changes across commands
        self._sent_at: float | None = None
        self._level_at_send: int | None = None
        self._misses = 0

    def _finish(self, status: str, now: float, observed: float | None, error: str | None = None) -> None:
        self.status, self.finished, self.observed_value, self.error = status, now, observed, error

    def complete(self, now: float, observed: float | None) -> None:
        if self.status == "EXECUTING":
            self._finish("COMPLETED", now, observed)

    def abort(self, now: float, reason: str) -> None:
        if self.status == "EXECUTING":
            self._finish("ABORTED", now, None, reason)

    def fail(self, now: float, reason: str) -> None:
        if self.status == "EXECUTING":
            self._finish("FAILED", now, None, reason)

    def advance(self, reading: p.StatusReading, now: float) -> bytes | None:
        kind = self.command.command_type
        if kind in PRS_TRANSITIONS:
            return self._advance_prs(reading, now)
        level = {"SET_POWER": reading.heater, "SET_FAN": reading.fan, "SET_DRUM": reading.drum}[kind]
        target = int(self.command.target_value)
        if level == target:
            self._finish("COMPLETED", now, level)
            return None
        if now - self.started > self.limits.command_timeout_s:
            self._finish("TIMEOUT", now, level, f"level {level} after {self.limits.command_timeout_s:g} s, target {target}")
            return None
        if self._sent_at is not None:
            if level != self._level_at_send:
                self._sent_at, self._misses = None, 0
            elif now - self._sent_at < self.limits.step_confirm_s:
                return None  # wait for the status to show the step
            else:
                self._misses += 1
                self._sent_at = None
                if self._misses > self.limits.max_step_retries:
                    self._finish("FAILED", now, level, f"{self.limits.max_step_retries + 1} steps sent, level stayed at {level} (target {target})")
                    return None
        if now - self.last_change_at < self.limits.min_step_interval_s:
            return None
        self._sent_at, self._level_at_send, self.last_change_at = now, level, now
        if kind == "SET_DRUM":
            return p.drum_command(target)
        up = target > level
        if kind == "SET_POWER":
            return p.HEATER_UP if up else p.HEATER_DOWN
        return p.FAN_UP if up else p.FAN_DOWN

    def _advance_prs(self, reading: p.StatusReading, now: float) -> bytes | None:
        start, goal = PRS_TRANSITIONS[self.command.command_type]
        if reading.state == goal:
            self._finish("COMPLETED", now, float(reading.state))
            return None
        if self._sent_at is None:
            self._sent_at = now
            return p.PRS
        if reading.state != start:
            self._finish("FAILED", now, float(reading.state), f"state went to 0x{reading.state:02x}, expected {goal.name.lower()}")
        elif now - self._sent_at > self.limits.prs_confirm_s:
            # PRS is not idempotent (a late second press would advance twice), so no retry
            self._finish("FAILED", now, float(reading.state), f"PRS not confirmed within {self.limits.prs_confirm_s:g} s")
        return None


class Abort:
    """Heater to 0 (one step per cycle, no spacing), then PRS until the R1 reports cooling/off."""

    SAFE_STATES = (p.State.COOLING, p.State.SHUTDOWN, p.State.OFF)

    def __init__(self, reason: str, requested_at: float, limits: SafetyLimits):
        self.reason = reason
        self.requested_at = requested_at
        self.limits = limits
        self.confirmed_at: float | None = None
        self.failed: str | None = None
        self._last_heater: int | None = None
        self._heater_misses = 0
        self._prs_sent_at: float | None = None
        self._prs_state: int | None = None

    @property
    def done(self) -> bool:
        return self.confirmed_at is not None or self.failed is not None

    @property
    def latency_s(self) -> float | None:
        return None if self.confirmed_at is None else self.confirmed_at - self.requested_at

    def advance(self, reading: p.StatusReading, now: float) -> bytes | None:
        state = _state(reading)
        if reading.heater == 0 and state in self.SAFE_STATES:
            self.confirmed_at = now
            return None
        if now - self.requested_at > self.limits.abort_timeout_s:
            self.failed = f"abort not confirmed after {self.limits.abort_timeout_s:g} s (heater {reading.heater}, state 0x{reading.state:02x})"
            return None
        if reading.heater > 0 and self._heater_misses < self.limits.max_step_retries:
            if self._last_heater is not None and reading.heater >= self._last_heater:
                self._heater_misses += 1
            self._last_heater = reading.heater
            return p.HEATER_DOWN
        if state not in self.SAFE_STATES:
            # one press per observed state (walks preheat -> charge -> roasting -> cooling),
            # pressed again only when the last press was not seen in time
            state_moved = self._prs_state is not None and reading.state != self._prs_state
            missed = self._prs_sent_at is not None and now - self._prs_sent_at > self.limits.step_confirm_s
            if self._prs_sent_at is None or state_moved or missed:
                self._prs_sent_at, self._prs_state = now, reading.state
                return p.PRS
            return None
        return p.HEATER_DOWN  # in a safe state but the heater still reports a level
