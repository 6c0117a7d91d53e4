"""pyusb driver for the Aillio Bullet R2: reset and claim on open, endpoints from the descriptors,
frames read as the roaster pushes them, commands written with their CRC32.

The same code talks to a real R2 (libusb) and to the virtual one (``backend=VirtualR2Backend(...)``);
errors are the R1 driver's, whose messages say what to do.
"""
from __future__ import annotations

import usb.core
import usb.util

from daena_pipelines.device import driver as r1_driver
from daena_pipelines.device.driver import DeviceNotFound, NoUsbBackend, R1Error, ReadTimeout
from daena_pipelines.device.protocol import DeviceInfo
from daena_pipelines.device.r2 import protocol as r2

ROASTER = "Bullet R2"
READ_TIMEOUT_MS = 300  # the R2 sends a temperature frame several times a second (virtual: every 0.1 s)
WRITE_TIMEOUT_MS = 300
DRAIN_TIMEOUT_MS = 5
MAX_FRAMES_PER_POLL = 64  # frames queued since the last poll; all are read, the newest counts


class BulletR2:
    """One claimed R2. ``poll()`` returns the newest complete reading (temperature frame plus the
    latest fans and power frames); ``send(body)`` frames a 4-byte command body with its CRC."""

    model = "r2"

    def __init__(self, device: usb.core.Device, ep_in: int, ep_out: int):
        self.device = device
        self.ep_in, self.ep_out = ep_in, ep_out
        self.product_id = device.idProduct
        self.model_name = r2.PRODUCT_IDS[r2.PRODUCT_ID]
        self._fans: r2.FansFrame | None = None
        self._power: r2.PowerFrame | None = None
        self.invalid_frames = 0

    @classmethod
    def open(cls, backend=None) -> "BulletR2":
        """Find the R2, reset it, detach a kernel driver, configure, claim interface 1, read the endpoints."""
        try:
            device = usb.core.find(idVendor=r2.VENDOR_ID, idProduct=r2.PRODUCT_ID, backend=backend)
        except usb.core.NoBackendError as error:
            raise NoUsbBackend(r1_driver.NO_BACKEND_MESSAGE) from error
        if device is None:
            raise DeviceNotFound(
                f"No Aillio Bullet R2 found on USB (searched vendor:product {r2.VENDOR_ID:04x}:{r2.PRODUCT_ID:04x}). "
                "Is the roaster switched on and the USB cable plugged in? `lsusb | grep 0483` should list it. "
                "Use simulate=true with model r2 to run against the virtual R2."
            )
        try:
            try:
                device.reset()  # Artisan resets the R2 before using it; a failed reset is not fatal
            except (usb.core.USBError, NotImplementedError):
                pass
            try:
                if device.is_kernel_driver_active(r2.INTERFACE):
                    device.detach_kernel_driver(r2.INTERFACE)
            except (usb.core.USBError, NotImplementedError):
                pass  # not supported on every OS; claiming below reports a real conflict
            device.set_configuration(r2.CONFIGURATION)
            interface = device.get_active_configuration()[(r2.INTERFACE, 0)]
            usb.util.claim_interface(device, r2.INTERFACE)
        except usb.core.USBError as error:
            raise r1_driver._translate(error, "opening the roaster", ROASTER) from error
        directions = {usb.util.endpoint_direction(ep.bEndpointAddress): ep.bEndpointAddress for ep in interface}
        if set(directions) != {usb.util.ENDPOINT_IN, usb.util.ENDPOINT_OUT}:
            usb.util.dispose_resources(device)
            raise R1Error(f"Bullet R2 interface {r2.INTERFACE} lists endpoints {sorted(directions.values())}, "
                          "expected one IN and one OUT; is this really an R2?")
        return cls(device, directions[usb.util.ENDPOINT_IN], directions[usb.util.ENDPOINT_OUT])

    def close(self) -> None:
        try:
            usb.util.release_interface(self.device, r2.INTERFACE)
        except usb.core.USBError:
            pass  # already gone (unplugged)
        usb.util.dispose_resources(self.device)

    def read_info(self) -> DeviceInfo:
        """The R2 answers no info request; the serial is the USB serial-number string, if it has one."""
        try:
            serial = self.device.serial_number
        except (usb.core.USBError, ValueError):
            serial = None
        return DeviceInfo(serial=serial, firmware=None, roast_count=None)

    def _read_frame(self, timeout_ms: int) -> bytes:
        try:
            return bytes(self.device.read(self.ep_in, r2.FRAME_LEN, timeout_ms))
        except usb.core.USBError as error:
            raise r1_driver._translate(error, "reading a frame", ROASTER) from error

    def poll(self) -> r2.Reading:
        """Read every queued frame and return the newest reading. Raises ReadTimeout when no
        temperature frame comes within READ_TIMEOUT_MS, InvalidFrame when the newest one is unusable,
        DeviceDisconnected."""
        newest: bytes | None = None
        for _ in range(MAX_FRAMES_PER_POLL):
            try:
                frame = self._read_frame(READ_TIMEOUT_MS if newest is None else DRAIN_TIMEOUT_MS)
            except ReadTimeout:
                if newest is None:
                    raise
                break
            if frame[:1] == bytes([r2.FrameType.TEMPERATURE]):
                newest = frame
                continue
            try:
                decoded = r2.decode(frame)
            except r2.InvalidFrame:
                self.invalid_frames += 1  # a frame type nobody decodes (0xA3/0xA4) or a short read
                continue
            if isinstance(decoded, r2.FansFrame):
                self._fans = decoded
            else:
                self._power = decoded
        if newest is None:
            raise ReadTimeout(f"Bullet R2 sent no temperature frame in {MAX_FRAMES_PER_POLL} frames")
        return r2.Reading(r2.decode(newest), self._fans, self._power)

    def send(self, body: bytes) -> None:
        """Write one command body (4 bytes) with its CRC. The R2 sends no reply."""
        data = r2.frame_command(body)
        try:
            self.device.write(self.ep_out, data, WRITE_TIMEOUT_MS)
        except usb.core.USBError as error:
            raise r1_driver._translate(error, f"sending command {data.hex(' ')}", ROASTER) from error
