"""A virtual Aillio Bullet R1 behind a pyusb backend: the test double at the USB boundary.

``VirtualBulletR1`` is the roaster (state machine, panel, thermal model, optional simulated
operator standing at the panel, injected faults). ``VirtualR1Backend`` is a
``usb.backend.IBackend`` presenting it with the R1's descriptors, so ``usb.core.find(backend=...)``
returns a normal ``usb.core.Device`` and the driver runs unchanged. It answers the protocol byte for
byte as in the spec. Everything recorded from it is labelled ``source = 'simulator'``.

Behaviour the spec does not pin down is an assumption of this model, listed in docs/device.md:
PRS while preheating skips to CHARGE; entering COOLING switches the heater off and the fan to 12;
COOLING ends after 10 min without PRS; SHUTDOWN returns to OFF after 10 s.
"""
from __future__ import annotations

import errno
import os
import pickle
import struct
import time
from collections import deque
from dataclasses import dataclass, field, replace

import usb.backend
import usb.core

from daena_pipelines.device import protocol as p
from daena_pipelines.device.clock import ScaledClock, since_boot
from daena_pipelines.device.roaster import State, Status
from daena_pipelines.device.thermal import ThermalModel, ThermalParams

TICK_S = 0.1  # physics step; also the device's own status refresh period
MEMORY_PERIOD_S = 0.25  # real seconds between two writes of a remembered roaster's state while nothing is commanded
UNKNOWN_STATE = 0x05  # listed neither for the R1 (spec) nor the R2 (Artisan): a corrupt byte or an undocumented state


@dataclass(frozen=True)
class Faults:
    """Faults to inject, at device times in seconds."""

    disconnect_at_s: float | None = None
    reconnect_after_s: float | None = None  # None: stays unplugged
    stall_reads: tuple[float, float] | None = None  # (from, to): reads time out
    late_reply_at_s: float | None = None  # R1: the first status request from then on is answered late, once: after
    # the driver's read timed out and its drain found nothing, just before the reply to the next request
    invalid_packets: tuple[float, float] | None = None  # (from, to): garbled replies: channel A bytes and the R1's
    # marker / the R2's CRC are wrong (they fail the integrity checks)
    probe_failed_at_s: float | None = None  # from then channel A's probe (R1 bean probe, R2 IBTS) reads
    probe_failed_reads_c: float = 0.0  # this value, in replies that are otherwise intact (marker 10, CRC right)
    unknown_state: tuple[float, float] | None = None  # (from, to): the state byte reads a code no source lists
    short_replies: tuple[float, float] | None = None  # (from, to): every reply/frame arrives cut to 40 bytes
    empty_replies: tuple[float, float] | None = None  # (from, to): every reply/frame arrives as a zero-length packet
    safe_looking: tuple[float, float] | None = None  # (from, to): statuses read heater 0 and cooling, whatever is true
    roasting_looking: tuple[float, float] | None = None  # (from, to): statuses read roasting, whatever is true (a flicker)
    wedged_from: float | None = None  # from then reads time out until the interface is claimed anew (a stuck endpoint)
    unplug_on: str | None = None  # 'command_write' | 'status_read': unplug at the next such transfer (then
    # as disconnect_at_s from that moment, with reconnect_after_s); the transfer fails with ENODEV
    unplug_file: str | None = None  # unplug once this file exists (then as disconnect_at_s from that moment): the
    # cable pulled from outside the process at a moment chosen by what the recording shows, not by a device second
    heater_ignores_steps: bool = False
    command_write_timeouts: tuple[float, float] | None = None  # (from, to): command writes (not status requests) time out
    usb_errors: tuple[float, float] | None = None  # (from, to): writes fail with an errno without special meaning
    permission_denied: bool = False  # opening fails like a missing udev rule
    kernel_driver_busy: bool = False  # another driver holds the interface and cannot be detached

    def describe(self) -> list[str]:
        return [name for name, value in self.__dict__.items() if value not in (None, False)]


@dataclass(frozen=True)
class OperatorPlan:
    """What a person at the roaster does with the panel (not over USB) during one roast."""

    start_preheat_at_s: float = 2.0
    preheat_target_c: int = 240
    charge_after_ready_s: float = 45.0
    charge_heater: int = 9
    charge_fan: int = 2
    drum: int = 6
    heater_at_bt: tuple[tuple[float, int], ...] = ((178.0, 8), (196.0, 7))
    fan_at_bt: tuple[tuple[float, int], ...] = ((170.0, 3), (198.0, 4))
    drop_bt_c: float = 210.0
    cool_s: float = 240.0
    marks_first_crack: bool = True  # presses the sidecar's FCs mark when the cracks start


@dataclass
class VirtualR1Config:
    product_id: int = 0x5741
    serial: int = 4242
    firmware: int = 219
    roast_count: int = 318
    batch_g: float = 250.0
    seed: int = 0
    ibts: bool = False  # rev3 with the infrared bean sensor: its reading on channel B (Artisan's IBTS mode)
    thermal: ThermalParams = field(default_factory=ThermalParams)
    operator: OperatorPlan | None = None
    faults: Faults = field(default_factory=Faults)


class VirtualBulletR1:
    # State codes by role and level ranges: the virtual R2 reuses this roaster with its own.
    OFF, PREHEATING, CHARGE, ROASTING, COOLING, SHUTDOWN = (
        State.OFF, State.PREHEATING, State.CHARGE, State.ROASTING, State.COOLING, State.SHUTDOWN)
    WARMING_STATES = (State.PREHEATING,)  # heating up before CHARGE is ready
    AFTER_COOLING = State.SHUTDOWN  # where cooling ends (by PRS or by itself)
    HEATER_RANGE, FAN_RANGE, DRUM_RANGE = p.HEATER_RANGE, p.FAN_RANGE, p.DRUM_RANGE

    def __init__(self, config: VirtualR1Config, clock):
        self.config = config
        self.clock = clock
        self.model = ThermalModel(config.thermal, seed=config.seed)
        self.state = self.OFF
        self.heater, self.fan, self.drum = 0, 1, 5
        self.preheat_target_c = config.operator.preheat_target_c if config.operator else 240
        self.hopper_g = config.batch_g
        self.time_s = 0.0
        self.state_since_s = 0.0
        self.charge_at_s: float | None = None
        self.ready_at_s: float | None = None
        self.roasted_weight_g: float | None = None
        self._probe_history: deque[float] = deque(maxlen=int(30 / TICK_S) + 1)
        self._replies: deque[bytes] = deque()
        self._status_snapshot: bytes | None = None
        self._late_reply: bytes | None = None  # the late_reply_at_s fault's reply, still on its way
        self.wire_log: list[tuple[float, bytes]] = []  # (device time, bytes written), for tests
        self.on_mark = None  # callable(event name): the operator's event button in the sidecar, if any
        self._first_crack_marked = False
        # the roaster's memory outside its host process (``remember_in``): a real Bullet keeps running when
        # the program driving it is killed, and a second program can pick it up; so can this one
        self.memory_file: str | None = None
        self._remembered_at = -1.0

    # ----- a roaster that outlives its host process -------------------------------------------
    def remember_in(self, path: str) -> None:
        """From now on, write this roaster's whole state to ``path`` after every command and at least every
        ``MEMORY_PERIOD_S`` of polling, so that ``pick_up(path)`` in another process finds it as it was."""
        self.memory_file = path
        self.remember(force=True)

    def remember(self, force: bool = False) -> None:
        if self.memory_file is None or (not force and time.monotonic() - self._remembered_at < MEMORY_PERIOD_S):
            return
        self._remembered_at = time.monotonic()
        # (device time, when on the host's boot clock, time scale): where the roaster's clock stood
        stood = (self.clock.now(), since_boot(), self.clock.time_scale)
        partial = f"{self.memory_file}.partial"
        with open(partial, "wb") as file:
            pickle.dump((stood, self), file)
        os.replace(partial, self.memory_file)  # never half a state for the process that picks it up

    def __getstate__(self) -> dict:
        # not the host's clock and operator button (they die with it), nor the test log of writes
        return {**self.__dict__, "clock": None, "on_mark": None, "wire_log": []}

    # ----- world -----------------------------------------------------------------------------
    @property
    def sidecar_state(self) -> int:
        """The state as the sidecar reads it through this model's driver (the R1's byte is the sidecar's)."""
        return self.state

    @property
    def plugged(self) -> bool:
        f = self.config.faults
        if f.disconnect_at_s is None or self.clock.now() < f.disconnect_at_s:
            return True
        return f.reconnect_after_s is not None and self.clock.now() >= f.disconnect_at_s + f.reconnect_after_s

    @property
    def generation(self) -> int:
        """Bumps when the device is plugged back in: handles opened before are dead."""
        f = self.config.faults
        replugged = f.disconnect_at_s is not None and f.reconnect_after_s is not None
        return int(replugged and self.clock.now() >= f.disconnect_at_s + f.reconnect_after_s)

    def advance(self) -> None:
        """Run physics and the operator up to the clock's present, one tick at a time."""
        target = self.clock.now()
        while self.time_s + TICK_S <= target + 1e-9:
            self.time_s += TICK_S
            self._tick()

    def _set_state(self, state: int) -> None:
        self.state = state
        self.state_since_s = self.time_s

    def _tick(self) -> None:
        if self.state in (*self.WARMING_STATES, self.CHARGE):
            # the roaster's own preheat controller: proportional on the drum temperature
            error = self.preheat_target_c - self.model.s.drum_probe_c
            top = self.HEATER_RANGE[1]
            self.heater = max(0, min(top, round((error / 3 + 5) * top / 9)))  # same power for the same error
            self._warm_up(error)
        elif self.state is self.COOLING and self.time_s - self.state_since_s >= 600:
            self._set_state(self.AFTER_COOLING)
        elif self.state is self.SHUTDOWN and self.time_s - self.state_since_s >= 10:
            self._set_state(self.OFF)
        if self.config.operator:
            self._operate(self.config.operator)
        self.model.step(TICK_S, self.heater, self.fan if self.state is not self.OFF else 0, self.drum)
        self._probe_history.append(self.model.s.probe_c)

    def _warm_up(self, error_c: float) -> None:
        """Preheating turns into CHARGE 30 s or more after start once the drum is within 2 °C."""
        if self.state is self.PREHEATING and error_c <= 2.0 and self.time_s - self.state_since_s > 30:
            self._ready()

    def _ready(self) -> None:
        self._set_state(self.CHARGE)
        self.ready_at_s = self.time_s

    def _operate(self, plan: OperatorPlan) -> None:
        bt = self.model.s.probe_c
        if self.state is self.OFF and self.charge_at_s is None and self.time_s >= plan.start_preheat_at_s:
            self.drum, self.fan = plan.drum, 1
            self.press_prs()
        elif self.state is self.CHARGE and self.time_s - (self.ready_at_s or self.time_s) >= plan.charge_after_ready_s:
            self.press_prs()
            self.heater, self.fan = plan.charge_heater, plan.charge_fan
        elif self.state is self.ROASTING:
            roast_s = self.time_s - self.charge_at_s
            if roast_s > 60:  # after the turning point
                for bt_c, level in plan.heater_at_bt:
                    if bt >= bt_c and self.heater > level:
                        self.heater = level
                for bt_c, level in plan.fan_at_bt:
                    if bt >= bt_c and self.fan < level:
                        self.fan = level
            if (plan.marks_first_crack and not self._first_crack_marked and self.on_mark
                    and self.model.s.bean_c >= self.model.p.first_crack_c):
                self._first_crack_marked = True  # the first cracks are audible
                self.on_mark("FCs")
            if roast_s > 120 and bt >= plan.drop_bt_c:
                self.press_prs()
        elif self.state is self.COOLING and self.time_s - self.state_since_s >= plan.cool_s:
            self.press_prs()

    def press_prs(self) -> None:
        """The PRS button (on the panel or over USB) advances the state machine."""
        if self.state is self.OFF:
            self._set_state(self.PREHEATING)
        elif self.state in self.WARMING_STATES:
            self._ready()
        elif self.state is self.CHARGE:
            self._set_state(self.ROASTING)
            self.charge_at_s = self.time_s
            if self.hopper_g > 0:
                self.model.charge(self.hopper_g)
                self.hopper_g = 0.0
        elif self.state is self.ROASTING:
            self._set_state(self.COOLING)
            self.roasted_weight_g = self.model.drop() if self.model.beans_loaded else None
            self.heater, self.fan = 0, self.FAN_RANGE[1]
        elif self.state is self.COOLING:
            self._set_state(self.AFTER_COOLING)
            self.heater, self.fan = 0, self.FAN_RANGE[0]

    # ----- protocol --------------------------------------------------------------------------
    def handle_write(self, data: bytes) -> None:
        self.advance()
        self.wire_log.append((self.clock.now(), data))
        if self._late_reply is not None:  # arrives now, ahead of this request's reply
            self._replies.append(self._late_reply)
            self._late_reply = None
        if data == p.INFO_REQUEST:
            self._replies.append(self._info_reply())
        elif data == p.ROAST_COUNT_REQUEST:
            reply = bytearray(p.ROAST_COUNT_REPLY_LEN)
            struct.pack_into(">I", reply, 27, self.config.roast_count)
            self._replies.append(bytes(reply))
        elif data == p.STATUS_REQUEST_1:
            self._status_snapshot = self._status_bytes()
            late = self.config.faults.late_reply_at_s
            if late is not None and self.clock.now() >= late:
                self.config.faults = replace(self.config.faults, late_reply_at_s=None)
                self._late_reply = self._status_snapshot[: p.STATUS_HALF_LEN]
            else:
                self._replies.append(self._status_snapshot[: p.STATUS_HALF_LEN])
        elif data == p.STATUS_REQUEST_2:
            snapshot = self._status_snapshot or self._status_bytes()
            self._status_snapshot = None
            self._replies.append(snapshot[p.STATUS_HALF_LEN :])
        elif data in (p.HEATER_UP, p.HEATER_DOWN):
            self._step("heater", 1 if data == p.HEATER_UP else -1)
        elif data in (p.FAN_UP, p.FAN_DOWN):
            self._step("fan", 1 if data == p.FAN_UP else -1)
        elif len(data) == 4 and data[:2] == p.DRUM_PREFIX and p.DRUM_RANGE[0] <= data[2] <= p.DRUM_RANGE[1]:
            self.drum = data[2]
        elif data == p.PRS:
            self.press_prs()
        # anything else: a real R1 ignores unknown bytes, so do we

    def _step(self, level: str, step: int) -> None:
        """A ±1 step as the roaster applies it: the heater only while roasting, fan and drum unless off."""
        if level == "heater" and (self.state is not self.ROASTING or self.config.faults.heater_ignores_steps):
            return
        if self.state is self.OFF:
            return
        low, high = {"heater": self.HEATER_RANGE, "fan": self.FAN_RANGE, "drum": self.DRUM_RANGE}[level]
        setattr(self, level, max(low, min(high, getattr(self, level) + step)))

    def forget_replies(self) -> None:
        """Unplugged (the USB device loses power) or reset: replies not yet read are gone."""
        self._replies.clear()
        self._status_snapshot = self._late_reply = None

    def mid_status(self) -> bool:
        """This read is inside one status: the R1's second half (after ``30 03``), whose first half was read."""
        return bool(self.wire_log) and self.wire_log[-1][1] == p.STATUS_REQUEST_2

    def next_reply(self) -> bytes | None:
        return self._replies.popleft() if self._replies else None

    def await_reply(self, timeout_s: float) -> bytes | None:
        """Nothing is queued: the R1 answers only requests, so the read times out."""
        self.clock.sleep(timeout_s)
        return None

    def _info_reply(self) -> bytes:
        reply = bytearray(p.INFO_REPLY_LEN)
        struct.pack_into("<h", reply, 0, self.config.serial)
        struct.pack_into("<h", reply, 24, self.config.firmware)
        return bytes(reply)

    def _in_window(self, window: tuple[float, float] | None) -> bool:
        return window is not None and window[0] <= self.clock.now() < window[1]

    def _probe_reading(self, value: float) -> float:
        """Channel A's probe as the roaster reports it: ``probe_failed_reads_c`` once the probe has failed."""
        failed_at = self.config.faults.probe_failed_at_s
        return self.config.faults.probe_failed_reads_c if failed_at is not None and self.clock.now() >= failed_at else value

    def _timer_s(self) -> float:
        """The panel timer: time since CHARGE while roasting/cooling, else time in the current state."""
        if self.state in (self.ROASTING, self.COOLING) and self.charge_at_s is not None:
            return self.time_s - self.charge_at_s
        return self.time_s - self.state_since_s

    def _status_bytes(self) -> bytes:
        m, s = self.model, self.model.s
        probe, drum_probe = m.noisy(s.probe_c), m.noisy(s.drum_probe_c)
        ir = m.noisy(s.bean_c if m.beans_loaded else s.drum_c * 0.8)
        # Artisan's IBTS mode reads BT from bytes 8-11 ("DT is being used as IBTS"): on an IBTS unit the
        # infrared bean reading takes channel B while channel A stays the bean probe
        channel_a, channel_b = (probe, ir) if self.config.ibts else (probe, drum_probe)
        channel_a = self._probe_reading(channel_a)
        reading = Status(
            channel_a_c=channel_a, channel_b_c=channel_b, exhaust_c=m.noisy(s.exhaust_c),
            fan=self.fan, heater=self.heater, drum=self.drum, state=int(self.state),
            extra={
                "device_ror_a_c_per_min": ror_c_per_min(self._probe_history), p.TIMER_FIELD: int(self._timer_s()),
                "ir_c": ir, "pcb_c": m.noisy(30.0 + 0.04 * (s.drum_c - m.p.ambient_c)),
                "fan_rpm": 0 if self.state is self.OFF else 900 + 260 * self.fan, "voltage": 230,
                "coil_fan": 400 + 150 * self.heater, "coil_fan2": 380 + 150 * self.heater,
                "preheat_target_c": self.preheat_target_c,
            },
        )
        buf = bytearray(p.encode_status(reading))
        if self.state is self.OFF and int(self.time_s) % 15 == 0:
            buf[p.VALID_MARKER_OFFSET] = 0  # the interleaved idle message
        if self._in_window(self.config.faults.invalid_packets):
            buf[:4] = b"\xff" * 4  # a garbled reply: channel A NaN, and the marker is wrong too
            buf[p.VALID_MARKER_OFFSET] = 0xFF
        if self._in_window(self.config.faults.unknown_state):
            buf[29] = UNKNOWN_STATE
        if self._in_window(self.config.faults.safe_looking):  # R1: no checksum, so nothing tells it from a true one
            buf[27], buf[29] = 0, State.COOLING
        if self._in_window(self.config.faults.roasting_looking):
            buf[29] = State.ROASTING
        return bytes(buf)


def ror_c_per_min(history: deque[float]) -> float:
    """The roaster's own rate of rise over the history window (one value per tick), °C/min."""
    return (history[-1] - history[0]) * 60.0 / (TICK_S * (len(history) - 1)) if len(history) > 1 else 0.0


# ----- pyusb backend ---------------------------------------------------------------------------
@dataclass
class _Descriptor:
    """pyusb reads descriptor fields as attributes; anything unlisted is None."""

    fields: dict

    def __getattr__(self, name):
        return self.fields.get(name)


@dataclass
class _Handle:
    generation: int


def _usb_error(code: int, text: str) -> usb.core.USBError:
    return usb.core.USBError(text, error_code=-code, errno=code)


class VirtualR1Backend(usb.backend.IBackend):
    """A libusb stand-in that enumerates one virtual R1 (while it is plugged in)."""

    EP_IN, EP_OUT = p.EP_IN, p.EP_OUT

    def __init__(self, device: VirtualBulletR1):
        super().__init__()
        self.device = device
        self.configuration = 0
        self.claims: dict[int, _Handle] = {}  # interface -> the open handle (program) holding it
        self.kernel_driver_attached = True
        self._generation = device.generation

    @property
    def claimed(self) -> set[int]:
        return set(self.claims)

    def enumerate_devices(self):
        self._refresh()
        return [self.device] if self.device.plugged else []

    def get_parent(self, dev):
        return None

    def get_device_descriptor(self, dev):
        return _Descriptor(dict(
            bLength=18, bDescriptorType=1, bcdUSB=0x0200, bDeviceClass=0, bDeviceSubClass=0,
            bDeviceProtocol=0, bMaxPacketSize0=64, idVendor=p.VENDOR_ID, idProduct=dev.config.product_id,
            bcdDevice=0x0200, iManufacturer=0, iProduct=0, iSerialNumber=0, bNumConfigurations=1,
            address=7 + dev.generation, bus=1, port_number=2, port_numbers=(2,), speed=2,
        ))

    def get_configuration_descriptor(self, dev, config):
        if config != 0:
            raise IndexError("only one configuration")
        return _Descriptor(dict(
            bLength=9, bDescriptorType=2, wTotalLength=55, bNumInterfaces=2, bConfigurationValue=p.CONFIGURATION,
            iConfiguration=0, bmAttributes=0xC0, bMaxPower=50, extra_descriptors=[],
        ))

    def get_interface_descriptor(self, dev, intf, alt, config):
        if config != 0 or alt != 0 or intf not in (0, 1):
            raise IndexError("no such interface")
        # interface 0 is a control-only stub; interface 1 carries the protocol's bulk endpoints
        return _Descriptor(dict(
            bLength=9, bDescriptorType=4, bInterfaceNumber=intf, bAlternateSetting=0,
            bNumEndpoints=2 if intf == p.INTERFACE else 0, bInterfaceClass=0xFF, bInterfaceSubClass=0,
            bInterfaceProtocol=0, iInterface=0, extra_descriptors=[],
        ))

    def get_endpoint_descriptor(self, dev, ep, intf, alt, config):
        if intf != p.INTERFACE or ep not in (0, 1):
            raise IndexError("no such endpoint")
        return _Descriptor(dict(
            bLength=7, bDescriptorType=5, bEndpointAddress=(self.EP_IN, self.EP_OUT)[ep], bmAttributes=0x02,
            wMaxPacketSize=64, bInterval=0, bRefresh=0, bSynchAddress=0, extra_descriptors=[],
        ))

    def _refresh(self) -> None:
        faults = self.device.config.faults
        if faults.unplug_file is not None and os.path.exists(faults.unplug_file):
            self.device.config.faults = replace(faults, unplug_file=None, disconnect_at_s=self.device.clock.now())
        self.device.advance()
        if self.device.generation != self._generation:  # re-plugged: a fresh USB device
            self._generation = self.device.generation
            self.configuration, self.kernel_driver_attached = 0, True
            self.claims.clear()
            self.device.forget_replies()

    def _unplug_if(self, moment: str) -> None:
        """The ``unplug_on`` fault: the cable goes at this transfer, which fails as libusb reports it."""
        faults = self.device.config.faults
        if faults.unplug_on == moment:
            self.device.config.faults = replace(faults, unplug_on=None, disconnect_at_s=self.device.clock.now())
            raise _usb_error(errno.ENODEV, "No such device (it may have been disconnected)")

    def _check(self, handle: _Handle | None = None) -> None:
        self._refresh()
        if not self.device.plugged or (handle is not None and handle.generation != self.device.generation):
            raise _usb_error(errno.ENODEV, "No such device (it may have been disconnected)")

    def open_device(self, dev):
        self._check()
        if dev.config.faults.permission_denied:
            raise _usb_error(errno.EACCES, "Access denied (insufficient permissions)")
        return _Handle(dev.generation)

    def close_device(self, dev_handle):
        self.claims = {intf: holder for intf, holder in self.claims.items() if holder is not dev_handle}

    def set_configuration(self, dev_handle, config_value):
        self._check(dev_handle)
        if self.claims:  # Linux usbfs (proc_setconfig) refuses while any interface is claimed
            raise _usb_error(errno.EBUSY, "Resource busy")
        self.configuration = config_value

    def get_configuration(self, dev_handle):
        self._check(dev_handle)
        return self.configuration

    def is_kernel_driver_active(self, dev_handle, intf):
        return self.kernel_driver_attached

    def detach_kernel_driver(self, dev_handle, intf):
        if self.device.config.faults.kernel_driver_busy:
            raise _usb_error(errno.EBUSY, "Resource busy")
        self.kernel_driver_attached = False

    def claim_interface(self, dev_handle, intf):
        self._check(dev_handle)
        holder = self.claims.get(intf)
        if self.kernel_driver_attached or (holder is not None and holder is not dev_handle):
            raise _usb_error(errno.EBUSY, "Resource busy")  # another driver or program holds it
        self.claims[intf] = dev_handle
        faults = self.device.config.faults
        if faults.wedged_from is not None and self.device.clock.now() >= faults.wedged_from:
            self.device.config.faults = replace(faults, wedged_from=None)  # a fresh claim frees the stuck endpoint

    def release_interface(self, dev_handle, intf):
        if self.claims.get(intf) is dev_handle:
            del self.claims[intf]

    def _claimed_by(self, dev_handle, intf: int, doing: str) -> None:
        """A transfer needs the interface: Linux usbfs claims a free one on first use, refuses one another
        program holds."""
        if intf != p.INTERFACE:
            raise _usb_error(errno.EIO, f"{doing} on interface {intf}, which has no such endpoint")
        if self.claims.get(intf) is None:
            self.claim_interface(dev_handle, intf)
        elif self.claims[intf] is not dev_handle:
            raise _usb_error(errno.EBUSY, "Resource busy")

    def bulk_write(self, dev_handle, ep, intf, data, timeout):
        self._check(dev_handle)
        if ep != self.EP_OUT:
            raise _usb_error(errno.EIO, f"write to endpoint 0x{ep:02x}, which is not the OUT endpoint")
        self._claimed_by(dev_handle, intf, "write")
        faults = self.device.config.faults
        if len(data) >= 4:  # commands, not status requests
            self._unplug_if("command_write")
        if len(data) >= 4 and self.device._in_window(faults.command_write_timeouts):
            self.device.clock.sleep(timeout / 1000.0)
            raise usb.core.USBTimeoutError("Operation timed out", error_code=-7, errno=errno.ETIMEDOUT)
        if self.device._in_window(faults.usb_errors):
            raise _usb_error(errno.EOVERFLOW, "Overflow")  # an errno the driver gives no special meaning
        self.device.handle_write(bytes(data))
        self.device.remember(force=len(data) >= 4)  # a command changed the roaster: remembered at once
        return len(data)

    def bulk_read(self, dev_handle, ep, intf, buff, timeout):
        self._check(dev_handle)
        if ep != self.EP_IN:
            raise _usb_error(errno.EIO, f"read from endpoint 0x{ep:02x}, which is not the IN endpoint")
        self._claimed_by(dev_handle, intf, "read")
        if self.device._in_window(self.device.config.faults.usb_errors):  # reads too: the R2 polls by reading only
            raise _usb_error(errno.EOVERFLOW, "Overflow")
        if self.device.mid_status():
            self._unplug_if("status_read")
        wedged_from = self.device.config.faults.wedged_from
        if self.device._in_window(self.device.config.faults.stall_reads) or (
                wedged_from is not None and self.device.clock.now() >= wedged_from):
            self.device.clock.sleep(timeout / 1000.0)
            reply = None
        else:
            reply = self.device.next_reply() or self.device.await_reply(timeout / 1000.0)
        if reply is None:
            raise usb.core.USBTimeoutError("Operation timed out", error_code=-7, errno=errno.ETIMEDOUT)
        if len(reply) > len(buff):  # libusb: the device offered more than asked for (LIBUSB_ERROR_OVERFLOW)
            raise _usb_error(errno.EOVERFLOW, "Overflow")
        faults = self.device.config.faults
        n = min(len(reply), 0 if self.device._in_window(faults.empty_replies)
                else 40 if self.device._in_window(faults.short_replies) else len(reply))
        buff[:n] = type(buff)(buff.typecode, reply[:n])
        self.device.remember()
        return n


def plug_in_virtual_r1(config: VirtualR1Config, clock) -> tuple[VirtualBulletR1, VirtualR1Backend]:
    device = VirtualBulletR1(config, clock)
    return device, VirtualR1Backend(device)


def pick_up(memory_file: str) -> VirtualBulletR1:
    """The virtual roaster a process that was killed remembered in ``memory_file`` (``remember_in``), on a clock
    that went on running since (its physics catch up at the next transfer) and remembering there again."""
    with open(memory_file, "rb") as file:
        (device_s, at_boot_s, time_scale), device = pickle.load(file)
    device.clock = ScaledClock(time_scale, at=device_s + (since_boot() - at_boot_s) * time_scale)
    device.memory_file = memory_file
    return device


class VirtualBus(usb.backend.IBackend):
    """Several virtual roasters on one USB bus, each behind its own backend (choosing one by serial)."""

    def __init__(self, *backends: usb.backend.IBackend):
        super().__init__()
        self.backends = backends
        self._by_handle: dict[int, usb.backend.IBackend] = {}

    def _for(self, dev) -> usb.backend.IBackend:
        return next(backend for backend in self.backends if backend.device is dev)

    def enumerate_devices(self):
        return [dev for backend in self.backends for dev in backend.enumerate_devices()]

    def open_device(self, dev):
        backend = self._for(dev)
        handle = backend.open_device(dev)
        self._by_handle[id(handle)] = backend
        return handle

    def __getattribute__(self, name):
        # descriptor calls name the device, the rest a handle: hand each to the roaster's own backend
        if name in _BY_DEVICE:
            return lambda dev, *args: self._for(dev).__getattribute__(name)(dev, *args)
        if name in _BY_HANDLE:
            return lambda handle, *args: self._by_handle[id(handle)].__getattribute__(name)(handle, *args)
        return super().__getattribute__(name)


_BY_DEVICE = {"get_device_descriptor", "get_configuration_descriptor", "get_interface_descriptor",
              "get_endpoint_descriptor", "get_parent"}
_BY_HANDLE = {"close_device", "set_configuration", "get_configuration", "is_kernel_driver_active",
              "detach_kernel_driver", "attach_kernel_driver", "claim_interface", "release_interface",
              "bulk_write", "bulk_read", "clear_halt", "reset_device", "get_string_descriptor", "ctrl_transfer"}
