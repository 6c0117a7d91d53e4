"""The R2 driver against the virtual R2 through pyusb: open sequence, frames, actions, user errors."""
import pytest

from daena_pipelines.device import roaster as r
from daena_pipelines.device.r2 import protocol as r2
from daena_pipelines.device.r2.driver import BULLET_R2, MAX_REPEATS
from daena_pipelines.device.r2.virtual import plug_in_virtual_r2
from daena_pipelines.device.virtual_r1 import Faults, VirtualBus, VirtualR1Config, plug_in_virtual_r1


def test_open_resets_claims_and_takes_endpoints_from_descriptors(clock):
    device, backend = plug_in_virtual_r2(VirtualR1Config(), clock)
    roaster = BULLET_R2.open(backend=backend)
    assert device.resets == 1 and 1 in backend.claimed and backend.kernel_driver_attached is False
    assert (roaster.ep_in, roaster.ep_out) == (0x82, 0x02)  # not the R1's 0x81/0x03
    assert roaster.info == r.DeviceInfo(serial="R2V-004242", firmware=None, roast_count=None)
    assert roaster.limits.heater_range == (0, 14)


def test_poll_maps_the_r2_onto_the_sidecar_status(clock):
    device, backend = plug_in_virtual_r2(VirtualR1Config(), clock)
    roaster = BULLET_R2.open(backend=backend)
    clock.sleep(0.6)
    status = roaster.poll()
    assert status.state == r.State.OFF and status.extra["r2_state"] == 0x00
    assert status.extra["voltage_rms_v"] == 230.0 and "drum_rpm" in status.extra  # the slower frames came too
    device.state, device.heater = r2.State.COOLDOWN, 0  # what PRS from roasting leads to
    clock.sleep(0.2)
    status = roaster.poll()
    assert status.state == r.State.COOLING and status.extra["r2_state"] == 0x07
    device.state = r2.State.POWER_ON_RESET
    clock.sleep(0.2)
    assert roaster.poll().state == 0x0B and roaster.poll().state_name == "unknown_0x0b"  # unknown: no command


def test_actions_are_crc_framed_and_the_drum_moves_by_steps(clock):
    device, backend = plug_in_virtual_r2(VirtualR1Config(), clock)
    roaster = BULLET_R2.open(backend=backend)
    clock.sleep(0.2)
    assert roaster.poll().drum == 5
    roaster.apply(r.PRS)
    roaster.apply(r.drum(3))  # one step down, not a jump
    clock.sleep(0.2)
    status = roaster.poll()
    assert status.state == r.State.PREHEATING and status.drum == 4
    assert [data for _, data in device.wire_log] == [bytes.fromhex("30010000ae1a21db"), bytes.fromhex("3202aaaac5746233")]
    assert device.rejected == []


def test_poll_returns_the_newest_frame_after_a_pause(clock):
    device, backend = plug_in_virtual_r2(VirtualR1Config(), clock)
    roaster = BULLET_R2.open(backend=backend)
    clock.sleep(0.3)
    roaster.poll()
    roaster.apply(r.PRS)
    clock.sleep(2.0)  # 20 frames sent meanwhile; the device holds the last few
    assert roaster.poll().state == r.State.PREHEATING


def test_stall_times_out_and_invalid_frame_is_refused(clock):
    faults = Faults(stall_reads=(1.0, 1.5), invalid_packets=(2.0, 2.5))
    _, backend = plug_in_virtual_r2(VirtualR1Config(faults=faults), clock)
    roaster = BULLET_R2.open(backend=backend)
    clock.sleep(1.0)
    with pytest.raises(r.ReadTimeout):
        roaster.poll()
    clock.sleep(1.0)
    with pytest.raises(r.InvalidStatus):
        roaster.poll()
    clock.sleep(1.0)
    assert roaster.poll().state == r.State.OFF


def test_an_r2_without_frame_crcs_still_reads_and_its_failed_probe_shows(clock, monkeypatch):
    """Whether a real R2 fills bytes 60-63 is unknown: frames whose CRC never matched are read as before."""
    encode = r2.encode
    monkeypatch.setattr(r2, "encode", lambda frame: encode(frame)[:60] + bytes(4))  # a twin that sends no CRC
    faults = Faults(invalid_packets=(1.0, 1.5), probe_failed_at_s=2.0, probe_failed_reads_c=-5.0)
    _, backend = plug_in_virtual_r2(VirtualR1Config(faults=faults), clock)
    roaster = BULLET_R2.open(backend=backend)
    clock.sleep(0.5)
    assert roaster.poll().state == r.State.OFF and not roaster.frames_carry_crc
    clock.sleep(0.6)  # garbled, and nothing tells it: it reads as a failed IBTS (the levels still pass)
    assert "a" in roaster.poll().probe_faults
    clock.sleep(1.0)
    assert roaster.poll().probe_faults == {"a": -5.0} and not roaster.frames_carry_crc


def test_once_frames_carry_a_crc_a_frame_failing_it_is_garbled(clock):
    _, backend = plug_in_virtual_r2(VirtualR1Config(faults=Faults(invalid_packets=(1.0, 1.5))), clock)
    roaster = BULLET_R2.open(backend=backend)
    clock.sleep(0.5)
    assert roaster.poll().probe_faults == {} and roaster.frames_carry_crc
    clock.sleep(0.6)
    with pytest.raises(r.InvalidStatus, match="fails its CRC"):
        roaster.poll()


def test_disconnect_mid_poll(clock):
    _, backend = plug_in_virtual_r2(VirtualR1Config(faults=Faults(disconnect_at_s=1.0)), clock)
    roaster = BULLET_R2.open(backend=backend)
    clock.sleep(1.0)
    with pytest.raises(r.DeviceDisconnected, match="Bullet R2 disconnected"):
        roaster.poll()


def test_not_found_names_the_r2_id_and_an_r1_is_not_an_r2(clock):
    _, backend = plug_in_virtual_r1(VirtualR1Config(), clock)
    with pytest.raises(r.DeviceNotFound, match="0483:a4cd"):
        BULLET_R2.open(backend=backend)


def test_wrong_serial_is_refused_without_touching_the_roaster(clock):
    device, backend = plug_in_virtual_r2(VirtualR1Config(), clock)
    with pytest.raises(r.WrongRoaster, match="R2V-004242"):
        BULLET_R2.open("R2V-000001", backend=backend)
    assert device.resets == 0


def test_permission_denied_points_to_udev_rule(clock):
    _, backend = plug_in_virtual_r2(VirtualR1Config(faults=Faults(permission_denied=True)), clock)
    with pytest.raises(r.PermissionDenied, match="udev"):
        BULLET_R2.open(backend=backend)


def test_two_r2s_on_the_bus_one_chosen_by_serial_and_only_it_reset(clock):
    first, first_backend = plug_in_virtual_r2(VirtualR1Config(serial=4242), clock)
    second, second_backend = plug_in_virtual_r2(VirtualR1Config(serial=5151), clock)
    bus = VirtualBus(first_backend, second_backend)
    with pytest.raises(r.WrongRoaster, match="2 Bullet R2s are on USB; set roaster_serial"):
        BULLET_R2.open(None, backend=bus)
    with pytest.raises(r.WrongRoaster, match="found serial R2V-004242, R2V-005151"):
        BULLET_R2.open("R2V-009999", backend=bus)
    chosen = BULLET_R2.open("R2V-005151", backend=bus)
    assert chosen.info.serial == "R2V-005151" and (first.resets, second.resets) == (0, 1)
    assert not first_backend.claimed and second_backend.claimed


def test_a_poll_between_two_frames_reuses_the_last_reading_a_bounded_number_of_times(clock):
    _, backend = plug_in_virtual_r2(VirtualR1Config(), clock)
    roaster = BULLET_R2.open(backend=backend)
    clock.sleep(0.25)
    first = roaster.read()
    t = clock.now()
    assert [roaster.read() for _ in range(MAX_REPEATS)] == [first] * MAX_REPEATS  # no frame since: no waiting
    assert clock.now() - t < 0.01
    roaster.read()  # the next poll waits for the roaster's next frame
    assert clock.now() - t >= 0.04
