"""Aillio Bullet R1 USB protocol: identifiers, command bytes and status/info decoding (pure).

Facts from ../shared/spec/bullet-r1-usb.md, restated in docs/device.md. Everything here works
on plain bytes so it can be tested against hand-built packets.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

VENDOR_ID = 0x0483
PRODUCT_IDS = {0x5741: "Aillio Bullet R1", 0xA27E: "Aillio Bullet R1 IBTS (rev3)"}
CONFIGURATION = 1
INTERFACE = 1
EP_OUT = 0x03
EP_IN = 0x81

# Requests (written to EP_OUT) and the reply size read from EP_IN.
INFO_REQUEST = bytes([0x30, 0x02])
INFO_REPLY_LEN = 32
ROAST_COUNT_REQUEST = bytes([0x89, 0x01])
ROAST_COUNT_REPLY_LEN = 36
STATUS_REQUEST_1 = bytes([0x30, 0x01])
STATUS_REQUEST_2 = bytes([0x30, 0x03])
STATUS_HALF_LEN = 64
STATUS_LEN = 2 * STATUS_HALF_LEN

HEATER_UP = bytes([0x34, 0x01, 0xAA, 0xAA])
HEATER_DOWN = bytes([0x34, 0x02, 0xAA, 0xAA])
FAN_UP = bytes([0x31, 0x01, 0xAA, 0xAA])
FAN_DOWN = bytes([0x31, 0x02, 0xAA, 0xAA])
PRS = bytes([0x30, 0x01, 0x00, 0x00])
DRUM_PREFIX = bytes([0x32, 0x01])

HEATER_RANGE = (0, 9)
FAN_RANGE = (1, 12)
DRUM_RANGE = (1, 9)

VALID_MARKER_OFFSET = 41
VALID_MARKER = 10


class State(IntEnum):
    OFF = 0x00
    PREHEATING = 0x02
    CHARGE = 0x04
    ROASTING = 0x06
    COOLING = 0x08
    SHUTDOWN = 0x09


def state_name(states: type[IntEnum], code: int) -> str:
    try:
        return states(code).name.lower()
    except ValueError:
        return f"unknown_0x{code:02x}"


def drum_command(level: int) -> bytes:
    """Absolute drum speed command; the R1 accepts levels 1..9."""
    if not DRUM_RANGE[0] <= level <= DRUM_RANGE[1]:
        raise ValueError(f"drum level {level} outside {DRUM_RANGE[0]}..{DRUM_RANGE[1]}")
    return DRUM_PREFIX + bytes([level, 0x00])


@dataclass(frozen=True)
class DeviceInfo:
    serial: int
    firmware: int
    roast_count: int | None


def decode_info(info_reply: bytes, roast_count_reply: bytes | None) -> DeviceInfo:
    if len(info_reply) < INFO_REPLY_LEN:
        raise ValueError(f"info reply has {len(info_reply)} bytes, expected {INFO_REPLY_LEN}")
    serial = struct.unpack_from("<h", info_reply, 0)[0]
    firmware = struct.unpack_from("<h", info_reply, 24)[0]
    roast_count = None
    if roast_count_reply is not None and len(roast_count_reply) >= 31:
        roast_count = struct.unpack_from(">I", roast_count_reply, 27)[0]
    return DeviceInfo(serial=serial, firmware=firmware, roast_count=roast_count)


@dataclass(frozen=True)
class StatusReading:
    """One decoded 128-byte status. Temperatures °C rounded to 0.1; channel names as on the wire."""

    channel_a_c: float
    ror_a_c_per_min: float
    channel_b_c: float
    exhaust_c: float
    timer_s: int
    fan: int
    heater: int
    drum: int
    state: int
    ir_c: float
    pcb_c: float
    fan_rpm: int
    voltage: int
    coil_fan: int
    coil_fan2: int
    preheat_target_c: int

    @property
    def state_name(self) -> str:
        return state_name(State, self.state)


class InvalidStatus(ValueError):
    """A status buffer that must not be used as a reading (short, idle message, nonsense)."""

    def __init__(self, message: str, idle_message: bool = False):
        super().__init__(message)
        self.idle_message = idle_message  # the R1's interleaved idle message, expected while off


def _temp(buf: bytes, offset: int) -> float:
    return round(struct.unpack_from("<f", buf, offset)[0], 1)


def decode_status(buf: bytes) -> StatusReading:
    """Decode the two concatenated 64-byte replies; raise ``InvalidStatus`` if they are unusable."""
    if len(buf) != STATUS_LEN:
        raise InvalidStatus(f"status is {len(buf)} bytes, expected {STATUS_LEN}")
    if buf[VALID_MARKER_OFFSET] != VALID_MARKER:
        raise InvalidStatus(f"validity marker is {buf[VALID_MARKER_OFFSET]}, expected {VALID_MARKER}", idle_message=True)
    reading = StatusReading(
        channel_a_c=_temp(buf, 0),
        ror_a_c_per_min=_temp(buf, 4),
        channel_b_c=_temp(buf, 8),
        exhaust_c=_temp(buf, 16),
        timer_s=buf[24] * 60 + buf[25],
        fan=buf[26],
        heater=buf[27],
        drum=buf[28],
        state=buf[29],
        ir_c=_temp(buf, 32),
        pcb_c=_temp(buf, 36),
        fan_rpm=struct.unpack_from("<h", buf, 44)[0],
        voltage=struct.unpack_from("<h", buf, 48)[0],
        coil_fan=struct.unpack_from("<i", buf, 52)[0],
        coil_fan2=struct.unpack_from("<i", buf, 96)[0],
        preheat_target_c=struct.unpack_from("<H", buf, 104)[0],
    )
    # A marker of 10 with impossible values is still garbage (e.g. a half-written buffer).
    for name in ("channel_a_c", "channel_b_c"):
        value = getattr(reading, name)
        if not -40.0 <= value <= 600.0:
            raise InvalidStatus(f"{name} = {value} is outside -40..600 °C")
    if reading.heater > HEATER_RANGE[1] or reading.fan > FAN_RANGE[1] or reading.drum > DRUM_RANGE[1]:
        raise InvalidStatus(f"levels out of range: heater {reading.heater} fan {reading.fan} drum {reading.drum}")
    return reading


def encode_status(reading: StatusReading) -> bytes:
    """The inverse of ``decode_status`` (the virtual R1 answers with it; tests build packets with it)."""
    buf = bytearray(STATUS_LEN)
    struct.pack_into("<f", buf, 0, reading.channel_a_c)
    struct.pack_into("<f", buf, 4, reading.ror_a_c_per_min)
    struct.pack_into("<f", buf, 8, reading.channel_b_c)
    struct.pack_into("<f", buf, 16, reading.exhaust_c)
    buf[24], buf[25] = divmod(min(reading.timer_s, 255 * 60 + 59), 60)
    buf[26], buf[27], buf[28], buf[29] = reading.fan, reading.heater, reading.drum, reading.state
    struct.pack_into("<f", buf, 32, reading.ir_c)
    struct.pack_into("<f", buf, 36, reading.pcb_c)
    buf[VALID_MARKER_OFFSET] = VALID_MARKER
    struct.pack_into("<h", buf, 44, reading.fan_rpm)
    struct.pack_into("<h", buf, 48, reading.voltage)
    struct.pack_into("<i", buf, 52, reading.coil_fan)
    struct.pack_into("<i", buf, 96, reading.coil_fan2)
    struct.pack_into("<H", buf, 104, reading.preheat_target_c)
    return bytes(buf)
