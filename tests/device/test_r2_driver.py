"""The R2 driver against the virtual R2 through pyusb: open sequence, frames, commands, user errors."""
import pytest

from daena_pipelines.device import driver as drv
from daena_pipelines.device.r2 import protocol as r2
from daena_pipelines.device.r2.driver import BulletR2
from daena_pipelines.device.r2.virtual import VirtualR2Config, plug_in_virtual_r2
from daena_pipelines.device.virtual_r1 import Faults, VirtualR1Config, plug_in_virtual_r1


def test_open_resets_claims_and_takes_endpoints_from_descriptors(clock):
    device, backend = plug_in_virtual_r2(VirtualR2Config(), clock)
    roaster = BulletR2.open(backend=backend)
    assert device.resets == 1 and backend.kernel_driver_attached is False and 1 in backend.claimed
    assert (roaster.ep_in, roaster.ep_out) == (0x82, 0x02)  # not the R1's 0x81/0x03
    info = roaster.read_info()
    assert (info.serial, info.firmware, info.roast_count) == ("R2V-004242", None, None)


def test_poll_reads_pushed_frames_and_commands_carry_a_crc(clock):
    device, backend = plug_in_virtual_r2(VirtualR2Config(), clock)
    roaster = BulletR2.open(backend=backend)
    clock.sleep(0.6)
    reading = roaster.poll()
    assert reading.temperature.state == r2.State.OFF
    assert reading.fans is not None and reading.power is not None  # the slower frames came too
    assert reading.power.voltage_rms_v == 230.0
    roaster.send(r2.PRS)
    roaster.send(r2.DRUM_DOWN)
    roaster.send(r2.preheat_command_body(225))
    clock.sleep(0.2)
    reading = roaster.poll()
    assert reading.temperature.state == r2.State.PREHEATING and reading.temperature.drum == 4
    assert device.preheat_target_c == 225 and device.rejected == []
    assert [data for _, data in device.wire_log] == [
        bytes.fromhex("30010000ae1a21db"), bytes.fromhex("3202aaaac5746233"), r2.frame_command(bytes.fromhex("350000e1"))]


def test_poll_returns_the_newest_frame_after_a_pause(clock):
    device, backend = plug_in_virtual_r2(VirtualR2Config(), clock)
    roaster = BulletR2.open(backend=backend)
    clock.sleep(0.3)
    roaster.poll()
    roaster.send(r2.PRS)
    clock.sleep(2.0)  # 20 frames sent meanwhile; the device holds the last few
    assert roaster.poll().temperature.state == r2.State.PREHEATING


def test_stall_times_out_and_invalid_frame_is_refused(clock):
    _, backend = plug_in_virtual_r2(VirtualR2Config(faults=Faults(stall_reads=(1.0, 1.5), invalid_packets=(2.0, 2.5))), clock)
    roaster = BulletR2.open(backend=backend)
    clock.sleep(1.0)
    with pytest.raises(drv.ReadTimeout):
        roaster.poll()
    clock.sleep(1.0)
    with pytest.raises(r2.InvalidFrame):
        roaster.poll()
    clock.sleep(1.0)
    assert roaster.poll().temperature.state == r2.State.OFF


def test_disconnect_mid_poll(clock):
    _, backend = plug_in_virtual_r2(VirtualR2Config(faults=Faults(disconnect_at_s=1.0)), clock)
    roaster = BulletR2.open(backend=backend)
    clock.sleep(1.0)
    with pytest.raises(drv.DeviceDisconnected, match="Bullet R2 disconnected"):
        roaster.poll()


def test_not_found_names_the_r2_id_and_an_r1_is_not_an_r2(clock):
    _, backend = plug_in_virtual_r1(VirtualR1Config(), clock)
    with pytest.raises(drv.DeviceNotFound, match="0483:a4cd"):
        BulletR2.open(backend=backend)


def test_permission_denied_points_to_udev_rule(clock):
    _, backend = plug_in_virtual_r2(VirtualR2Config(faults=Faults(permission_denied=True)), clock)
    with pytest.raises(drv.PermissionDenied, match="udev"):
        BulletR2.open(backend=backend)
