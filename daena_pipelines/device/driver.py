"""pyusb driver for the Aillio Bullet R1: open/claim, info, status polling, command writes.

The same code talks to a real roaster (libusb backend picked by pyusb) and to the virtual R1
(``backend=VirtualR1Backend(...)``). Errors users actually hit become ``R1Error`` subclasses whose
message says what to do.
"""
from __future__ import annotations

import errno

import usb.core
import usb.util

from daena_pipelines.device import protocol as p

READ_TIMEOUT_MS = 300
WRITE_TIMEOUT_MS = 300
DRAIN_TIMEOUT_MS = 5
MAX_DRAIN_READS = 256  # a long stall can leave many late replies; all must go


NO_BACKEND_MESSAGE = (
    "No libusb backend found for pyusb. Install libusb 1.0: "
    "`sudo apt install libusb-1.0-0` (Debian/Ubuntu), `brew install libusb` (macOS), "
    "or put libusb-1.0.dll beside python.exe (Windows)."
)


class R1Error(RuntimeError):
    """A device problem with a message meant for the operator (what happened and the fix)."""


class DeviceNotFound(R1Error):
    pass


class PermissionDenied(R1Error):
    pass


class KernelDriverBusy(R1Error):
    pass


class NoUsbBackend(R1Error):
    pass


class DeviceDisconnected(R1Error):
    pass


class ReadTimeout(R1Error):
    pass


def _ids_text(product_ids) -> str:
    return ", ".join(f"{p.VENDOR_ID:04x}:{pid:04x}" for pid in product_ids)


def _translate(error: usb.core.USBError, doing: str, roaster: str = "Bullet R1") -> R1Error:
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
            "Close Artisan/RoasTime or any other roaster software, then retry."
        )
    if error.errno in (errno.ENODEV, errno.ENOENT, errno.EPIPE, errno.EIO):
        return DeviceDisconnected(f"{roaster} disconnected while {doing} ({error}); check the USB cable and power")
    return R1Error(f"USB error while {doing}: {error}")


class BulletR1:
    def __init__(self, device: usb.core.Device):
        self.device = device
        self.product_id = device.idProduct
        self.model_name = p.PRODUCT_IDS.get(device.idProduct, f"unknown R1 0x{device.idProduct:04x}")
        self._late_replies_possible = False

    @classmethod
    def open(cls, backend=None, product_ids=tuple(p.PRODUCT_IDS)) -> "BulletR1":
        """Find the first R1 on the bus, detach a kernel driver, configure, claim interface 1."""
        try:
            device = usb.core.find(
                idVendor=p.VENDOR_ID, custom_match=lambda d: d.idProduct in product_ids, backend=backend
            )
        except usb.core.NoBackendError as error:
            raise NoUsbBackend(NO_BACKEND_MESSAGE) from error
        if device is None:
            raise DeviceNotFound(
                f"No Aillio Bullet R1 found on USB (searched vendor:product {_ids_text(product_ids)}). "
                "Is the roaster switched on and the USB cable plugged in? `lsusb | grep 0483` should list it. "
                "Use simulate=true to run against the virtual R1."
            )
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
            raise _translate(error, "opening the roaster") from error
        return cls(device)

    def close(self) -> None:
        try:
            usb.util.release_interface(self.device, p.INTERFACE)
        except usb.core.USBError:
            pass  # already gone (unplugged)
        usb.util.dispose_resources(self.device)

    def _write(self, data: bytes, doing: str) -> None:
        try:
            self.device.write(p.EP_OUT, data, WRITE_TIMEOUT_MS)
        except usb.core.USBError as error:
            raise _translate(error, doing) from error

    def _read(self, size: int, doing: str) -> bytes:
        try:
            return bytes(self.device.read(p.EP_IN, size, READ_TIMEOUT_MS))
        except usb.core.USBTimeoutError as error:
            self._late_replies_possible = True
            raise _translate(error, doing) from error
        except usb.core.USBError as error:
            raise _translate(error, doing) from error

    def _drain(self) -> None:
        """After a timeout a late reply may still arrive; discard it so a poll never reads old data."""
        for _ in range(MAX_DRAIN_READS):
            try:
                self.device.read(p.EP_IN, p.STATUS_HALF_LEN, DRAIN_TIMEOUT_MS)
            except usb.core.USBTimeoutError:
                break
            except usb.core.USBError as error:
                raise _translate(error, "discarding late replies") from error
        self._late_replies_possible = False

    def _request(self, request: bytes, size: int, doing: str) -> bytes:
        self._write(request, doing)
        return self._read(size, doing)

    def read_info(self) -> p.DeviceInfo:
        info = self._request(p.INFO_REQUEST, p.INFO_REPLY_LEN, "reading serial/firmware")
        roast_count = self._request(p.ROAST_COUNT_REQUEST, p.ROAST_COUNT_REPLY_LEN, "reading the roast count")
        return p.decode_info(info, roast_count)

    def poll(self) -> p.StatusReading:
        """One status poll (two requests, 128 bytes). Raises InvalidStatus, ReadTimeout, DeviceDisconnected."""
        if self._late_replies_possible:
            self._drain()
        first = self._request(p.STATUS_REQUEST_1, p.STATUS_HALF_LEN, "polling status (part 1)")
        second = self._request(p.STATUS_REQUEST_2, p.STATUS_HALF_LEN, "polling status (part 2)")
        return p.decode_status(first + second)

    def send(self, command: bytes) -> None:
        """Write one 4-byte command (heater/fan step, drum level, PRS). No reply is expected."""
        self._write(command, f"sending command {command.hex(' ')}")
