"""A virtual Aillio Bullet R2 behind a pyusb backend: the test double at the R2's USB boundary.

The roaster (physics, panel, simulated operator, injected faults) is the virtual R1's, with the
R2's state codes and ranges; what differs is the wire: the R2 pushes 64-byte frames without being
asked (0xA0 temperatures every tick, 0xA1 fans and 0xA2 power every fifth) and acts only on 8-byte
commands whose CRC32 is right; anything else is ignored, as Artisan's driver expects no answer to a
command. The USB descriptors carry a serial-number string and the device can be reset. Behaviour
Artisan's driver does not show is an assumption of this model, listed in docs/device.md.
"""
from __future__ import annotations

import errno
from collections import deque
from dataclasses import replace

from daena_pipelines.device import protocol as p
from daena_pipelines.device.r2 import protocol as r2
from daena_pipelines.device.r2.driver import STATES  # the driver's state mapping, for sidecar_state
from daena_pipelines.device.virtual_r1 import (
    TICK_S, UNKNOWN_STATE, VirtualBulletR1, VirtualR1Backend, VirtualR1Config, _Descriptor, _usb_error, ror_c_per_min,
)

SLOW_FRAME_EVERY = 5  # 0xA1/0xA2 once per this many 0xA0 frames (the real rates are not known)
QUEUED_FRAMES = 8  # frames the device holds for a host that does not read; older ones are lost
STRINGS = {1: "Aillio", 2: "Bullet R2"}  # string descriptor index -> text; 3 is the serial
LANGID_EN_US = 0x0409


def as_r2(config: VirtualR1Config) -> VirtualR1Config:
    """The same run settings on an R2: its product id, and heater levels scaled from the R1's 0-9 to
    the R2's 0-14 (thermal model and operator plan), so one config drives either twin alike."""
    scale = r2.HEATER_RANGE[1] / p.HEATER_RANGE[1]
    operator = config.operator
    if operator is not None:
        operator = replace(operator, charge_heater=round(operator.charge_heater * scale),
                           heater_at_bt=tuple((bt, round(level * scale)) for bt, level in operator.heater_at_bt))
    return replace(config, product_id=r2.PRODUCT_ID, operator=operator,
                   thermal=replace(config.thermal, heater_levels=r2.HEATER_RANGE[1]))


def usb_serial(config: VirtualR1Config) -> str:
    return f"R2V-{config.serial:06d}"


class VirtualBulletR2(VirtualBulletR1):
    OFF, PREHEATING, CHARGE, ROASTING, COOLING, SHUTDOWN = (
        r2.State.OFF, r2.State.PREHEATING, r2.State.CHARGE, r2.State.ROASTING, r2.State.COOLDOWN, r2.State.SHUTDOWN)
    WARMING_STATES = (r2.State.PREHEATING, r2.State.STABILIZING)
    AFTER_COOLING = r2.State.OFF  # Artisan's PRS cycle goes from cooldown straight to off
    HEATER_RANGE, FAN_RANGE, DRUM_RANGE = r2.HEATER_RANGE, r2.FAN_RANGE, r2.DRUM_RANGE

    def __init__(self, config: VirtualR1Config, clock):
        super().__init__(as_r2(config), clock)
        self._replies = deque(maxlen=QUEUED_FRAMES)
        self._ibts_history: deque[float] = deque(maxlen=self._probe_history.maxlen)
        self._ticks = 0
        self.energy_kwh = 0.0
        self.cracks = 0
        self.rejected: list[bytes] = []  # writes ignored for a bad CRC or length, for tests
        self.resets = 0

    # ----- roaster -----------------------------------------------------------------------------
    @property
    def sidecar_state(self) -> int:
        return int(STATES.get(self.state, self.state))

    def _warm_up(self, error_c: float) -> None:
        """Assumed: preheating -> stabilizing once within 2 °C (after 30 s), stabilizing -> charge 20 s later."""
        since = self.time_s - self.state_since_s
        if self.state is r2.State.PREHEATING and error_c <= 2.0 and since > 30:
            self._set_state(r2.State.STABILIZING)
        elif self.state is r2.State.STABILIZING and since >= 20:
            self._ready()

    def _tick(self) -> None:
        super()._tick()
        self._ibts_history.append(self._ibts_c())
        if self.model.beans_loaded:  # cracks counted in proportion to the first-crack heat released so far
            initial = self.model.p.first_crack_energy_j_per_kg * self.config.batch_g / 1000.0
            self.cracks = min(255, round(150 * (1.0 - self.model.s.crack_energy_left_j / initial)))
        if self.state is not self.OFF:
            self.energy_kwh += self.model.p.heater_max_w * self.heater / self.HEATER_RANGE[1] * TICK_S / 3.6e6
        self._ticks += 1
        self._replies.append(self._temperature_frame())
        if self._ticks % SLOW_FRAME_EVERY == 0:
            self._replies.append(self._fans_frame())
            self._replies.append(self._power_frame())

    def _ibts_c(self) -> float:
        s = self.model.s
        return s.bean_c if self.model.beans_loaded else s.drum_c * 0.8  # IR sees the beans, or the drum wall

    def press_prs(self) -> None:
        super().press_prs()
        if self.state is self.PREHEATING:
            self.energy_kwh, self.cracks = 0.0, 0  # both counters are per roast

    # ----- protocol ----------------------------------------------------------------------------
    def handle_write(self, data: bytes) -> None:
        self.advance()
        self.wire_log.append((self.clock.now(), data))
        if not r2.command_crc_ok(data):
            self.rejected.append(data)
            return
        body = data[: r2.COMMAND_BODY_LEN]
        steps = {r2.HEATER_UP: ("heater", 1), r2.HEATER_DOWN: ("heater", -1), r2.FAN_UP: ("fan", 1),
                 r2.FAN_DOWN: ("fan", -1), r2.DRUM_UP: ("drum", 1), r2.DRUM_DOWN: ("drum", -1)}
        target = r2.preheat_target_c(body)
        if body == r2.PRS:
            self.press_prs()
        elif body in steps:
            self._step(*steps[body])
        elif target is not None and r2.PREHEAT_RANGE_C[0] <= target <= r2.PREHEAT_RANGE_C[1]:
            self.preheat_target_c = target
        else:
            self.rejected.append(data)  # a well-formed command we do not know: ignored

    def await_reply(self, timeout_s: float) -> bytes | None:
        """Wait for the next frame the roaster sends by itself (one per tick)."""
        wait = self.time_s + TICK_S - self.clock.now() + 1e-6
        if wait > timeout_s:
            self.clock.sleep(timeout_s)
            return None
        self.clock.sleep(max(wait, 0.0))
        self.advance()
        return self.next_reply()

    def mid_status(self) -> bool:
        """The R2 pushes its status as frames; any frame read is one."""
        return True

    def reset(self) -> None:
        """A USB port reset: the roaster keeps roasting, frames not yet read are gone."""
        self.resets += 1
        self.forget_replies()

    def _temperature_frame(self) -> bytes:
        m, s = self.model, self.model.s
        minutes, seconds = divmod(int(self._timer_s()), 60)
        frame = r2.TemperatureFrame(
            ibts_c=self._probe_reading(m.noisy(self._ibts_c())), ibts_ror_c_per_min=ror_c_per_min(self._ibts_history),
            ibts_ambient_c=m.noisy(30.0 + 0.05 * (s.drum_c - m.p.ambient_c)),
            bean_probe_c=m.noisy(s.probe_c), bean_probe_ror_c_per_min=ror_c_per_min(self._probe_history),
            energy_used=self.energy_kwh, differential_pressure=0.0 if self.state is self.OFF else 12.0 * self.fan,
            exhaust_fan_rpm=0 if self.state is self.OFF else 900 + 260 * self.fan,
            inlet_c=m.p.ambient_c + 3.0, hot_air_c=s.drum_c, exhaust_c=s.exhaust_c, atmospheric_pressure=1013.2,
            humidity_pct=45.0, humidity_sensor_c=m.p.ambient_c + 4.0,
            timer_min=min(minutes, 255), crack_mark_button=0, timer_s=seconds,
            heater=self.heater, fan=self.fan, hot_air_setting=0, drum=self.drum, r_count=0, fc_sample_index=0,
            crack_count=self.cracks, roasting_method=0, status=0, state=int(self.state),
        )
        if self._in_window(self.config.faults.unknown_state):
            frame = replace(frame, state=UNKNOWN_STATE)
        if self._in_window(self.config.faults.safe_looking):
            frame = replace(frame, heater=0, state=r2.State.COOLDOWN)
        if self._in_window(self.config.faults.roasting_looking):
            frame = replace(frame, state=r2.State.ROASTING)
        wire = r2.encode(frame)
        if self._in_window(self.config.faults.invalid_packets):  # a garbled frame: IBTS NaN, the CRC not redone
            wire = wire[:4] + b"\xff" * 4 + wire[8:]
        return wire

    def _fans_frame(self) -> bytes:
        running = self.state is not self.OFF
        return r2.encode(r2.FansFrame(
            error_count=0, error1_category=0, error1_type=0, error1_info=0, error1_value=0,
            error2_category=0, error2_type=0, error2_info=0, error2_value=0,
            coil_fan1_duty=40 * self.heater, coil_fan2_duty=40 * self.heater, exhaust_blower_duty=80 * self.fan * running,
            coil_fan1_rpm=(1200 + 120 * self.heater) * running, coil_fan2_rpm=(1180 + 120 * self.heater) * running,
            ibts_fan_rpm=3000 * running, drum_rpm=(20 + 5 * self.drum) * running, control_board_critical=0, buttons=0,
        ))

    def _power_frame(self) -> bytes:
        setpoint = self.model.p.heater_max_w * self.heater / self.HEATER_RANGE[1]
        active = setpoint + (25.0 if self.state is not self.OFF else 5.0)
        return r2.encode(r2.PowerFrame(
            power_setpoint_w=round(setpoint), line_frequency_hz=50.0, igbt_temp1_c=35.0 + 2.0 * self.heater,
            igbt_temp2_c=34.0 + 2.0 * self.heater, active_power_w=active, voltage_rms_v=230.0,
            current_rms_a=active / 230.0,
        ))


class VirtualR2Backend(VirtualR1Backend):
    """The R1's virtual bus with the R2's wire: its own endpoint addresses (the driver reads them from
    the descriptors), a serial-number string, and a port reset."""

    EP_IN, EP_OUT = 0x82, 0x02  # invented: Artisan takes whatever interface 1 lists

    def get_device_descriptor(self, dev):
        descriptor = super().get_device_descriptor(dev)
        return _Descriptor({**descriptor.fields, "iManufacturer": 1, "iProduct": 2, "iSerialNumber": 3})

    def ctrl_transfer(self, dev_handle, bmRequestType, bRequest, wValue, wIndex, data, timeout):
        self._check(dev_handle)
        descriptor_type, index = wValue >> 8, wValue & 0xFF
        if bmRequestType != 0x80 or bRequest != 0x06 or descriptor_type != 3:
            raise _usb_error(errno.EPIPE, "Pipe error (request not supported)")
        if index == 0:
            payload = LANGID_EN_US.to_bytes(2, "little")
        else:
            text = usb_serial(self.device.config) if index == 3 else STRINGS.get(index)
            if text is None:
                raise _usb_error(errno.EPIPE, "Pipe error (no such string)")
            payload = text.encode("utf-16-le")
        reply = bytes([2 + len(payload), 3]) + payload
        n = min(len(reply), len(data))
        data[:n] = type(data)(data.typecode, reply[:n])
        return n

    def reset_device(self, dev_handle):
        """Linux lets any program reset a device (proc_resetdevice refuses only one that dropped its
        privileges); interfaces claimed by other programs are unbound, so their claims are gone."""
        self._check(dev_handle)
        self.claims = {intf: holder for intf, holder in self.claims.items() if holder is dev_handle}
        self.device.reset()


def plug_in_virtual_r2(config: VirtualR1Config, clock) -> tuple[VirtualBulletR2, VirtualR2Backend]:
    device = VirtualBulletR2(config, clock)
    return device, VirtualR2Backend(device)
