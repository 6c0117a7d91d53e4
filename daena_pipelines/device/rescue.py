"""Make a roaster safe after the sidecar that commanded it was killed (kill -9, OOM, a crash).

Nothing runs in a killed process, so its exit procedure cannot. Its warehouse worker is another
process and survives it; it reopens the roaster (the kernel released the dead process's claim) and
runs the same abort the sidecar would have: heater down and PRS until a status shows heater 0 in
a safe state, confirmed over ``safe_confirm_s`` (``safety.Abort``). docs/device.md, "kill -9".
"""
from __future__ import annotations

from dataclasses import dataclass

from daena_pipelines.device.clock import RealClock
from daena_pipelines.device.models import MODELS, backend_for
from daena_pipelines.device.roaster import DeviceDisconnected, DeviceError, InvalidStatus, RoasterDriver, Status
from daena_pipelines.device.safety import Abort, SafetyLimits
from daena_pipelines.device.virtual_r1 import pick_up

WHO = "the warehouse worker"


@dataclass(frozen=True)
class RescuePlan:
    """What the worker needs to reopen the sidecar's roaster and drive it safe (sent to its process once)."""

    model: str  # a key of models.MODELS
    serial: str  # the roaster the sidecar had open: only that one is opened
    limits: SafetyLimits  # as the sidecar applied them (its settings within the model's)
    poll_interval_s: float
    reconnect_interval_s: float  # one open attempt per this many seconds while the roaster is not open
    timeout_s: float  # the sidecar's exit_timeout_s: the same time to confirm it safe
    virtual_memory: str | None = None  # simulation: where the virtual roaster remembers itself (virtual_r1.pick_up)


def make_safe(plan: RescuePlan) -> str:
    """Drive the roaster to heater 0 in a safe state, confirmed by status, within ``plan.timeout_s``. Returns
    what happened, one line for the session's exit_outcome (it never raises: the worker still closes the rows)."""
    try:
        return _rescue(plan)
    except Exception as error:  # noqa: BLE001 (a bug here must not also leave the dead session's rows open)
        return f"{WHO} failed while making the roaster safe ({type(error).__name__}: {error}): NOT made safe, check it at its panel"


def _rescue(plan: RescuePlan) -> str:
    try:
        if plan.virtual_memory is not None:
            device = pick_up(plan.virtual_memory)
            clock, backend = device.clock, backend_for(device)
        else:
            clock, backend = RealClock(), None
    except OSError as error:  # the virtual roaster's memory unreadable
        return f"{WHO} could not reopen the roaster to make it safe ({error}): NOT made safe, check it at its panel"
    rescue = _Rescue(plan, clock, backend)
    try:
        return rescue.run()
    finally:
        rescue.close()


class _Rescue:
    """The abort, with the roaster (re)opened whenever it is not: unplugged at the kill or during the rescue and
    plugged back in before the deadline, it is still made safe (as the sidecar's exit reconnects)."""

    def __init__(self, plan: RescuePlan, clock, backend):
        self.plan, self.clock, self.backend = plan, clock, backend
        self.driver: RoasterDriver | None = None
        self.trouble: DeviceError | None = None  # why the roaster is not open, while it is not
        self.opened = False

    def run(self) -> str:
        plan, clock = self.plan, self.clock
        model, _ = MODELS[plan.model]
        abort = Abort("sidecar killed", clock.now(), plan.limits)
        deadline = clock.now() + plan.timeout_s
        next_open = clock.now()
        last: Status | None = None
        while clock.now() < deadline:
            if self.driver is None and clock.now() >= next_open:
                next_open = clock.now() + plan.reconnect_interval_s
                try:
                    self.driver, self.opened, self.trouble = model.open(plan.serial, backend=self.backend), True, None
                except DeviceError as error:
                    self.trouble = error
            if self.driver is not None:
                try:
                    last = self.driver.poll()
                    action = abort.advance(last, clock.now())
                    if abort.done:
                        return f"{WHO} made the roaster safe: heater 0 and {last.state_name} confirmed by status"
                    if action is not None:
                        self.driver.apply(action)
                except DeviceDisconnected as error:  # that handle never answers again: reopen the roaster
                    self.close()
                    self.trouble = error
                    abort.unreachable()
                except (DeviceError, InvalidStatus):
                    abort.unreachable()  # one lost or garbled status: the confirmation starts again
            clock.sleep(plan.poll_interval_s)
        if not self.opened:
            return (f"{WHO} could not reopen the roaster within {plan.timeout_s:g} s to make it safe ({self.trouble}): "
                    "NOT made safe, check it at its panel")
        if self.driver is None:
            return f"the roaster is gone ({self.trouble}): {WHO} could NOT make it safe, check it at its panel"
        state = "no status" if last is None else f"heater {last.heater}, {last.state_name}"
        return f"{WHO} could NOT confirm the roaster safe within {plan.timeout_s:g} s ({state}): check it at its panel"

    def close(self) -> None:
        if self.driver is not None:
            try:
                self.driver.close()
            except DeviceError:
                pass  # released by this process's end anyway
            self.driver = None
