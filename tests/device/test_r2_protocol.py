"""Bullet R2 bytes checked against values worked out by hand from docs/device.md ("Bullet R2").

The expected bytes are literals, and each CRC literal is re-derived here bit by bit from the
documented rule (not with the project's table code), so the encoder, the driver and the virtual R2
cannot agree on a mistake.
"""
import math
import struct
import zlib

import pytest
import usb.core
import usb.util

from daena_pipelines.device.r2 import protocol as r2
from daena_pipelines.device.r2.virtual import plug_in_virtual_r2
from daena_pipelines.device.virtual_r1 import VirtualR1Config


def crc_from_the_docs(data: bytes) -> int:
    """The documented R2 check, one bit at a time: big-endian words, 16 shifts of 0x04C11DB7 per word."""
    register = 0xFFFFFFFF
    for i in range(0, len(data), 4):
        register ^= int.from_bytes(data[i:i + 4], "big")
        for _ in range(16):
            carry = register & 0x80000000
            register = (register << 1) & 0xFFFFFFFF
            if carry:
                register ^= 0x04C11DB7
    return register


# body, then the 8 bytes on the wire (CRC little-endian in the last four)
COMMANDS = [
    ("heater +1", "34 01 aa aa", "34 01 aa aa 90 e5 e4 f1"),
    ("heater -1", "34 02 aa aa", "34 02 aa aa 19 10 8d f3"),
    ("PRS", "30 01 00 00", "30 01 00 00 ae 1a 21 db"),
    ("preheat 240 °C", "35 00 00 f0", "35 00 00 f0 92 9d d9 f3"),
    ("drum +1", "32 01 aa aa", "32 01 aa aa 4c 81 0b 31"),
]


@pytest.mark.parametrize(("name", "body", "wire"), COMMANDS, ids=[c[0] for c in COMMANDS])
def test_command_bytes_with_crc(name, body, wire):
    body, wire = bytes.fromhex(body), bytes.fromhex(wire)
    # the literal CRC is the documented rule applied to body + four zero bytes
    assert int.from_bytes(wire[4:], "little") == crc_from_the_docs(body + bytes(4))
    # and not a standard CRC-32 (a "fix" to zlib's would be ignored by the roaster)
    assert int.from_bytes(wire[4:], "little") != zlib.crc32(body + bytes(4))
    assert r2.frame_command(body) == wire
    assert r2.command_crc_ok(wire)
    assert not r2.command_crc_ok(wire[:4] + bytes([wire[4] ^ 1]) + wire[5:])


def test_named_commands_and_preheat_encoding():
    assert r2.frame_command(r2.HEATER_UP) == bytes.fromhex("3401aaaa90e5e4f1")
    assert r2.frame_command(r2.PRS) == bytes.fromhex("30010000ae1a21db")
    assert r2.preheat_command_body(240) == bytes.fromhex("350000f0")  # 240 = 0x00f0, big-endian
    assert r2.preheat_command_body(300) == bytes.fromhex("3500012c")
    assert r2.preheat_target_c(bytes.fromhex("3500012c")) == 300
    with pytest.raises(ValueError):
        r2.preheat_command_body(351)


# A temperature frame built by hand (float32 bit patterns worked out on paper, see the comments).
TEMPERATURE_FRAME = bytes.fromhex(
    "a0 00 00 00"  # type 0xA0, bytes 1-3 unused
    " 00 80 49 43"  # @4  IBTS 201.5 °C   = 0x43498000 (1.57421875 x 2^7)
    " 00 00 18 41"  # @8  IBTS RoR 9.5    = 0x41180000
    " 00 00 00 42"  # @12 IBTS ambient 32 = 0x42000000
    " 00 80 46 43"  # @16 probe 198.5 °C  = 0x43468000
    " 00 00 00 41"  # @20 probe RoR 8.0   = 0x41000000
    " 00 00 00 3f"  # @24 energy 0.5      = 0x3f000000
    " 00 00 10 42"  # @28 diff. pressure 36 = 0x42100000
    " 94 07"  # @32 exhaust fan 1940 rpm
    " fa 00"  # @34 inlet 25.0 °C (250 / 10)
    " 0a 09"  # @36 hot air 231.4 °C (2314)
    " 70 05"  # @38 exhaust 139.2 °C (1392)
    " 94 27"  # @40 atmospheric 1013.2 (10132)
    " c2 01"  # @42 humidity 45.0 % (450)
    " 04 01"  # @44 humidity sensor 26.0 °C (260)
    " 08 01 2a 00"  # @46 timer 8 min, @47 crack button 1, @48 timer 42 s, @49 unused
    " 0c 04 00 06"  # @50 heater 12, @51 fan 4, @52 hot-air setting 0, @53 drum 6
    " 03 00 11 00"  # @54 r_count 3, @55 fc sample index 0, @56 17 cracks, @57 manual
    " 00 06"  # @58 status 0, @59 state 0x06 roasting
    " 00 00 00 00"  # @60-63 not read
)


def test_temperature_frame_decoded_field_by_field():
    assert len(TEMPERATURE_FRAME) == 64
    frame = r2.decode(TEMPERATURE_FRAME)
    assert isinstance(frame, r2.TemperatureFrame)
    expected = dict(
        ibts_c=201.5, ibts_ror_c_per_min=9.5, ibts_ambient_c=32.0, bean_probe_c=198.5, bean_probe_ror_c_per_min=8.0,
        energy_used=0.5, differential_pressure=36.0, exhaust_fan_rpm=1940, inlet_c=25.0, hot_air_c=231.4,
        exhaust_c=139.2, atmospheric_pressure=1013.2, humidity_pct=45.0, humidity_sensor_c=26.0, timer_min=8,
        crack_mark_button=1, timer_s=42, heater=12, fan=4, hot_air_setting=0, drum=6, r_count=3,
        fc_sample_index=0, crack_count=17, roasting_method=0, status=0, state=0x06,
    )
    assert {name: getattr(frame, name) for name in expected} == expected
    assert frame.state_name == "roasting"
    # the virtual R2's encoder lays the same fields out at the same offsets
    assert r2.encode(frame)[:60] == TEMPERATURE_FRAME[:60]


def test_power_frame_scales():
    buf = bytearray(64)
    buf[0] = 0xA2
    buf[4:6] = bytes.fromhex("5802")  # 600 W set-point
    buf[6:8] = bytes.fromhex("8813")  # 5000 / 100 = 50.00 Hz
    buf[12:14] = bytes.fromhex("c201")  # 450 / 10 = 45.0 °C, IGBT 1
    buf[14:16] = bytes.fromhex("cc01")  # 460 / 10 = 46.0 °C, IGBT 2
    buf[22:24] = bytes.fromhex("7017")  # 6000 / 10 = 600.0 W active power
    buf[28:30] = bytes.fromhex("fc08")  # 2300 / 10 = 230.0 V
    buf[30:32] = bytes.fromhex("6810")  # 4200 / 1000 = 4.2 A
    frame = r2.decode(bytes(buf))
    assert (frame.power_setpoint_w, frame.line_frequency_hz, frame.voltage_rms_v, frame.current_rms_a) == (600, 50.0, 230.0, 4.2)
    assert (frame.igbt_temp1_c, frame.igbt_temp2_c, frame.active_power_w) == (45.0, 46.0, 600.0)
    assert r2.encode(frame)[:60] == bytes(buf[:60])  # the virtual R2 lays them out at the same offsets


def test_fans_frame_decoded_field_by_field():
    """A 0xA1 frame built by hand from the offsets in docs/device.md (read in Artisan's R2 driver)."""
    buf = bytearray(64)
    buf[0] = 0xA1
    buf[4] = 2  # error count
    buf[8:16] = bytes([3, 4, 5, 6, 7, 8, 9, 10])  # two error slots: category, type, info, value
    buf[16:18] = bytes.fromhex("e803")  # coil fan 1 duty 1000
    buf[18:20] = bytes.fromhex("d007")  # coil fan 2 duty 2000
    buf[28:30] = bytes.fromhex("2c01")  # exhaust blower duty 300
    buf[34:36] = bytes.fromhex("1027")  # coil fan 1 10000 rpm
    buf[36:38] = bytes.fromhex("0f27")  # coil fan 2 9999 rpm
    buf[46:48] = bytes.fromhex("b80b")  # IBTS fan 3000 rpm
    buf[48:50] = bytes.fromhex("3c00")  # drum 60 rpm
    buf[52:54] = bytes.fromhex("0100")  # control-board critical flags
    buf[58:60] = bytes.fromhex("0480")  # buttons 0x8004
    frame = r2.decode(bytes(buf))
    assert isinstance(frame, r2.FansFrame)
    assert (frame.error_count, frame.error1_category, frame.error1_type, frame.error1_info, frame.error1_value,
            frame.error2_category, frame.error2_type, frame.error2_info, frame.error2_value) == (2, 3, 4, 5, 6, 7, 8, 9, 10)
    assert (frame.coil_fan1_duty, frame.coil_fan2_duty, frame.exhaust_blower_duty) == (1000, 2000, 300)
    assert (frame.coil_fan1_rpm, frame.coil_fan2_rpm, frame.ibts_fan_rpm, frame.drum_rpm) == (10000, 9999, 3000, 60)
    assert (frame.control_board_critical, frame.buttons) == (1, 0x8004)
    assert r2.encode(frame)[:60] == bytes(buf[:60])  # the virtual R2 lays them out at the same offsets


@pytest.mark.parametrize("bad", [
    TEMPERATURE_FRAME[:63],  # short
    b"\xa3" + TEMPERATURE_FRAME[1:],  # a frame type nobody decodes
    TEMPERATURE_FRAME[:50] + bytes([15]) + TEMPERATURE_FRAME[51:],  # heater 15 > 14
])
def test_unusable_frames_are_invalid(bad):
    with pytest.raises(r2.InvalidFrame):
        r2.decode(bad)


def test_impossible_ibts_in_a_frame_is_a_failed_probe_not_garbage():
    from daena_pipelines.device.r2.driver import status

    frame = r2.decode(TEMPERATURE_FRAME[:4] + b"\xff\xff\xff\xff" + TEMPERATURE_FRAME[8:])  # IBTS NaN
    reading = status(r2.Reading(frame))
    assert math.isnan(reading.channel_a_c) and math.isnan(reading.probe_faults["a"])
    assert (reading.channel_b_c, reading.heater, reading.state) == (198.5, 12, 0x06)


def test_frame_crc_is_checked_as_a_commands_crc():
    """Bytes 60..63 = the CRC of bytes 0..59 and four zero bytes, little-endian (the rule re-derived above)."""
    body = TEMPERATURE_FRAME[:60]
    framed = body + crc_from_the_docs(body + bytes(4)).to_bytes(4, "little")
    assert r2.frame_crc_ok(framed) and not r2.frame_crc_ok(TEMPERATURE_FRAME)
    assert not r2.frame_crc_ok(framed[:20] + bytes([framed[20] ^ 1]) + framed[21:])


# ----- the virtual R2 on the wire, through plain pyusb ---------------------------------------------
@pytest.fixture
def raw_r2(clock):
    device, backend = plug_in_virtual_r2(VirtualR1Config(), clock)
    usb_device = usb.core.find(idVendor=0x0483, idProduct=0xA4CD, backend=backend)
    usb_device.reset()
    usb_device.detach_kernel_driver(1)
    usb_device.set_configuration(1)
    usb.util.claim_interface(usb_device, 1)
    return device, usb_device


def _newest_temperature_frame(usb_device, ep_in) -> bytes:
    """Read what the R2 has queued (until a short read times out); the last 0xA0 frame."""
    newest = None
    while True:
        try:
            frame = bytes(usb_device.read(ep_in, 64, 5))
        except usb.core.USBTimeoutError:
            return newest
        if frame[0] == 0xA0:
            newest = frame


def test_virtual_r2_sends_frames_unasked_and_names_its_serial(raw_r2, clock):
    device, usb_device = raw_r2
    assert usb_device.serial_number == "R2V-004242" and device.resets == 1
    endpoints = {usb.util.endpoint_direction(ep.bEndpointAddress): ep.bEndpointAddress
                 for ep in usb_device.get_active_configuration()[(1, 0)]}
    clock.sleep(1.0)
    types = [bytes(usb_device.read(endpoints[usb.util.ENDPOINT_IN], 64, 1000))[0] for _ in range(8)]
    assert set(types) == {0xA0, 0xA1, 0xA2}  # nothing was written: the R2 talks by itself
    assert device.wire_log == []


def test_virtual_r2_acts_only_on_commands_with_the_right_crc(raw_r2, clock):
    device, usb_device = raw_r2
    ep_out, ep_in = 0x02, 0x82
    usb_device.write(ep_out, bytes.fromhex("30010000ae1a21dc"))  # PRS with the last CRC byte wrong
    usb_device.write(ep_out, bytes.fromhex("30010000"))  # PRS without a CRC, as the R1 takes it
    clock.sleep(0.3)
    assert _newest_temperature_frame(usb_device, ep_in)[59] == 0x00  # still off
    assert len(device.rejected) == 2
    usb_device.write(ep_out, bytes.fromhex("30010000ae1a21db"))  # PRS, CRC right
    usb_device.write(ep_out, bytes.fromhex("350000e6500b4ea5"))  # preheat to 230 °C (0x00e6)
    usb_device.write(ep_out, bytes.fromhex("3201aaaa4c810b31"))  # drum +1
    clock.sleep(0.3)
    frame = _newest_temperature_frame(usb_device, ep_in)
    assert frame[59] == 0x02 and frame[53] == 6  # preheating, drum 5 -> 6
    assert device.preheat_target_c == 230 and len(device.rejected) == 2
    assert math.isfinite(struct.unpack_from("<f", frame, 4)[0])
