"""Local safety limits, approval checks and the command/abort state machines (pure: statuses in, actions out).

Whatever a proposal says, the sidecar refuses approvals that are stale or for another roaster,
commands outside these limits, trips an abort when BT/ET pass their ceilings, and reaches a level
only by single steps that are each confirmed against a later status.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from daena_pipelines.device import contract
from daena_pipelines.device import roaster as r
from daena_pipelines.device.roaster import SAFE_STATES, State, Status

COMMAND_TYPES = ("SET_POWER", "SET_FAN", "SET_DRUM", "ABORT", "PREHEAT", "CHARGE", "DROP")
LEVEL_COMMANDS = ("SET_POWER", "SET_FAN", "SET_DRUM")
MODEL_LEVEL_UNITS = ("r1_level", "r2_level")  # a level in one model's steps: refused on the other (R2 9 of 14 is not R1 9 of 9)
LEVEL_UNITS = (None, "level")  # the connected roaster's own steps, whatever its model
HEATER_UP_STATES = (State.ROASTING,)  # preheat/charge heat is the R1's own controller's job
# PRS-driven commands: the state they start from and the state that confirms them
TP_GRACE_S = 90.0  # after CHARGE the probe still reads the preheated drum until the turning point
PRS_TRANSITIONS = {
    "PREHEAT": (State.OFF, State.PREHEATING),
    "CHARGE": (State.CHARGE, State.ROASTING),
    "DROP": (State.ROASTING, State.COOLING),
}


@dataclass(frozen=True)
class SafetyLimits:
    """Local limits. The level ranges default to the model's own (R1 heater 0..9, R2 0..14), filled in
    when a roaster is opened (``within_model``); a range set here is narrowed to the model's, never
    widened. Unresolved ranges (None) refuse every level command."""

    heater_range: tuple[int, int] | None = None
    fan_range: tuple[int, int] | None = None
    drum_range: tuple[int, int] | None = None
    level_unit: str | None = None  # the model's (ModelLimits.level_unit), set by within_model: never from settings
    max_bt_c: float = 235.0  # beans are past any roast level; trip (checked from TP_GRACE_S after CHARGE)
    max_et_c: float = 320.0  # drum/air too hot; trip
    heater_increase_margin_c: float = 10.0  # no heater increase this close to the BT ceiling
    min_step_interval_s: float = 0.5  # between two heater/fan/drum changes (abort excepted)
    step_confirm_s: float = 0.5  # a step not seen in the status by then counts as missed
    max_step_retries: int = 3
    prs_confirm_s: float = 2.0
    command_timeout_s: float = contract.COMMAND_TIMEOUT_S
    lost_control_s: float = 3.0  # no valid status for this long while heating: abort
    abort_overdue_s: float = 5.0  # reachable time after which an unconfirmed abort is reported overdue (it keeps going)
    # heater 0 in a safe state must hold this long in consecutive statuses to count as confirmed: no status
    # carries a checksum we can check, so one corrupt status must not end an abort; longer than the R2
    # driver's reuse of one reading (<= 0.3 s)
    safe_confirm_s: float = 0.4
    # a probe reading what no working probe reads (roaster.screen_probes) in every status for this long has failed:
    # the abort runs. Shorter, one implausible reading must not stop a roast; the same 0.4 s as safe_confirm_s,
    # longer than the R2 driver's reuse of one frame, so one bad frame never counts as a failure
    probe_fault_confirm_s: float = 0.4

    def __post_init__(self):
        # a NaN or infinite limit switches off what it guards, silently (no temperature is above a NaN ceiling), and
        # a negative time passes at once (one status would confirm the roaster safe)
        bad = [f.name for f in fields(self) if isinstance(getattr(self, f.name), (int, float))
               and not (math.isfinite(getattr(self, f.name)) and getattr(self, f.name) >= 0)]
        if bad:
            raise ValueError(f"safety limits must be finite numbers >= 0: {', '.join(bad)}")
        if self.command_timeout_s > contract.MAX_COMMAND_TIMEOUT_S:
            raise ValueError(f"command_timeout_s {self.command_timeout_s:g} s is over {contract.MAX_COMMAND_TIMEOUT_S:g} s, "
                             "longer than a whole roast: a command would never time out")

    def within_model(self, model: r.ModelLimits) -> "SafetyLimits":
        def narrow(mine, theirs):
            return theirs if mine is None else (max(mine[0], theirs[0]), min(mine[1], theirs[1]))

        return SafetyLimits(**{**self.__dict__, "heater_range": narrow(self.heater_range, model.heater_range),
                               "fan_range": narrow(self.fan_range, model.fan_range),
                               "drum_range": narrow(self.drum_range, model.drum_range), "level_unit": model.level_unit})


@dataclass(frozen=True)
class Command:
    proposal_id: str
    machine_id: str
    command_type: str
    target_value: float | None = None
    target_unit: str | None = None
    session_id: str | None = None  # the live session it was approved for; None: session-less
    roaster_serial: str | None = None  # the roaster it was approved for
    approved_at: datetime | None = None
    expires_at: datetime | None = None  # None: approved_at + the sidecar's approval_ttl_s
    revoked: str | None = None  # why the approval ended before its expiry (its queue row deleted or closed by others)


# how far an approval's time may lie ahead of this host's clock (two NTP-synced hosts agree within far less)
CLOCK_SKEW_S = 5.0


def _dated_ahead(command: Command, now: datetime) -> str | None:
    """Why an approval's time cannot be judged: it lies ahead of this host's clock (the approval service's clock is
    ahead, or this one was stepped back), so its age, its expiry and the session it was given in are all unknown."""
    if command.approved_at is not None and command.approved_at > now + timedelta(seconds=CLOCK_SKEW_S):
        return (f"approved_at {command.approved_at.isoformat(timespec='seconds')} is "
                f"{(command.approved_at - now).total_seconds():.0f} s in the future on this host's clock "
                "(the clocks disagree or one jumped): its age is unknown")
    return None


def approval_end(command: Command, ttl_s: float) -> datetime | None:
    """When the approval stops authorising anything (None: never approved)."""
    return None if command.approved_at is None else command.expires_at or command.approved_at + timedelta(seconds=ttl_s)


def ended_approval(command: Command, now: datetime, ttl_s: float) -> str | None:
    """Why a running command's approval no longer holds (revoked or past its expiry), else None."""
    if command.revoked:
        return f"approval revoked ({command.revoked})"
    if ahead := _dated_ahead(command, now):
        return ahead
    expires = approval_end(command, ttl_s)
    if expires is not None and now >= expires:
        return f"approval expired at {expires.isoformat(timespec='seconds')}"
    return None


def approval_refusal(command: Command, now: datetime, session_started: datetime, session_id: str,
                     serial: str, ttl_s: float) -> tuple[str, str] | None:
    """(status, reason) when an approved command must not run in this session on this roaster.

    EXPIRED: the approval is stale (past its expiry, no approval time, or a session-less approval
    given before this session started: it was meant for an earlier session; or dated ahead of this host's clock,
    so its age is unknown; an ABORT excepted). FAILED: the approval is
    for another roaster or names none. Wall-clock times, UTC."""
    if command.approved_at is None:
        return "EXPIRED", "approval has no approved_at time, so its age is unknown"
    # an ABORT's age does not matter: stale or not it only drives the roaster towards heater 0 and cooling
    if command.command_type != "ABORT" and (ahead := _dated_ahead(command, now)):
        return "EXPIRED", ahead
    expires = approval_end(command, ttl_s)
    if now >= expires:
        return "EXPIRED", (f"approval expired at {expires.isoformat(timespec='seconds')} "
                           f"(approved {command.approved_at.isoformat(timespec='seconds')}, "
                           f"{(now - command.approved_at).total_seconds():.0f} s ago)")
    if command.session_id is None and command.approved_at < session_started:
        return "EXPIRED", (f"session-less approval given at {command.approved_at.isoformat(timespec='seconds')}, "
                           f"before this session started at {session_started.isoformat(timespec='seconds')}: "
                           "a session-less approval holds only for the session live when it was approved")
    if command.session_id is not None and command.session_id != session_id:
        return "EXPIRED", f"approved for session {command.session_id}, this session is {session_id}"
    if command.roaster_serial is None:
        return "FAILED", f"approval names no roaster serial; this roaster is serial {serial}"
    if str(command.roaster_serial) != str(serial):
        return "FAILED", f"approved for roaster serial {command.roaster_serial}, this roaster is serial {serial}"
    return None


def _state(reading: Status) -> State | None:
    try:
        return State(reading.state)
    except ValueError:
        return None


def refusal(command: Command, reading: Status | None, bt_c: float | None, limits: SafetyLimits) -> str | None:
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
    if command.target_unit in MODEL_LEVEL_UNITS and command.target_unit != limits.level_unit:
        return (f"target unit {command.target_unit!r} is another model's level; this roaster's levels are "
                f"{limits.level_unit or 'unknown (limits not resolved for the roaster model)'}")
    if command.target_unit not in (*LEVEL_UNITS, *MODEL_LEVEL_UNITS):
        return f"target unit {command.target_unit!r} is not a roaster level"
    target = command.target_value
    if target is None or not math.isfinite(target) or target != int(target):
        return f"target {target!r} is not a whole level"
    ranges = dict(zip(LEVEL_COMMANDS, (limits.heater_range, limits.fan_range, limits.drum_range)))
    if ranges[kind] is None:
        return f"no {kind} range known (limits not resolved for the roaster model)"
    low, high = ranges[kind]
    if not low <= target <= high:
        return f"{kind} target {target:g} outside the allowed range {low}..{high}"
    if kind == "SET_POWER" and target > reading.heater:
        if state not in HEATER_UP_STATES:
            return f"heater increase refused while {state.name.lower()}"
        if bt_c is not None and bt_c >= limits.max_bt_c - limits.heater_increase_margin_c:
            return f"heater increase refused: BT {bt_c:.1f} °C within {limits.heater_increase_margin_c:g} °C of the {limits.max_bt_c:g} °C ceiling"
    if kind in ("SET_FAN", "SET_DRUM") and state is State.OFF:
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


def level_of(command_type: str, reading: Status) -> int:
    """The level a SET_POWER/SET_FAN/SET_DRUM command moves, as this status shows it."""
    return {"SET_POWER": reading.heater, "SET_FAN": reading.fan, "SET_DRUM": reading.drum}[command_type]


class Execution:
    """Drives one approved command to completion, one write per poll cycle at most.

    ``advance(reading, now)`` returns the action to apply this cycle (or None) and sets ``status``
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
        self._seen: int | None = None  # the level the last status showed

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

    def advance(self, reading: Status, now: float) -> r.Action | None:
        kind = self.command.command_type
        if kind in PRS_TRANSITIONS:
            return self._advance_prs(reading, now)
        level = level_of(kind, reading)
        target = int(self.command.target_value)
        if level == target:
            self._finish("COMPLETED", now, level)
            return None
        if self._seen is not None and level != self._seen and not self._moved_by_our_step(level, target):
            # the operator at the panel (or the roaster itself) set it: theirs stands, never stepped back
            self._finish("ABORTED", now, level, f"level changed from {self._seen} to {level} by someone else (the panel "
                                                f"or the roaster itself) during execution; no further step sent")
            return None
        self._seen = level
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
            return r.drum(target)
        up = target > level
        if kind == "SET_POWER":
            return r.HEATER_UP if up else r.HEATER_DOWN
        return r.FAN_UP if up else r.FAN_DOWN

    def _moved_by_our_step(self, level: int, target: int) -> bool:
        """The step in flight explains this level: away from where it was sent, towards the target, not past it."""
        start = self._level_at_send
        return (self._sent_at is not None and (level - start) * (target - start) > 0
                and abs(level - start) <= abs(target - start))

    def _advance_prs(self, reading: Status, now: float) -> r.Action | None:
        start, goal = PRS_TRANSITIONS[self.command.command_type]
        if reading.state == goal:
            self._finish("COMPLETED", now, float(reading.state))
            return None
        if self._sent_at is None:
            self._sent_at = now
            return r.PRS
        if reading.state != start:
            self._finish("FAILED", now, float(reading.state), f"state went to 0x{reading.state:02x}, expected {goal.name.lower()}")
        elif now - self._sent_at > self.limits.prs_confirm_s:
            # PRS is not idempotent (a late second press would advance twice), so no retry
            self._finish("FAILED", now, float(reading.state), f"PRS not confirmed within {self.limits.prs_confirm_s:g} s")
        return None


def is_safe(reading: Status | None) -> bool:
    """This status shows heater 0 in a state where nothing heats."""
    return reading is not None and reading.heater == 0 and reading.state in SAFE_STATES


class SafeConfirmation:
    """Whether the roaster is confirmed safe: heater 0 in a safe state in consecutive statuses for
    ``SafetyLimits.safe_confirm_s`` (no status carries a checksum we can check, so one corrupt status
    must not count). The one rule for the abort and for the sidecar's exit: each feeds it every status
    it polls (``see``) and every poll without one (``lost``, which starts the wait again)."""

    def __init__(self, limits: SafetyLimits):
        self.confirm_s = limits.safe_confirm_s
        self.since: float | None = None  # the first of the consecutive statuses showing the roaster safe
        self.confirmed = False

    def see(self, reading: Status, now: float) -> bool:
        if not is_safe(reading):
            self.lost()
            return False
        self.since = now if self.since is None else self.since
        self.confirmed = now - self.since >= self.confirm_s
        return self.confirmed

    def lost(self) -> None:
        self.since, self.confirmed = None, False


class ProbeWatch:
    """Whether a probe has failed: every status for ``SafetyLimits.probe_fault_confirm_s`` marks the same
    kind of trouble (``Status.probe_faults``). A status whose probes read plausibly ends the suspicion; a poll
    without a status (garbled, lost) neither ends it nor counts, so a dead probe between garbled replies still
    ends in an abort. Once confirmed it stays failed for the session (``failure``: channel -> raw reading)."""

    def __init__(self, limits: SafetyLimits):
        self.confirm_s = limits.probe_fault_confirm_s
        self.since: float | None = None  # the first of the consecutive statuses with a probe fault
        self.failure: dict[str, float] | None = None
        self.failed_at: float | None = None

    def see(self, reading: Status, now: float) -> bool:
        """Feed one status; True once a probe is confirmed failed."""
        if self.failure is None:
            if not reading.probe_faults:
                self.since = None
            else:
                self.since = now if self.since is None else self.since
                if now - self.since >= self.confirm_s:
                    self.failure, self.failed_at = dict(reading.probe_faults), now
        return self.failure is not None


class Abort:
    """A process, not a timeout: heater down and PRS until a status shows heater 0 in a safe state.

    ``advance`` is called with every valid status and returns the next action (or None while
    waiting for a press to show). It never gives up by itself: the sidecar ends it only when the
    roaster is confirmed safe or gone. Its clock (``reachable_s``) advances only between valid
    statuses, so time spent unplugged or stalled does not count; past ``abort_overdue_s`` of it the
    abort is reported overdue and carries on."""

    def __init__(self, reason: str, requested_at: float, limits: SafetyLimits):
        self.reason = reason
        self.requested_at = requested_at
        self.limits = limits
        self.confirmed_at: float | None = None
        self.safe_at: float | None = None  # the first status of those that confirmed it: when the roaster was safe
        self.reachable_s = 0.0
        self.actions = 0
        self._seen_at: float | None = None
        self._last_heater: int | None = None
        self._heater_misses = 0
        self._prs_sent_at: float | None = None
        self._prs_state: int | None = None
        self.safe = SafeConfirmation(limits)  # from the first status this abort sees

    @property
    def done(self) -> bool:
        return self.confirmed_at is not None

    @property
    def overdue(self) -> bool:
        return self.confirmed_at is None and self.reachable_s > self.limits.abort_overdue_s

    @property
    def latency_s(self) -> float | None:
        """Request to the first status showing the roaster safe (confirmed ``safe_confirm_s`` later)."""
        return None if self.safe_at is None else self.safe_at - self.requested_at

    def unreachable(self) -> None:
        """No valid status this cycle: the abort's clock stops until one comes."""
        self._seen_at = None
        self.safe.lost()

    def advance(self, reading: Status, now: float) -> r.Action | None:
        if self._seen_at is not None:
            self.reachable_s += now - self._seen_at
        self._seen_at = now
        action = self._next(reading, now)
        self.actions += action is not None
        return action

    def _next(self, reading: Status, now: float) -> r.Action | None:
        if self.safe.see(reading, now):
            self.confirmed_at, self.safe_at = now, self.safe.since
        if is_safe(reading):
            return None
        state = _state(reading)
        if state is None:
            # a code we cannot place (corrupt byte, power-on reset, undocumented): where PRS leads from it is
            # unknown, and from off it starts a preheat. Only the heater may go down; the abort waits for a known state
            return r.HEATER_DOWN if reading.heater > 0 else None
        if reading.heater > 0:
            if self._last_heater is not None and reading.heater >= self._last_heater:
                self._heater_misses += 1
            else:
                self._heater_misses = 0
            self._last_heater = reading.heater
            # the heater may only step while roasting (preheat is the roaster's own controller):
            # after a few steps without effect, walk the state machine to cooling as well
            if self._heater_misses < self.limits.max_step_retries or state in SAFE_STATES:
                return r.HEATER_DOWN
        if state not in SAFE_STATES:
            # one press per observed state (walks preheat -> charge -> roasting -> cooling),
            # pressed again only when the last press was not seen in time
            state_moved = self._prs_state is not None and reading.state != self._prs_state
            missed = self._prs_sent_at is not None and now - self._prs_sent_at > self.limits.prs_confirm_s
            if self._prs_sent_at is None or state_moved or missed:
                self._prs_sent_at, self._prs_state, self._heater_misses = now, reading.state, 0
                return r.PRS
        return None
