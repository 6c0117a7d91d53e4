"""pyusb driver for the Aillio Bullet R1 behind the ``roaster.RoasterDriver`` interface.

The same code talks to a real roaster (libusb backend picked by pyusb) and to the virtual R1
(``backend=VirtualR1Backend(...)``). Errors users actually hit become ``DeviceError`` subclasses
whose message says what to do.
"""
from __future__ import annotations

import errno

import usb.core
import usb.util

from daena_pipelines.device import protocol as p
from daena_pipelines.device import roaster as r
from daena_pipelines.device.roaster import (
    DeviceDisconnected, DeviceError, DeviceNotFound, KernelDriverBusy, NoUsbBackend, PermissionDenied, ReadTimeout,
    WrongRoaster,
)

READ_TIMEOUT_MS = 300
WRITE_TIMEOUT_MS = 300
DRAIN_TIMEOUT_MS = 5
MAX_DRAIN_READS = 256  # a long stall can leave many late replies; all must go
NO_BACKEND_MESSAGE = (
    "No libusb backend found for pyusb. Install libusb 1.0: "
    "`sudo apt install libusb-1.0-0` (Debian/Ubuntu), `brew install libusb` (macOS), "
    "or put libusb-1.0.dll beside python.exe (Windows)."
)
ACTION_BYTES = {r.HEATER_UP: p.HEATER_UP, r.HEATER_DOWN: p.HEATER_DOWN, r.FAN_UP: p.FAN_UP,
                r.FAN_DOWN: p.FAN_DOWN, r.PRS: p.PRS}


def _ids_text(product_ids) -> str:
    return ", ".join(f"{p.VENDOR_ID:04x}:{pid:04x}" for pid in product_ids)


def find_roasters(roaster: str, product_ids, serial: str | None, backend, hint: str) -> list:
    """Every connected ``roaster`` (e.g. "Bullet R1") with one of ``product_ids``; an operator's error
    when there is none, or several and no serial chooses one. Shared by the R1 and R2 drivers."""
    try:
        devices = list(usb.core.find(find_all=True, idVendor=p.VENDOR_ID,
                                     custom_match=lambda d: d.idProduct in product_ids, backend=backend))
    except usb.core.NoBackendError as error:
        raise NoUsbBackend(NO_BACKEND_MESSAGE) from error
    if not devices:
        raise DeviceNotFound(
            f"No Aillio {roaster} found on USB (searched vendor:product {_ids_text(product_ids)}). "
            f"Is the roaster switched on and the USB cable plugged in? `lsusb | grep 0483` should list it. {hint}"
        )
    if serial is None and len(devices) > 1:
        raise WrongRoaster(f"{len(devices)} {roaster}s are on USB; set roaster_serial to choose the one to drive")
    return devices


def translate_usb_error(error: usb.core.USBError, doing: str, roaster: str = "Bullet R1") -> DeviceError:
    """The operator's error for a pyusb error (what happened and the fix); shared by the R1 and R2 drivers."""
    if isinstance(error, usb.core.USBTimeoutError):
        return ReadTimeout(f"{roaster} did not answer while {doing} (timeout); the read stalled")
    if error.errno == errno.EACCES:
        return PermissionDenied(
            f"Permission denied while {doing}. On Linux install the udev rule from docs/device.md "
            "(/etc/udev/rules.d/99-aillio.rules), run `sudo udevadm control --reload && sudo udevadm trigger`, "
            "then unplug and replug the roaster."
        )
    if error.errno == errno.EBUSY:
        return KernelDriverBusy(
            f"USB interface {p.INTERFACE} is busy while {doing}: another program or kernel driver holds it. "
            "Close Artisan/RoasTime or any other roaster software (another sidecar run on this roaster too), then retry."
        )
    if error.errno in (errno.ENODEV, errno.ENOENT, errno.EPIPE, errno.EIO):
        return DeviceDisconnected(f"{roaster} disconnected while {doing} ({error}); check the USB cable and power")
    return DeviceError(f"USB error while {doing}: {error}")


def release(device: usb.core.Device, interface: int) -> None:
    """Release a claimed interface and pyusb's handle; never raises (the roaster may be unplugged)."""
    try:
        usb.util.release_interface(device, interface)
    except usb.core.USBError:
        pass
    usb.util.dispose_resources(device)


class BulletR1:
    """One open, claimed Bullet R1 (``roaster.RoasterDriver``)."""

    limits = p.LIMITS

    def __init__(self, device: usb.core.Device, info: r.DeviceInfo):
        self.device = device
        self.info = info
        self.product_id = device.idProduct
        self.model_name = p.PRODUCT_IDS.get(device.idProduct, f"unknown R1 0x{device.idProduct:04x}")
        self._late_replies_possible = False

    @classmethod
    def open(cls, serial: str | None = None, backend=None, product_ids=tuple(p.PRODUCT_IDS)) -> "BulletR1":
        """Open the R1 whose serial is ``serial``; with None, the only R1 on the bus.

        Each candidate is claimed and asked for its serial; the ones not chosen are released. One that another
        program holds cannot be asked: it is passed over (it may be another sidecar's roaster), and is the
        error only when no other candidate is the one asked for."""
        devices = find_roasters("Bullet R1", product_ids, serial, backend,
                                "Use simulate=true to run against the virtual R1.")
        seen, busy = [], None
        for device in devices:
            try:
                roaster = cls._claim(device)
            except KernelDriverBusy as error:
                if serial is None:
                    raise
                busy = error
                continue
            if serial is None or roaster.info.serial == str(serial):
                return roaster
            seen.append(roaster.info.serial)
            roaster.close()
        if busy is not None:
            raise KernelDriverBusy(f"No free Bullet R1 with serial {serial} (found serial {', '.join(seen) or 'none'}); "
                                   f"the roaster may be the one held by another program: {busy}") from busy
        raise WrongRoaster(f"No Bullet R1 with serial {serial} on USB (found serial {', '.join(seen)}); "
                           "check roaster_serial and which roaster is plugged in")

    @classmethod
    def _claim(cls, device: usb.core.Device) -> "BulletR1":
        """Detach a kernel driver, configure, claim interface 1, read serial/firmware/roast count."""
        try:
            try:
                if device.is_kernel_driver_active(p.INTERFACE):
                    device.detach_kernel_driver(p.INTERFACE)
            except (usb.core.USBError, NotImplementedError):
                pass  # not supported on every OS; claiming below reports a real conflict
            try:
                configuration = device.get_active_configuration().bConfigurationValue
            except usb.core.USBError:
                configuration = None
            if configuration != p.CONFIGURATION:
                device.set_configuration(p.CONFIGURATION)
            usb.util.claim_interface(device, p.INTERFACE)
        except usb.core.USBError as error:
            release(device, p.INTERFACE)
            raise translate_usb_error(error, "opening the roaster") from error
        roaster = cls(device, r.DeviceInfo(serial="?", firmware=None, roast_count=None))
        try:
            roaster._drain()  # a program killed between a request and its read leaves the reply in the roaster
            roaster.info = roaster._read_info()
        except r.DeviceError:
            # pyusb frees nothing by itself: a handle left claimed makes every later open of this roaster 'busy'
            roaster.close()
            raise
        return roaster

    def close(self) -> None:
        release(self.device, p.INTERFACE)

    def _write(self, data: bytes, doing: str) -> None:
        try:
            self.device.write(p.EP_OUT, data, WRITE_TIMEOUT_MS)
        except usb.core.USBError as error:
            raise translate_usb_error(error, doing) from error

    def _read(self, size: int, doing: str) -> bytes:
        try:
            return bytes(self.device.read(p.EP_IN, size, READ_TIMEOUT_MS))
        except usb.core.USBTimeoutError as error:
            self._late_replies_possible = True
            raise translate_usb_error(error, doing) from error
        except usb.core.USBError as error:
            raise translate_usb_error(error, doing) from error

    def _drain(self) -> None:
        """After a timeout a late reply may still arrive; discard it so a poll never reads old data."""
        for _ in range(MAX_DRAIN_READS):
            try:
                self.device.read(p.EP_IN, p.STATUS_HALF_LEN, DRAIN_TIMEOUT_MS)
            except usb.core.USBTimeoutError:
                break
            except usb.core.USBError as error:
                raise translate_usb_error(error, "discarding late replies") from error
        self._late_replies_possible = False

    def _request(self, request: bytes, size: int, doing: str) -> bytes:
        self._write(request, doing)
        return self._read(size, doing)

    def _read_info(self) -> r.DeviceInfo:
        info = self._request(p.INFO_REQUEST, p.INFO_REPLY_LEN, "reading serial/firmware")
        roast_count = self._request(p.ROAST_COUNT_REQUEST, p.ROAST_COUNT_REPLY_LEN, "reading the roast count")
        try:
            return p.decode_info(info, roast_count)
        except ValueError as error:  # a short reply is a failed open like any other: the claim is released
            raise r.DeviceError(f"Bullet R1 gave an unusable reply while reading serial/firmware: {error}") from error

    def poll(self) -> r.Status:
        """One status poll (two requests, 128 bytes). Raises InvalidStatus, ReadTimeout, DeviceDisconnected."""
        if self._late_replies_possible:
            self._drain()
        first = self._request(p.STATUS_REQUEST_1, p.STATUS_HALF_LEN, "polling status (part 1)")
        second = self._request(p.STATUS_REQUEST_2, p.STATUS_HALF_LEN, "polling status (part 2)")
        try:
            return p.decode_status(first + second)
        except r.InvalidStatus:
            # a reply later than the drain puts every later reply one request behind (each status then pairs
            # one poll's second half with the next one's first): drain before the next poll to line them up
            self._late_replies_possible = True
            raise

    def apply(self, action: r.Action) -> None:
        """Write one 4-byte command (heater/fan step, drum level, PRS). No reply is expected."""
        command = p.drum_command(action.level) if action.kind == "drum" else ACTION_BYTES[action]
        self._write(command, f"sending {action.describe()} ({command.hex(' ')})")


class BulletR1Model:
    """``roaster.RoasterModel`` for the Bullet R1 (plain and IBTS)."""

    name = "Aillio Bullet R1"
    limits = p.LIMITS

    def open(self, serial: str | None = None, backend=None) -> BulletR1:
        return BulletR1.open(serial, backend)


BULLET_R1 = BulletR1Model()
