"""Make a roaster safe after the sidecar that commanded it was killed (kill -9, OOM, a crash).

Nothing runs in a killed process, so its exit procedure cannot. Another process survives it: the
warehouse worker (command_store.py) or, for a sidecar that only records, its watcher (watcher.py).
It reopens the roaster (the kernel released the dead process's claim) and runs the same abort the
sidecar would have: heater down and PRS until a status shows heater 0 in a safe state, confirmed
over ``safe_confirm_s`` (``safety.Abort``). docs/device.md, "kill -9".
"""
from __future__ import annotations

import atexit
import ctypes
import multiprocessing
import multiprocessing.context
import signal
from dataclasses import dataclass

from daena_pipelines.device.clock import RealClock
from daena_pipelines.device.models import MODELS, backend_for
from daena_pipelines.device.roaster import DeviceDisconnected, DeviceError, InvalidStatus, RoasterDriver, Status
from daena_pipelines.device.safety import Abort, SafetyLimits
from daena_pipelines.device.virtual_r1 import pick_up

WORKER = "the warehouse worker"
PARENT_CHECK_S = 0.5  # how often the worker or watcher process looks whether its sidecar is still alive
# what ends a session through its exit procedure (sidecar_process); they often reach the whole process group (a
# terminal closed: SIGHUP; Ctrl-C, Ctrl-\; a service manager's SIGTERM), so the worker and the watcher ignore them:
# the sidecar stops them once its exit procedure has run, and they stop by themselves once the sidecar is gone
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)
# the terminal's job control (Ctrl-Z, a background job's terminal I/O) would pause the sidecar, its watchdog with it,
# and the worker or watcher, while a roaster they commanded heats on: all ignore it
JOB_CONTROL_SIGNALS = (signal.SIGTSTP, signal.SIGTTIN, signal.SIGTTOU)
# the operator's (sidecar_process: SIGUSR1 abort, SIGUSR2 first crack) are the sidecar's; their default action ends a
# process, so sent to the whole process group (kill -USR1 -<pgid>) they ended the worker or watcher, unseen, and a
# kill -9 during that very abort went unrescued
OPERATOR_SIGNALS = (signal.SIGUSR1, signal.SIGUSR2)
DIED = "ended without its exit procedure (the sidecar process was killed or crashed)"
NEVER_COMMANDED = "the sidecar never commanded the roaster: left as it is"
LEFT_AS_IS = "the roaster keeps what it was last sent (exit_policy leave_roaster_as_is)"


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


class SharedFlag:
    """A flag one process sets and the process that outlives it reads, in shared memory without a lock. A
    multiprocessing Event takes a lock to set and to read: a sidecar killed while it set one left that lock taken,
    and the survivor's read waited for ever (no rescue). Pass it to the process at its start."""

    def __init__(self) -> None:
        self._value = multiprocessing.get_context("spawn").RawValue(ctypes.c_bool, False)

    def set(self) -> None:
        self._value.value = True

    def is_set(self) -> bool:
        return self._value.value


class Outliving(multiprocessing.context.SpawnProcess):
    """A process beside the sidecar that survives its kill (the warehouse worker, the watcher). It ignores SIGTERM,
    which is how multiprocessing's own exit handler ends a daemon process before joining it: a sidecar leaving
    without ``end`` would wait for it for ever. Registered after that handler, the kill here runs before it."""

    def start(self) -> None:
        super().start()
        atexit.register(self._kill)

    def _kill(self) -> None:
        if self.is_alive():
            self.kill()
            self.join(1.0)

    def end(self, timeout_s: float) -> None:
        """Wait ``timeout_s`` for it to end by itself (the sidecar has told it to), then kill it."""
        self.join(timeout_s)
        self._kill()
        atexit.unregister(self._kill)


def outlive_the_sidecar() -> multiprocessing.process.BaseProcess:
    """In the worker's or the watcher's own process: leave the stop, job-control and operator signals to the
    sidecar, and return it (``is_alive``: looked at every ``PARENT_CHECK_S``)."""
    for ignored in (*STOP_SIGNALS, *JOB_CONTROL_SIGNALS, *OPERATOR_SIGNALS):
        signal.signal(ignored, signal.SIG_IGN)
    return multiprocessing.parent_process()


def after_death(plan: RescuePlan | None, commanded, who: str, before_rescue=None) -> str:
    """The sidecar died without its exit procedure: make its roaster safe if it had commanded it (``commanded``, a
    SharedFlag it set before its first command) and its exit policy is make_safe (``plan``; None: leave_roaster_as_is),
    else leave it alone. ``before_rescue(timeout_s)`` runs first when there is a rescue. Returns what became of the
    roaster, one line."""
    if not commanded.is_set():
        return NEVER_COMMANDED
    if plan is None:
        return LEFT_AS_IS
    if before_rescue is not None:
        before_rescue(plan.timeout_s)
    return make_safe(plan, who)


def make_safe(plan: RescuePlan, who: str = WORKER) -> str:
    """Drive the roaster to heater 0 in a safe state, confirmed by status, within ``plan.timeout_s``. Returns
    what happened, one line naming ``who`` did it, for the session's exit_outcome (it never raises: the worker
    still closes the rows)."""
    try:
        return _rescue(plan, who)
    except Exception as error:  # noqa: BLE001 (a bug here must not also leave the dead session's rows open)
        return f"{who} failed while making the roaster safe ({type(error).__name__}: {error}): NOT made safe, check it at its panel"


def _rescue(plan: RescuePlan, who: str) -> str:
    try:
        if plan.virtual_memory is not None:
            device = pick_up(plan.virtual_memory)
            clock, backend = device.clock, backend_for(device)
        else:
            clock, backend = RealClock(), None
    except OSError as error:  # the virtual roaster's memory unreadable
        return f"{who} could not reopen the roaster to make it safe ({error}): NOT made safe, check it at its panel"
    rescue = _Rescue(plan, clock, backend, who)
    try:
        return rescue.run()
    finally:
        rescue.close()


class _Rescue:
    """The abort, with the roaster (re)opened whenever it is not: unplugged at the kill or during the rescue and
    plugged back in before the deadline, it is still made safe (as the sidecar's exit reconnects)."""

    def __init__(self, plan: RescuePlan, clock, backend, who: str):
        self.plan, self.clock, self.backend, self.who = plan, clock, backend, who
        self.driver: RoasterDriver | None = None
        self.trouble: DeviceError | None = None  # why the roaster is not open, while it is not
        self.opened = False

    def run(self) -> str:
        plan, clock, who = self.plan, self.clock, self.who
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
                        return f"{who} made the roaster safe: heater 0 and {last.state_name} confirmed by status"
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
            return (f"{who} could not reopen the roaster within {plan.timeout_s:g} s to make it safe ({self.trouble}): "
                    "NOT made safe, check it at its panel")
        if self.driver is None:
            return f"the roaster is gone ({self.trouble}): {who} could NOT make it safe, check it at its panel"
        state = "no status" if last is None else f"heater {last.heater}, {last.state_name}"
        return f"{who} could NOT confirm the roaster safe within {plan.timeout_s:g} s ({state}): check it at its panel"

    def close(self) -> None:
        if self.driver is not None:
            try:
                self.driver.close()
            except DeviceError:
                pass  # released by this process's end anyway
            self.driver = None
