"""pyusb driver for the Aillio Bullet R2 behind the ``roaster.RoasterDriver`` interface.

Opened as Artisan opens it (detach, configure, claim, reset, endpoints from the descriptors; Artisan
resets first, we only once the roaster is ours);
frames are read as the roaster pushes them; actions are written as CRC-framed commands. The
R2's state codes are mapped onto the sidecar's states, so the safety model, recording and command
execution run unchanged. The same code talks to a real R2 (libusb) and to the virtual one.
"""
from __future__ import annotations

import usb.core
import usb.util

from daena_pipelines.device import roaster as r
from daena_pipelines.device.driver import find_roasters, release, translate_usb_error
from daena_pipelines.device.r2 import protocol as r2
from daena_pipelines.device.roaster import ReadTimeout, State, WrongRoaster

ROASTER = "Bullet R2"
READ_TIMEOUT_MS = 300  # the R2 sends a temperature frame several times a second (the virtual one every 0.1 s)
WRITE_TIMEOUT_MS = 300
DRAIN_TIMEOUT_MS = 2  # a frame already queued arrives within a 1 ms USB frame
MAX_FRAMES_PER_POLL = 64  # frames queued since the last poll; all are read, the newest counts
MAX_REPEATS = 2  # polls in a row that may reuse the last reading when no new frame has come (<= ~0.3 s old)
# reads a poll may wait through (READ_TIMEOUT_MS each) for a temperature frame: more than one of each of the five
# frame types Artisan names, and 6 x 0.3 s stays under the watchdog's 2 s; before, a stream of nothing but unusable
# frames (zero-length packets) held one poll for 64 of them (4.6 s at 10 Hz)
MAX_WAITING_READS = 6
LIMITS = r.ModelLimits(heater_range=r2.HEATER_RANGE, fan_range=r2.FAN_RANGE, drum_range=r2.DRUM_RANGE,
                       level_unit="r2_level")

# The R2's state byte -> the sidecar's state. Stabilizing is still the roaster heating up on its own
# controller (preheating); cooldown is where PRS leads from roasting (the R1's cooling). Codes not
# listed (power-on reset 0x0B, anything new) stay raw, which the safety code treats as unknown.
STATES = {
    r2.State.OFF: State.OFF, r2.State.PREHEATING: State.PREHEATING, r2.State.STABILIZING: State.PREHEATING,
    r2.State.CHARGE: State.CHARGE, r2.State.ROASTING: State.ROASTING, r2.State.COOLDOWN: State.COOLING,
    r2.State.COOLING: State.COOLING, r2.State.SHUTDOWN: State.SHUTDOWN,
}
ACTION_BODIES = {r.HEATER_UP: r2.HEATER_UP, r.HEATER_DOWN: r2.HEATER_DOWN, r.FAN_UP: r2.FAN_UP,
                 r.FAN_DOWN: r2.FAN_DOWN, r.PRS: r2.PRS}


def status(reading: r2.Reading) -> r.Status:
    """The sidecar's view of one reading: channel A = IBTS (Artisan's BT), B = bean probe (its DT);
    every other decoded field is an extra channel named with its unit."""
    t = reading.temperature
    extra = {
        "ibts_ror_c_per_min": t.ibts_ror_c_per_min, "bean_probe_ror_c_per_min": t.bean_probe_ror_c_per_min,
        "ibts_ambient_c": t.ibts_ambient_c, "energy_used_this_roast": t.energy_used,
        "differential_air_pressure": t.differential_pressure, "exhaust_fan_rpm": t.exhaust_fan_rpm,
        "inlet_air_c": t.inlet_c, "hot_air_c": t.hot_air_c, "atmospheric_pressure_hpa": t.atmospheric_pressure,
        "humidity_pct": t.humidity_pct, "humidity_sensor_c": t.humidity_sensor_c,
        "device_timer_s": 60 * t.timer_min + t.timer_s, "crack_count": t.crack_count,
        "crack_mark_button": t.crack_mark_button, "hot_air_setting": t.hot_air_setting,
        "roasting_method": t.roasting_method, "device_status": t.status, "r2_state": t.state,
    }
    if reading.fans is not None:
        f = reading.fans
        extra.update(error_count=f.error_count, error1_category=f.error1_category, error1_type=f.error1_type,
                     drum_rpm=f.drum_rpm, ibts_fan_rpm=f.ibts_fan_rpm, coil_fan1_rpm=f.coil_fan1_rpm,
                     coil_fan2_rpm=f.coil_fan2_rpm, exhaust_blower_duty=f.exhaust_blower_duty)
    if reading.power is not None:
        w = reading.power
        extra.update(power_setpoint_w=w.power_setpoint_w, active_power_w=w.active_power_w,
                     voltage_rms_v=w.voltage_rms_v, current_rms_a=w.current_rms_a,
                     line_frequency_hz=w.line_frequency_hz, igbt_temp1_c=w.igbt_temp1_c, igbt_temp2_c=w.igbt_temp2_c)
    return r.screen_probes(r.Status(  # the frame passed its checks: an impossible temperature is a failed probe
        channel_a_c=t.ibts_c, channel_b_c=t.bean_probe_c, exhaust_c=t.exhaust_c, heater=t.heater, fan=t.fan,
        drum=t.drum, state=int(STATES.get(t.state, t.state)), extra=extra,
    ))


def _serial(device: usb.core.Device) -> str | None:
    """The USB serial-number string (Artisan reads no serial from the R2; this is our choice)."""
    try:
        return device.serial_number
    except (usb.core.USBError, ValueError):
        return None


class BulletR2:
    """One open, claimed Bullet R2 (``roaster.RoasterDriver``)."""

    limits = LIMITS

    def __init__(self, device: usb.core.Device, ep_in: int, ep_out: int, info: r.DeviceInfo):
        self.device = device
        self.ep_in, self.ep_out = ep_in, ep_out
        self.info = info
        self.product_id = device.idProduct
        self.model_name = r2.PRODUCT_IDS[r2.PRODUCT_ID]
        self._fans: r2.FansFrame | None = None
        self._power: r2.PowerFrame | None = None
        self._drum: int | None = None  # last drum level seen: the R2 moves the drum by steps
        self._last: r2.Reading | None = None
        self._repeats = 0
        self.invalid_frames = 0
        # Artisan never checks bytes 60..63, so whether a real R2 fills them with a CRC is unknown: the check
        # holds from the first frame whose CRC is right (a chance match is 1 in 2**32), so an R2 without one still reads
        self.frames_carry_crc = False

    @classmethod
    def open(cls, serial: str | None = None, backend=None) -> "BulletR2":
        """Open the R2 whose USB serial is ``serial``; with None, the only R2 on the bus. Only the chosen
        one is reset and claimed."""
        devices = find_roasters("Bullet R2", (r2.PRODUCT_ID,), serial, backend,
                                "Use simulate=true with model r2 to run against the virtual R2.")
        serials = [_serial(device) for device in devices]
        if serial is not None and str(serial) not in serials:
            raise WrongRoaster(f"No Bullet R2 with serial {serial} on USB (found serial {', '.join(map(str, serials))}); "
                               "check roaster_serial and which roaster is plugged in")
        chosen = 0 if serial is None else serials.index(str(serial))
        return cls._claim(devices[chosen], serials[chosen])

    @classmethod
    def _claim(cls, device: usb.core.Device, serial: str | None) -> "BulletR2":
        try:
            try:
                if device.is_kernel_driver_active(r2.INTERFACE):
                    device.detach_kernel_driver(r2.INTERFACE)
            except (usb.core.USBError, NotImplementedError):
                pass  # not supported on every OS; claiming below reports a real conflict
            device.set_configuration(r2.CONFIGURATION)
            interface = device.get_active_configuration()[(r2.INTERFACE, 0)]
            usb.util.claim_interface(device, r2.INTERFACE)
            try:
                # Artisan resets the R2 before using it (a failed reset is not fatal). Artisan resets first; we
                # claim first: a reset reaches the roaster even while another program (another sidecar) drives
                # it, while configuring/claiming a roaster someone holds fails with EBUSY and touches nothing
                device.reset()  # pyusb releases our claim around the reset
            except (usb.core.USBError, NotImplementedError):
                pass
            usb.util.claim_interface(device, r2.INTERFACE)
        except usb.core.USBError as error:
            release(device, r2.INTERFACE)  # nothing left claimed or open for the next attempt to run into
            raise translate_usb_error(error, "opening the roaster", ROASTER) from error
        directions = {usb.util.endpoint_direction(ep.bEndpointAddress): ep.bEndpointAddress for ep in interface}
        if set(directions) != {usb.util.ENDPOINT_IN, usb.util.ENDPOINT_OUT}:
            release(device, r2.INTERFACE)
            raise r.DeviceError(f"Bullet R2 interface {r2.INTERFACE} lists endpoints {sorted(directions.values())}, "
                                "expected one IN and one OUT; is this really an R2?")
        info = r.DeviceInfo(serial=serial, firmware=None, roast_count=None)
        return cls(device, directions[usb.util.ENDPOINT_IN], directions[usb.util.ENDPOINT_OUT], info)

    def close(self) -> None:
        release(self.device, r2.INTERFACE)

    def _read_frame(self, timeout_ms: int) -> bytes:
        try:
            return bytes(self.device.read(self.ep_in, r2.FRAME_LEN, timeout_ms))
        except usb.core.USBError as error:
            raise translate_usb_error(error, "reading a frame", ROASTER) from error

    def read(self) -> r2.Reading:
        """Read every queued frame; the newest temperature frame with the latest fans/power frames.

        The R2 sends at its own pace, so a poll can fall between two frames: then the last reading
        stands, up to MAX_REPEATS polls in a row (instead of blocking the loop until the next frame);
        after that a poll waits for a temperature frame (READ_TIMEOUT_MS a read, through at most
        MAX_WAITING_READS frames) and raises ReadTimeout without one. Raises InvalidFrame when the newest one is unusable (CRC, levels), DeviceDisconnected."""
        may_repeat = self._last is not None and self._repeats < MAX_REPEATS
        newest: bytes | None = None
        waited = 0
        for _ in range(MAX_FRAMES_PER_POLL):
            waiting = newest is None and not may_repeat
            if waiting and waited == MAX_WAITING_READS:
                break  # no temperature frame among them: a stall (below), the loop goes on
            waited += waiting
            try:
                frame = self._read_frame(READ_TIMEOUT_MS if waiting else DRAIN_TIMEOUT_MS)
            except ReadTimeout:
                if waiting:
                    raise
                break
            if frame[:1] == bytes([r2.FrameType.TEMPERATURE]):
                newest = frame
                continue
            try:
                decoded = self._decode(frame)
            except r2.InvalidFrame:
                self.invalid_frames += 1  # a frame type nobody decodes (0xA3/0xA4), a short read, a failed CRC
                continue
            if isinstance(decoded, r2.FansFrame):
                self._fans = decoded
            else:
                self._power = decoded
        if newest is None:
            if not may_repeat:
                raise ReadTimeout(f"Bullet R2 sent no usable temperature frame in {MAX_WAITING_READS} frames waited for")
            self._repeats += 1
            return r2.Reading(self._last.temperature, self._fans, self._power)
        self._last = None  # an unusable newest frame must not be papered over by an older one
        reading = r2.Reading(self._decode(newest), self._fans, self._power)
        self._last, self._repeats = reading, 0
        self._drum = reading.temperature.drum
        return reading

    def _decode(self, frame: bytes):
        """``r2.decode``, and once this R2 has shown that its frames carry a CRC, a frame whose CRC fails is garbled."""
        kind = r2.frame_type(frame)  # a short or empty frame is unusable before it can fail a CRC
        if r2.frame_crc_ok(frame):
            self.frames_carry_crc = True
        elif self.frames_carry_crc:
            raise r2.InvalidFrame(f"frame 0x{kind:02x} fails its CRC (bytes 60..63)")
        return r2.decode(frame)

    def poll(self) -> r.Status:
        try:
            return status(self.read())
        except r2.InvalidFrame as error:
            raise r.InvalidStatus(str(error)) from error

    def apply(self, action: r.Action) -> None:
        """Write one action as a CRC-framed command. A drum level becomes one step towards it (the R2
        has no absolute drum command); the sidecar repeats it until the status shows the level."""
        if action.kind == "drum":
            if self._drum is None or action.level == self._drum:
                return  # no status yet to step from, or already there
            body = r2.DRUM_UP if action.level > self._drum else r2.DRUM_DOWN
        else:
            body = ACTION_BODIES[action]
        data = r2.frame_command(body)
        try:
            self.device.write(self.ep_out, data, WRITE_TIMEOUT_MS)
        except usb.core.USBError as error:
            raise translate_usb_error(error, f"sending {action.describe()} ({data.hex(' ')})", ROASTER) from error


class BulletR2Model:
    """``roaster.RoasterModel`` for the Bullet R2."""

    name = "Aillio Bullet R2"
    limits = LIMITS

    def open(self, serial: str | None = None, backend=None) -> BulletR2:
        return BulletR2.open(serial, backend)


BULLET_R2 = BulletR2Model()
