"""The roaster models the sidecar can drive, by the key a run configuration names them with."""
from __future__ import annotations

from daena_pipelines.device.driver import BULLET_R1
from daena_pipelines.device.r2.driver import BULLET_R2
from daena_pipelines.device.r2.virtual import VirtualBulletR2, VirtualR2Backend, plug_in_virtual_r2
from daena_pipelines.device.virtual_r1 import VirtualBulletR1, VirtualR1Backend, plug_in_virtual_r1

# roaster model key -> (driver model, virtual twin factory(config, clock) -> (device, pyusb backend))
MODELS = {"r1": (BULLET_R1, plug_in_virtual_r1), "r2": (BULLET_R2, plug_in_virtual_r2)}


def backend_for(device: VirtualBulletR1) -> VirtualR1Backend:
    """The pyusb backend that presents a virtual roaster picked up in another process (virtual_r1.pick_up)."""
    return VirtualR2Backend(device) if isinstance(device, VirtualBulletR2) else VirtualR1Backend(device)
