"""The roaster-driver interface the sidecar uses: one model's USB details stay behind it.

The sidecar, the safety state machines and the recorder see only what is here: a ``RoasterModel``
opens a roaster by serial and returns a ``RoasterDriver``; the driver polls a decoded ``Status``
and applies ``Action``s (single heater/fan steps, an absolute drum level, the PRS button).
``daena_pipelines.device.driver.BULLET_R1`` is the Bullet R1; another model (the R2) plugs in by
providing the same methods. Errors a user can act on are ``DeviceError`` subclasses whose message
says what to do.
"""
from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Protocol


class State(IntEnum):
    """The sidecar's roaster states. The values are the R1's state byte; a driver for another model
    maps its own codes onto these names (and an unknown code stays an int the safety code refuses)."""

    OFF = 0x00
    PREHEATING = 0x02
    CHARGE = 0x04
    ROASTING = 0x06
    COOLING = 0x08
    SHUTDOWN = 0x09


SAFE_STATES = (State.COOLING, State.SHUTDOWN, State.OFF)  # with heater 0: nothing heats
HEATING_STATES = (State.PREHEATING, State.CHARGE, State.ROASTING)


@dataclass(frozen=True)
class ModelLimits:
    """What the model accepts (levels are inclusive ranges)."""

    heater_range: tuple[int, int]
    fan_range: tuple[int, int]
    drum_range: tuple[int, int]
    level_unit: str  # a level in this model's steps ('r1_level', 'r2_level': telemetry's control_unit)


@dataclass(frozen=True)
class DeviceInfo:
    serial: str  # as the roaster reports it; the sidecar matches approvals against it
    firmware: int | None
    roast_count: int | None


@dataclass(frozen=True)
class Status:
    """One decoded status. Temperatures °C rounded to 0.1; channel names as on the wire.

    ``extra`` holds every other decoded field (name -> number, the name carries the unit), recorded
    as extra channels. ``probe_faults``: channel ('a'/'b') -> the raw reading of a probe that reads what no
    working probe can (``screen_probes``); that channel is NaN, heater/fan/drum/state are still the roaster's."""

    channel_a_c: float
    channel_b_c: float
    exhaust_c: float
    heater: int
    fan: int
    drum: int
    state: int
    extra: Mapping[str, float] = field(default_factory=dict)
    probe_faults: Mapping[str, float] = field(default_factory=dict)

    @property
    def state_name(self) -> str:
        return state_name(State, self.state)


# A reading outside this range (°C; the low end excluded) or not a number is no temperature a working probe in a
# roaster reads: a broken or unplugged thermocouple / IR sensor (our bounds: the roaster stands in a room above
# freezing, and nothing in a roast comes near 500 °C; the ET ceiling trips at 320 °C)
PROBE_RANGE_C = (0.0, 500.0)


def screen_probes(reading: Status) -> Status:
    """The status with each channel A/B reading outside ``PROBE_RANGE_C`` (or NaN) set to NaN and kept raw in
    ``probe_faults``. Called by a driver only on a reply that passed its integrity checks (the R1's marker,
    the R2's CRC, levels in range): its heater and state are then the roaster's own, whatever the probe says."""
    low, high = PROBE_RANGE_C
    faults = {name: value for name, value in (("a", reading.channel_a_c), ("b", reading.channel_b_c))
              if not low < value <= high}  # NaN fails too
    if not faults:
        return reading
    return replace(reading, probe_faults=faults, channel_a_c=math.nan if "a" in faults else reading.channel_a_c,
                   channel_b_c=math.nan if "b" in faults else reading.channel_b_c)


def state_name(states: type[IntEnum], code: int) -> str:
    """A state code's name in lower case (``unknown_0x..`` for a code the model does not define)."""
    try:
        return states(code).name.lower()
    except ValueError:
        return f"unknown_0x{code:02x}"


@dataclass(frozen=True)
class Action:
    """One thing to do to the roaster: ``heater``/``fan`` by ``step`` (+1/-1), ``drum`` to ``level``, ``prs``."""

    kind: str
    step: int = 0
    level: int | None = None

    def describe(self) -> str:
        if self.kind == "drum":
            return f"drum {self.level}"
        return self.kind if self.kind == "prs" else f"{self.kind} {self.step:+d}"


HEATER_UP, HEATER_DOWN = Action("heater", +1), Action("heater", -1)
FAN_UP, FAN_DOWN = Action("fan", +1), Action("fan", -1)
PRS = Action("prs")


def drum(level: int) -> Action:
    return Action("drum", level=level)


class RoasterDriver(Protocol):
    """An open, claimed roaster. Every method may raise ``DeviceError`` subclasses."""

    model_name: str
    product_id: int
    info: DeviceInfo
    limits: ModelLimits

    def poll(self) -> Status:
        """One status (raises ``InvalidStatus`` for an unusable reply, ``ReadTimeout``, ``DeviceDisconnected``)."""

    def apply(self, action: Action) -> None:
        """Write one action; no confirmation here (the next statuses show whether it took)."""

    def close(self) -> None:
        """Release the roaster; never raises (it may already be unplugged)."""


class RoasterModel(Protocol):
    name: str
    limits: ModelLimits

    def open(self, serial: str | None = None, backend=None) -> RoasterDriver:
        """Open the roaster with this serial (None: the only one on the bus; several is an error)."""


class DeviceError(RuntimeError):
    """A device problem with a message meant for the operator (what happened and the fix)."""


class DeviceNotFound(DeviceError):
    pass


class WrongRoaster(DeviceError):
    """Roasters are on the bus but none has the configured serial, or several and none was chosen."""


class PermissionDenied(DeviceError):
    pass


class KernelDriverBusy(DeviceError):
    pass


class NoUsbBackend(DeviceError):
    pass


class DeviceDisconnected(DeviceError):
    pass


class ReadTimeout(DeviceError):
    pass


class InvalidStatus(ValueError):
    """A status reply that must not be used as a reading (short, idle message, nonsense)."""

    def __init__(self, message: str, idle_message: bool = False):
        super().__init__(message)
        self.idle_message = idle_message  # the roaster's interleaved idle message, expected while off
