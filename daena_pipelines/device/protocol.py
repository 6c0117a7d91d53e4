"""Aillio Bullet R1 USB protocol: identifiers, command bytes and status/info decoding (pure).

Facts from ../shared/spec/bullet-r1-usb.md, restated in docs/device.md. Everything here works
on plain bytes so it can be tested against hand-built packets.
"""
from __future__ import annotations

import struct

from daena_pipelines.device.contract import DRUM_RANGE, FAN_RANGE, HEATER_RANGE  # the R1's level ranges
from daena_pipelines.device.roaster import (  # noqa: F401 (State, state_name: the R1's names, used with this module)
    DeviceInfo, InvalidStatus, ModelLimits, State, Status, screen_probes, state_name,
)

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

VALID_MARKER_OFFSET = 41
VALID_MARKER = 10


def drum_command(level: int) -> bytes:
    """Absolute drum speed command; the R1 accepts levels 1..9."""
    if not DRUM_RANGE[0] <= level <= DRUM_RANGE[1]:
        raise ValueError(f"drum level {level} outside {DRUM_RANGE[0]}..{DRUM_RANGE[1]}")
    return DRUM_PREFIX + bytes([level, 0x00])


def decode_info(info_reply: bytes, roast_count_reply: bytes | None) -> DeviceInfo:
    if len(info_reply) < INFO_REPLY_LEN:
        raise ValueError(f"info reply has {len(info_reply)} bytes, expected {INFO_REPLY_LEN}")
    serial = struct.unpack_from("<h", info_reply, 0)[0]
    firmware = struct.unpack_from("<h", info_reply, 24)[0]
    roast_count = None
    if roast_count_reply is not None and len(roast_count_reply) >= 31:
        roast_count = struct.unpack_from(">I", roast_count_reply, 27)[0]
    return DeviceInfo(serial=str(serial), firmware=firmware, roast_count=roast_count)


# Fields beyond the sidecar's core ones: status name -> (struct format, offset). Names carry the unit.
EXTRA_FIELDS = {
    "device_ror_a_c_per_min": ("<f", 4),  # the R1's own rate of rise of channel A
    "ir_c": ("<f", 32),  # the spec warns IR and PCB may be swapped; Artisan's debug text swaps them too
    "pcb_c": ("<f", 36),
    "fan_rpm": ("<h", 44),
    "voltage": ("<h", 48),  # unit undocumented
    "coil_fan": ("<i", 52),
    "coil_fan2": ("<i", 96),  # Artisan: int32 at 32 of the second 64-byte half
    "preheat_target_c": ("<H", 104),  # Artisan: uint16 at 40 of the second half
}
TIMER_FIELD = "device_timer_s"  # bytes 24/25, minutes and seconds of the roaster's own timer
LIMITS = ModelLimits(heater_range=HEATER_RANGE, fan_range=FAN_RANGE, drum_range=DRUM_RANGE, level_unit="r1_level")


def _temp(buf: bytes, offset: int) -> float:
    return round(struct.unpack_from("<f", buf, offset)[0], 1)


def decode_status(buf: bytes) -> Status:
    """Decode the two concatenated 64-byte replies; raise ``InvalidStatus`` if they fail the integrity checks
    (length, marker, levels). A channel no working probe reads is marked in ``Status.probe_faults``."""
    if len(buf) != STATUS_LEN:
        raise InvalidStatus(f"status is {len(buf)} bytes, expected {STATUS_LEN}")
    if buf[VALID_MARKER_OFFSET] != VALID_MARKER:
        raise InvalidStatus(f"validity marker is {buf[VALID_MARKER_OFFSET]}, expected {VALID_MARKER}", idle_message=True)
    extra = {name: (_temp(buf, offset) if fmt == "<f" else struct.unpack_from(fmt, buf, offset)[0])
             for name, (fmt, offset) in EXTRA_FIELDS.items()}
    extra[TIMER_FIELD] = buf[24] * 60 + buf[25]
    reading = Status(
        channel_a_c=_temp(buf, 0), channel_b_c=_temp(buf, 8), exhaust_c=_temp(buf, 16),
        fan=buf[26], heater=buf[27], drum=buf[28], state=buf[29], extra=extra,
    )
    # the marker is the status's only integrity check (no checksum): levels beyond their ranges are garbage too
    if reading.heater > HEATER_RANGE[1] or reading.fan > FAN_RANGE[1] or reading.drum > DRUM_RANGE[1]:
        raise InvalidStatus(f"levels out of range: heater {reading.heater} fan {reading.fan} drum {reading.drum}")
    return screen_probes(reading)  # an impossible temperature in an intact status is a failed probe, not garbage


def encode_status(reading: Status) -> bytes:
    """The inverse of ``decode_status`` (the virtual R1 answers with it); extras missing are 0."""
    buf = bytearray(STATUS_LEN)
    struct.pack_into("<f", buf, 0, reading.channel_a_c)
    struct.pack_into("<f", buf, 8, reading.channel_b_c)
    struct.pack_into("<f", buf, 16, reading.exhaust_c)
    buf[24], buf[25] = divmod(min(int(reading.extra.get(TIMER_FIELD, 0)), 255 * 60 + 59), 60)
    buf[26], buf[27], buf[28], buf[29] = reading.fan, reading.heater, reading.drum, reading.state
    buf[VALID_MARKER_OFFSET] = VALID_MARKER
    for name, (fmt, offset) in EXTRA_FIELDS.items():
        value = reading.extra.get(name, 0)
        struct.pack_into(fmt, buf, offset, value if fmt == "<f" else int(value))
    return bytes(buf)
