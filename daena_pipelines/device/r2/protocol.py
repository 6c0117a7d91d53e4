"""Aillio Bullet R2 USB protocol: identifiers, framed commands with CRC32, frame decoding (pure).

Facts read in Artisan's R2 driver (src/artisanlib/aillio_r2.py), restated in docs/device.md
("Bullet R2"). Unlike the R1 the R2 is not polled: it sends 64-byte frames on its own, the first
byte naming the frame type, and every command carries a CRC32 in its last four bytes.
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from enum import IntEnum

from daena_pipelines.device.protocol import (  # noqa: F401 (the R2 uses the R1's bodies and vendor id)
    FAN_DOWN, FAN_UP, HEATER_DOWN, HEATER_UP, PRS, VENDOR_ID, state_name,
)

PRODUCT_ID = 0xA4CD
PRODUCT_IDS = {PRODUCT_ID: "Aillio Bullet R2"}
CONFIGURATION = 1
INTERFACE = 1
FRAME_LEN = 64

HEATER_RANGE = (0, 14)
FAN_RANGE = (1, 12)
DRUM_RANGE = (1, 9)
PREHEAT_RANGE_C = (20, 350)  # what Artisan lets a user ask for

# Command bodies: the R1's PRS and heater/fan steps, drum steps and the preheat set-point; on the
# wire each is followed by its CRC32 (``frame_command``).
DRUM_UP = bytes([0x32, 0x01, 0xAA, 0xAA])
DRUM_DOWN = bytes([0x32, 0x02, 0xAA, 0xAA])
PREHEAT_OPCODE = bytes([0x35, 0x00])
COMMAND_BODY_LEN = 4
COMMAND_LEN = COMMAND_BODY_LEN + 4


class FrameType(IntEnum):
    TEMPERATURE = 0xA0
    FANS = 0xA1  # fan duties/speeds and error slots
    POWER = 0xA2
    A3 = 0xA3  # named by Artisan, contents unknown
    A4 = 0xA4


class State(IntEnum):
    """The state-machine byte (offset 59 of the temperature frame), named as Artisan names them."""

    OFF = 0x00
    PREHEATING = 0x02
    STABILIZING = 0x03
    CHARGE = 0x04  # ready to roast: waiting for the beans
    ROASTING = 0x06
    COOLDOWN = 0x07  # what PRS leads to from roasting
    COOLING = 0x08  # Artisan also calls this code "back to back"
    SHUTDOWN = 0x09
    POWER_ON_RESET = 0x0B


# ----- CRC32 -----------------------------------------------------------------------------------
# The check Artisan's driver computes: polynomial 0x04C11DB7 (MSB first, no reflection), register
# starting at 0xFFFFFFFF, no final XOR, fed 32-bit big-endian words; after XOR-ing in each word the
# register advances only four 4-bit steps (16 bits), not eight. So this is NOT CRC-32/MPEG-2 and not
# zlib's CRC-32 (docs/device.md has the numbers).
CRC_POLY = 0x04C11DB7
CRC_STEPS_PER_WORD = 4


def _nibble_table() -> tuple[int, ...]:
    table = []
    for nibble in range(16):
        crc = nibble << 28
        for _ in range(4):
            crc = ((crc << 1) ^ CRC_POLY) if crc & 0x80000000 else crc << 1
        table.append(crc & 0xFFFFFFFF)
    return tuple(table)


_NIBBLE_TABLE = _nibble_table()


def crc32(data: bytes) -> int:
    if len(data) % 4:
        raise ValueError(f"the R2 CRC runs over whole 32-bit words; got {len(data)} bytes")
    crc = 0xFFFFFFFF
    for (word,) in struct.iter_unpack(">I", data):
        crc ^= word
        for _ in range(CRC_STEPS_PER_WORD):
            crc = ((crc << 4) & 0xFFFFFFFF) ^ _NIBBLE_TABLE[crc >> 28]
    return crc


def frame_command(body: bytes) -> bytes:
    """Body + CRC32 (little-endian) of the body followed by four zero bytes (the CRC's own slot)."""
    if len(body) != COMMAND_BODY_LEN:
        raise ValueError(f"an R2 command body has {COMMAND_BODY_LEN} bytes, got {len(body)}")
    return body + struct.pack("<I", crc32(body + bytes(4)))


def command_crc_ok(data: bytes) -> bool:
    """True when ``data`` is an 8-byte command whose last four bytes are its CRC."""
    return len(data) == COMMAND_LEN and frame_command(data[:COMMAND_BODY_LEN]) == bytes(data)


def preheat_command_body(target_c: int) -> bytes:
    """Preheat set-point: opcode 35 00, then the temperature as a big-endian uint16 (°C)."""
    low, high = PREHEAT_RANGE_C
    if not low <= target_c <= high:
        raise ValueError(f"preheat target {target_c} °C outside {low}..{high}")
    return PREHEAT_OPCODE + struct.pack(">H", target_c)


def preheat_target_c(body: bytes) -> int | None:
    """The set-point of a preheat command body, None for any other command."""
    return struct.unpack(">H", body[2:4])[0] if body[:2] == PREHEAT_OPCODE else None


# ----- frames ----------------------------------------------------------------------------------
class InvalidFrame(ValueError):
    """Bytes that must not be used as a reading (short, unknown type, impossible values)."""


@dataclass(frozen=True)
class TemperatureFrame:
    """Frame 0xA0. Temperatures °C, RoR °C/min; units the driver does not name are marked unknown."""

    ibts_c: float  # infrared bean temperature, f32 @4 (rounded to 0.1)
    ibts_ror_c_per_min: float  # f32 @8 (rounded to 0.1)
    ibts_ambient_c: float  # f32 @12
    bean_probe_c: float  # f32 @16 (rounded to 0.1)
    bean_probe_ror_c_per_min: float  # f32 @20
    energy_used: float  # f32 @24, this roast; unit not stated by the source
    differential_pressure: float  # f32 @28, unit not stated
    exhaust_fan_rpm: int  # u16 @32
    inlet_c: float  # u16/10 @34
    hot_air_c: float  # u16/10 @36
    exhaust_c: float  # u16/10 @38
    atmospheric_pressure: float  # u16/10 @40 (hPa by magnitude; unit not stated)
    humidity_pct: float  # u16/10 @42 (relative humidity by magnitude)
    humidity_sensor_c: float  # u16/10 @44
    timer_min: int  # @46
    crack_mark_button: int  # @47
    timer_s: int  # @48
    heater: int  # @50, power setting 0..14
    fan: int  # @51
    hot_air_setting: int  # @52
    drum: int  # @53
    r_count: int  # @54, meaning unknown
    fc_sample_index: int  # @55
    crack_count: int  # @56, first-crack cracks counted by the roaster
    roasting_method: int  # @57, manual or recipe
    status: int  # @58
    state: int  # @59

    @property
    def state_name(self) -> str:
        return state_name(State, self.state)


_A0_LAYOUT = (  # (field, offset, kind) in TemperatureFrame order; kind: f32[digits] | u16/scale | u8
    ("ibts_c", 4, "f1"), ("ibts_ror_c_per_min", 8, "f1"), ("ibts_ambient_c", 12, "f"),
    ("bean_probe_c", 16, "f1"), ("bean_probe_ror_c_per_min", 20, "f"), ("energy_used", 24, "f"),
    ("differential_pressure", 28, "f"), ("exhaust_fan_rpm", 32, "H"), ("inlet_c", 34, "H10"),
    ("hot_air_c", 36, "H10"), ("exhaust_c", 38, "H10"), ("atmospheric_pressure", 40, "H10"),
    ("humidity_pct", 42, "H10"), ("humidity_sensor_c", 44, "H10"), ("timer_min", 46, "B"),
    ("crack_mark_button", 47, "B"), ("timer_s", 48, "B"), ("heater", 50, "B"), ("fan", 51, "B"),
    ("hot_air_setting", 52, "B"), ("drum", 53, "B"), ("r_count", 54, "B"), ("fc_sample_index", 55, "B"),
    ("crack_count", 56, "B"), ("roasting_method", 57, "B"), ("status", 58, "B"), ("state", 59, "B"),
)


@dataclass(frozen=True)
class FansFrame:
    """Frame 0xA1: error slots, duties and speeds (rpm) of the fans and the drum."""

    error_count: int  # @4
    error1_category: int  # @8; then type @9, info @10, value @11
    error1_type: int
    error1_info: int
    error1_value: int
    error2_category: int  # @12..15, same layout
    error2_type: int
    error2_info: int
    error2_value: int
    coil_fan1_duty: int  # u16 @16
    coil_fan2_duty: int  # u16 @18
    exhaust_blower_duty: int  # u16 @28
    coil_fan1_rpm: int  # u16 @34
    coil_fan2_rpm: int  # u16 @36
    ibts_fan_rpm: int  # u16 @46
    drum_rpm: int  # u16 @48
    control_board_critical: int  # u16 @52
    buttons: int  # u16 @58


_A1_LAYOUT = (
    ("error_count", 4, "B"), ("error1_category", 8, "B"), ("error1_type", 9, "B"), ("error1_info", 10, "B"),
    ("error1_value", 11, "B"), ("error2_category", 12, "B"), ("error2_type", 13, "B"), ("error2_info", 14, "B"),
    ("error2_value", 15, "B"), ("coil_fan1_duty", 16, "H"), ("coil_fan2_duty", 18, "H"),
    ("exhaust_blower_duty", 28, "H"), ("coil_fan1_rpm", 34, "H"), ("coil_fan2_rpm", 36, "H"),
    ("ibts_fan_rpm", 46, "H"), ("drum_rpm", 48, "H"), ("control_board_critical", 52, "H"), ("buttons", 58, "H"),
)


@dataclass(frozen=True)
class PowerFrame:
    """Frame 0xA2: the induction supply."""

    power_setpoint_w: int  # u16 @4
    line_frequency_hz: float  # u16/100 @6
    igbt_temp1_c: float  # u16/10 @12
    igbt_temp2_c: float  # u16/10 @14
    active_power_w: float  # u16/10 @22
    voltage_rms_v: float  # u16/10 @28
    current_rms_a: float  # u16/1000 @30


_A2_LAYOUT = (
    ("power_setpoint_w", 4, "H"), ("line_frequency_hz", 6, "H100"), ("igbt_temp1_c", 12, "H10"),
    ("igbt_temp2_c", 14, "H10"), ("active_power_w", 22, "H10"), ("voltage_rms_v", 28, "H10"),
    ("current_rms_a", 30, "H1000"),
)

LAYOUTS = {FrameType.TEMPERATURE: (TemperatureFrame, _A0_LAYOUT), FrameType.FANS: (FansFrame, _A1_LAYOUT),
           FrameType.POWER: (PowerFrame, _A2_LAYOUT)}


def _read(buf: bytes, offset: int, kind: str):
    if kind[0] == "f":
        value = struct.unpack_from("<f", buf, offset)[0]
        return round(value, int(kind[1:])) if len(kind) > 1 and math.isfinite(value) else value
    if kind[0] == "H":
        raw = struct.unpack_from("<H", buf, offset)[0]
        return raw / int(kind[1:]) if len(kind) > 1 else raw
    return buf[offset]


def _write(buf: bytearray, offset: int, kind: str, value) -> None:
    if kind[0] == "f":
        struct.pack_into("<f", buf, offset, value)
    elif kind[0] == "H":
        scale = int(kind[1:]) if len(kind) > 1 else 1
        struct.pack_into("<H", buf, offset, max(0, min(0xFFFF, round(value * scale))))
    else:
        buf[offset] = int(value)


def frame_type(buf: bytes) -> int:
    if len(buf) != FRAME_LEN:
        raise InvalidFrame(f"frame is {len(buf)} bytes, expected {FRAME_LEN}")
    return buf[0]


def decode(buf: bytes):
    """Decode a 0xA0/0xA1/0xA2 frame into its dataclass; raise ``InvalidFrame`` for a short frame, an undecoded
    type or a level beyond its range. The CRC is the driver's to check (``frame_crc_ok``)."""
    kind = frame_type(buf)
    if kind not in LAYOUTS:
        raise InvalidFrame(f"frame type 0x{kind:02x} is not decoded")
    frame_class, layout = LAYOUTS[kind]
    frame = frame_class(**{name: _read(buf, offset, fmt) for name, offset, fmt in layout})
    # an impossible temperature is no sign of garbage here: the driver screens it as a failed probe
    if isinstance(frame, TemperatureFrame):
        if frame.heater > HEATER_RANGE[1] or frame.fan > FAN_RANGE[1] or frame.drum > DRUM_RANGE[1]:
            raise InvalidFrame(f"levels out of range: heater {frame.heater} fan {frame.fan} drum {frame.drum}")
    return frame


def frame_crc(buf: bytes) -> int:
    """The CRC32 of a frame as a command's is computed: bytes 0..59 and four zero bytes in place of its slot."""
    return crc32(bytes(buf[: FRAME_LEN - 4]) + bytes(4))


def frame_crc_ok(buf: bytes) -> bool:
    """Bytes 60..63 hold the frame's CRC, little-endian (the check Artisan's driver has but leaves unused)."""
    return len(buf) == FRAME_LEN and struct.unpack_from("<I", buf, FRAME_LEN - 4)[0] == frame_crc(buf)


def encode(frame) -> bytes:
    """The inverse of ``decode`` (the virtual R2 sends these). Bytes 60..63 get the frame's CRC32: Artisan
    never reads them; we assume they hold one computed like a command's (unverified on hardware)."""
    kind = next(k for k, (frame_class, _) in LAYOUTS.items() if isinstance(frame, frame_class))
    buf = bytearray(FRAME_LEN)
    buf[0] = kind
    for name, offset, fmt in LAYOUTS[kind][1]:
        _write(buf, offset, fmt, getattr(frame, name))
    struct.pack_into("<I", buf, FRAME_LEN - 4, frame_crc(buf))
    return bytes(buf)


@dataclass(frozen=True)
class Reading:
    """One R2 reading: the newest temperature frame with the latest fans and power frames (None
    until the first one arrived)."""

    temperature: TemperatureFrame
    fans: FansFrame | None = None
    power: PowerFrame | None = None
