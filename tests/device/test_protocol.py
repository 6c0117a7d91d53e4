"""Byte-level decoding against hand-built packets (offsets from the spec, packed independently)."""
import math
import struct

import pytest

from daena_pipelines.device import protocol as p


def hand_built_status(**overrides) -> bytearray:
    buf = bytearray(128)
    struct.pack_into("<f", buf, 0, overrides.get("a", 187.26))
    struct.pack_into("<f", buf, 4, 9.84)
    struct.pack_into("<f", buf, 8, 231.04)
    struct.pack_into("<f", buf, 16, 140.5)
    buf[24], buf[25] = 7, 42  # 7:42 on the roaster timer
    buf[26], buf[27], buf[28], buf[29] = 3, 8, 6, 0x06
    struct.pack_into("<f", buf, 32, 180.0)
    struct.pack_into("<f", buf, 36, 41.25)
    buf[41] = overrides.get("marker", 10)
    struct.pack_into("<h", buf, 44, 1680)
    struct.pack_into("<h", buf, 48, 231)
    struct.pack_into("<i", buf, 52, 1600)
    struct.pack_into("<i", buf, 96, 1580)
    struct.pack_into("<H", buf, 104, 245)
    return buf


def test_status_fields_at_spec_offsets():
    r = p.decode_status(bytes(hand_built_status()))
    assert (r.channel_a_c, r.channel_b_c, r.exhaust_c) == (187.3, 231.0, 140.5)
    assert (r.fan, r.heater, r.drum, r.state, r.state_name) == (3, 8, 6, 6, "roasting")
    assert r.extra == {
        "device_ror_a_c_per_min": 9.8, "device_timer_s": 7 * 60 + 42,
        "ir_c": 180.0, "pcb_c": 41.2,  # exact 41.25 rounds half to even
        "fan_rpm": 1680, "voltage": 231, "coil_fan": 1600, "coil_fan2": 1580, "preheat_target_c": 245,
    }


def test_encode_is_the_inverse_of_decode():
    r = p.decode_status(bytes(hand_built_status()))
    assert p.decode_status(p.encode_status(r)) == r


def test_validity_marker_filters_the_idle_message():
    with pytest.raises(p.InvalidStatus) as info:
        p.decode_status(bytes(hand_built_status(marker=0)))
    assert info.value.idle_message


@pytest.mark.parametrize("a", [math.nan, 1e6, -100.0, 0.0, 500.5])
def test_impossible_temperature_in_an_intact_status_is_a_failed_probe(a):
    """Marker 10 and levels in range: the heater and state are the roaster's, channel A's probe has failed."""
    r = p.decode_status(bytes(hand_built_status(a=a)))
    assert math.isnan(r.channel_a_c) and r.channel_b_c == 231.0
    assert list(r.probe_faults) == ["a"]
    assert math.isnan(r.probe_faults["a"]) if math.isnan(a) else r.probe_faults["a"] == a
    assert (r.heater, r.state, r.fan) == (8, 6, 3)


@pytest.mark.parametrize("a", [1.0, 499.9])
def test_plausible_temperatures_are_no_probe_fault(a):
    r = p.decode_status(bytes(hand_built_status(a=a)))
    assert r.probe_faults == {} and r.channel_a_c == a


def test_garbled_status_stays_invalid_whatever_it_reads():
    with pytest.raises(p.InvalidStatus):
        p.decode_status(bytes(hand_built_status(a=0.0, marker=0xFF)))
    buf = hand_built_status(a=0.0)
    buf[27] = 200  # heater 200: no R1 level
    with pytest.raises(p.InvalidStatus, match="levels out of range") as info:
        p.decode_status(bytes(buf))
    assert not info.value.idle_message


def test_short_status_is_invalid():
    with pytest.raises(p.InvalidStatus, match="64 bytes"):
        p.decode_status(bytes(hand_built_status())[:64])


def test_info_serial_firmware_and_big_endian_roast_count():
    info = bytearray(32)
    struct.pack_into("<h", info, 0, 5123)
    struct.pack_into("<h", info, 24, 221)
    count = bytearray(36)
    count[27:31] = bytes([0x00, 0x01, 0x02, 0x03])
    decoded = p.decode_info(bytes(info), bytes(count))
    assert (decoded.serial, decoded.firmware, decoded.roast_count) == ("5123", 221, 0x00010203)


def test_command_bytes_match_the_spec():
    assert p.HEATER_UP == bytes.fromhex("3401aaaa") and p.HEATER_DOWN == bytes.fromhex("3402aaaa")
    assert p.FAN_UP == bytes.fromhex("3101aaaa") and p.FAN_DOWN == bytes.fromhex("3102aaaa")
    assert p.PRS == bytes.fromhex("30010000")
    assert p.drum_command(7) == bytes.fromhex("32010700")
    with pytest.raises(ValueError):
        p.drum_command(10)
