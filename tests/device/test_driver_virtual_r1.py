"""The driver against the virtual R1 through pyusb: descriptors, byte-for-byte replies, user errors."""
import pytest
import usb.core

from daena_pipelines.device import driver as drv
from daena_pipelines.device import protocol as p
from daena_pipelines.device import roaster as r
from daena_pipelines.device.roaster import DeviceInfo
from daena_pipelines.device.virtual_r1 import Faults, VirtualR1Config, plug_in_virtual_r1


def test_pyusb_sees_r1_descriptors(virtual_r1):
    _, backend = virtual_r1
    device = usb.core.find(idVendor=0x0483, idProduct=0x5741, backend=backend)
    assert device is not None
    configuration = device[0]
    assert configuration.bConfigurationValue == 1
    interface = configuration[(1, 0)]
    assert interface.bInterfaceNumber == 1
    assert sorted(ep.bEndpointAddress for ep in interface) == [0x03, 0x81]
    assert all(usb.util.endpoint_type(ep.bmAttributes) == usb.util.ENDPOINT_TYPE_BULK for ep in interface)


def claimed_raw(backend):
    """The virtual R1 as plain pyusb sees it, configured and claimed as Artisan's driver does it (no driver of ours)."""
    device = usb.core.find(idVendor=0x0483, backend=backend)
    device.detach_kernel_driver(1)
    device.set_configuration(1)
    usb.util.claim_interface(device, 1)
    return device


def raw_status(device) -> bytes:
    """Status request 1 (30 01) and 2 (30 03), 64 bytes each: the 128 bytes of one status."""
    device.write(0x03, b"\x30\x01")
    first = bytes(device.read(0x81, 64))
    device.write(0x03, b"\x30\x03")
    return first + bytes(device.read(0x81, 64))


def test_raw_protocol_byte_for_byte(virtual_r1, clock):
    """Talk to the virtual R1 with plain pyusb calls, no driver: the replies are the spec's."""
    _, backend = virtual_r1
    device = claimed_raw(backend)
    device.write(0x03, b"\x30\x02")
    info = device.read(0x81, 32)
    assert len(info) == 32 and int.from_bytes(bytes(info[0:2]), "little") == 4242
    device.write(0x03, b"\x89\x01")
    count = device.read(0x81, 36)
    assert int.from_bytes(bytes(count[27:31]), "big") == 318
    clock.sleep(1.5)  # leave the second in which an idle R1 sends its other message
    status = raw_status(device)
    assert len(status) == 128 and status[41] == 10 and status[29] == p.State.OFF
    device.write(0x03, b"\x30\x01\x00\x00")  # 4-byte PRS, not a status request
    with pytest.raises(usb.core.USBTimeoutError):
        device.read(0x81, 64, 50)  # PRS has no reply
    device.write(0x03, b"\x30\x01")
    assert device.read(0x81, 64)[29] == p.State.PREHEATING


def test_driver_reads_info_and_steps_levels(virtual_r1, clock):
    device, backend = virtual_r1
    r1 = drv.BulletR1.open(backend=backend)
    assert r1.info == DeviceInfo(serial="4242", firmware=219, roast_count=318)
    assert backend.kernel_driver_attached is False and 1 in backend.claimed
    clock.sleep(1.5)
    assert r1.poll().state == p.State.OFF
    r1.apply(r.PRS)
    r1.apply(r.PRS)  # preheating -> charge
    r1.apply(r.PRS)  # charge -> roasting (beans in)
    r1.apply(r.drum(8))
    start = r1.poll().heater
    r1.apply(r.HEATER_UP if start < 9 else r.HEATER_DOWN)
    reading = r1.poll()
    assert reading.state == p.State.ROASTING and reading.drum == 8
    assert reading.heater == start + (1 if start < 9 else -1)
    assert [data for _, data in device.wire_log if len(data) == 4][:3] == [p.PRS] * 3


def test_stale_reply_after_timeout_is_drained(clock):
    device, backend = plug_in_virtual_r1(VirtualR1Config(faults=Faults(stall_reads=(1.0, 1.2))), clock)
    r1 = drv.BulletR1.open(backend=backend)
    clock.sleep(1.0)
    with pytest.raises(r.ReadTimeout):
        r1.poll()  # reply stays queued in the device, like a late USB packet
    clock.sleep(0.5)
    reading = r1.poll()  # must be the new status, not the leftover half
    assert reading.state == p.State.OFF
    assert reading.extra["preheat_target_c"] == 240  # second half really is part 2 of one status


def test_device_not_found_names_the_ids(clock):
    _, backend = plug_in_virtual_r1(VirtualR1Config(faults=Faults(disconnect_at_s=0.0)), clock)
    with pytest.raises(r.DeviceNotFound, match="0483:5741, 0483:a27e"):
        drv.BulletR1.open(backend=backend)


def test_other_product_id_is_not_an_r1(clock):
    _, backend = plug_in_virtual_r1(VirtualR1Config(product_id=0xA4CD), clock)  # the R2
    with pytest.raises(r.DeviceNotFound):
        drv.BulletR1.open(backend=backend)


def test_ibts_product_id_is_found(clock):
    _, backend = plug_in_virtual_r1(VirtualR1Config(product_id=0xA27E, ibts=True), clock)
    assert drv.BulletR1.open(backend=backend).model_name == "Aillio Bullet R1 IBTS (rev3)"


def test_permission_denied_points_to_udev_rule(clock):
    _, backend = plug_in_virtual_r1(VirtualR1Config(faults=Faults(permission_denied=True)), clock)
    with pytest.raises(r.PermissionDenied, match="udev rule"):
        drv.BulletR1.open(backend=backend)


def test_kernel_driver_busy(clock):
    _, backend = plug_in_virtual_r1(VirtualR1Config(faults=Faults(kernel_driver_busy=True)), clock)
    with pytest.raises(r.KernelDriverBusy, match="busy"):
        drv.BulletR1.open(backend=backend)


def test_no_libusb_backend_says_how_to_install(monkeypatch):
    import usb.backend.libusb0
    import usb.backend.libusb1
    import usb.backend.openusb

    for module in (usb.backend.libusb0, usb.backend.libusb1, usb.backend.openusb):
        monkeypatch.setattr(module, "get_backend", lambda *a, **k: None)
    with pytest.raises(r.NoUsbBackend, match="libusb-1.0"):
        drv.BulletR1.open()


def test_disconnect_mid_poll(clock):
    _, backend = plug_in_virtual_r1(VirtualR1Config(faults=Faults(disconnect_at_s=2.0)), clock)
    r1 = drv.BulletR1.open(backend=backend)
    clock.sleep(2.5)
    with pytest.raises(r.DeviceDisconnected, match="disconnected"):
        r1.poll()


@pytest.mark.parametrize("ibts, channel_b", [(False, b"\x00\x00\xb0\x41"), (True, b"\xcd\xcc\x8c\x41")])
def test_status_bytes_worked_out_by_hand(clock, ibts, channel_b):
    """A cold, idle virtual R1 without sensor noise, read with plain pyusb calls. Expected bytes worked
    out by hand: 22.0 °C = float32 0x41B00000; the IBTS reading of an empty drum (0.8 x 22 = 17.6 °C)
    = 0x418CCCCD, on channel B (bytes 8-11) as Artisan's IBTS mode reads it; 230 = 0x00E6;
    coil fans 400 + 150 x heater 0 = 0x0190 and 380 = 0x017C; preheat target 240 = 0x00F0."""
    from daena_pipelines.device.thermal import ThermalParams

    config = VirtualR1Config(product_id=0xA27E if ibts else 0x5741, ibts=ibts, thermal=ThermalParams(noise_c=0.0))
    _, backend = plug_in_virtual_r1(config, clock)
    device = claimed_raw(backend)
    clock.sleep(1.5)  # one second into OFF (and away from the idle message)
    status = raw_status(device)
    assert status[0:4] == b"\x00\x00\xb0\x41"  # channel A: the bean probe at 22.0 °C
    assert status[8:12] == channel_b
    assert status[16:20] == b"\x00\x00\xb0\x41"  # exhaust 22.0 °C
    assert status[24:30] == bytes([0, 1, 1, 0, 5, 0x00])  # timer 0:01, fan 1, heater 0, drum 5, state off
    assert status[41] == 10
    assert status[44:46] == b"\x00\x00" and status[48:50] == b"\xe6\x00"  # fan rpm 0 (off), voltage 230
    assert status[52:56] == b"\x90\x01\x00\x00" and status[96:100] == b"\x7c\x01\x00\x00"
    assert status[104:106] == b"\xf0\x00"


def test_the_virtual_r1_obeys_commands_written_as_literal_bytes(virtual_r1, clock):
    """Each command as the bytes Artisan's R1 driver writes (aillio_r1.py, class constants and set_drum), not our
    constants: the virtual R1 must act on exactly these, and the status bytes 26/27/28/29 (fan, heater, drum,
    state) show it. State bytes: 0x00 off, 0x02 preheating, 0x04 charge, 0x06 roasting, 0x08 cooling."""
    roaster, backend = virtual_r1
    device = claimed_raw(backend)
    clock.sleep(1.5)  # away from the idle message
    states = []
    for _ in range(3):  # PRS: off -> preheating -> charge -> roasting
        device.write(0x03, bytes.fromhex("30010000"))
        states.append(raw_status(device)[29])
    assert states == [0x02, 0x04, 0x06]
    roaster.heater = 5  # the panel's setting when the steps begin
    before = raw_status(device)[26:29]
    assert before == bytes([1, 5, 5])  # fan 1, heater 5, drum 5
    for command, expected in (
        ("3401aaaa", [1, 6, 5]), ("3402aaaa", [1, 5, 5]),  # heater +1, -1
        ("3101aaaa", [2, 5, 5]), ("3102aaaa", [1, 5, 5]),  # fan +1, -1
        ("32010700", [1, 5, 7]),  # drum to 7 (absolute: 32 01 NN 00)
        ("32010a00", [1, 5, 7]),  # drum 10: no R1 level, ignored
        ("3401aaab", [1, 5, 7]),  # an unknown body: ignored
    ):
        device.write(0x03, bytes.fromhex(command))
        assert list(raw_status(device)[26:29]) == expected, command
    device.write(0x03, bytes.fromhex("30010000"))  # PRS while roasting: cooling, heater off, fan 12
    assert raw_status(device)[26:30] == bytes([12, 0, 7, 0x08])
