"""The sidecar: poll a roaster at ~10 Hz, record durably, execute approved commands within limits,
and never leave a roaster it commanded heating with nobody in control.

The poll loop (one thread) does, each cycle: poll the status (or, while the roaster is unplugged,
one reconnect attempt), record (every ``record_interval_s`` and at every state change), check the
ceilings, then write at most one action (abort first, then the running command, then the next
approved proposal). It touches the warehouse only through the in-memory queues of a
``CommandBridge`` (its own thread) and is watched by a ``Watchdog`` (another thread) that drives
the roaster to safety itself if the loop stops cycling. Every way out of a session (cooling ended,
duration, stop request or signal, giving up after a disconnect, an exception, the watchdog) goes
through the exit procedure: when ``exit_policy`` is ``make_safe`` (the default) and the sidecar
has commanded the roaster this session, the abort process runs until a status shows heater 0 in
a safe state, the roaster is gone, or ``exit_timeout_s`` has passed. The safety model is written
out in docs/device.md.
"""
from __future__ import annotations

import logging
import math
import queue
import shutil
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from daena_pipelines.config import Settings
from daena_pipelines.device import clock as device_clock, contract as device_contract, roaster as r
from daena_pipelines.device.clock import RealClock, SteppedClock, make_clock
from daena_pipelines.device.command_store import CommandBridge, WarehouseIO, claim_machine
from daena_pipelines.device.recording import SessionRecorder
from daena_pipelines.device.roaster import (
    HEATING_STATES, DeviceDisconnected, DeviceError, InvalidStatus, ReadTimeout, RoasterDriver, State,
    Status,
)
from daena_pipelines.device.safety import (
    LEVEL_COMMANDS, TP_GRACE_S, Abort, Command, Execution, ProbeWatch, SafeConfirmation, SafetyLimits,
    approval_refusal, ended_approval, is_safe, level_of, refusal, trip_reason,
)
from daena_pipelines.device.models import MODELS
from daena_pipelines.device.rescue import RescuePlan
from daena_pipelines.device.virtual_r1 import Faults, OperatorPlan, VirtualR1Config
from daena_pipelines.device.watcher import Watcher
from daena_pipelines.telemetry.contract import SIDECAR_SUFFIX
from daena_pipelines.telemetry.sidecar import parse_sidecar

log = logging.getLogger(__name__)

STOP_CONDITIONS = ("cool_end", "duration")
# a level command steps (and a waiting one starts) only while the approvals were re-read within this many queue
# cycles, and never less than APPROVAL_RECHECK_MIN_S real seconds (a busy warehouse cycle of a scaled simulation):
# a revocation shows only in the warehouse, and another program may hold it
APPROVAL_RECHECK_CYCLES = 3
APPROVAL_RECHECK_MIN_S = 2.0
# the machine_id's lease lasts this many warehouse cycles, at least LEASE_MIN_S real seconds: longer than the
# approvals re-read window, so a sidecar that cannot renew it has stopped stepping before another may take it over
LEASE_CYCLES = 5
LEASE_MIN_S = 10.0
# a stepped run waits this long (real seconds) for each warehouse cycle; a slower warehouse ends the session
STEPPED_SYNC_TIMEOUT_S = 30.0
TIME_GAP_S = 5.0  # device seconds between two poll cycles (times the time scale) said as a fault: nobody watched
STALL_REOPEN_S = 5.0  # a roaster silent this long is closed and reopened like an unplugged one (then reconnect_timeout_s)
EXIT_POLICIES = ("make_safe", "leave_roaster_as_is")
# beside a simulated recording while it runs: the virtual roaster's state, for the worker's rescue (rescue.py)
VIRTUAL_ROASTER_SUFFIX = ".virtual-roaster.pickle"
TIMINGS = ("max_duration_s", "poll_interval_s", "record_interval_s", "queue_poll_interval_s", "approval_ttl_s",
           "reconnect_timeout_s", "reconnect_interval_s", "exit_timeout_s", "watchdog_timeout_s")

@dataclass
class SidecarConfig:
    # matched against device.command_queue.machine_id; None: the model's key ('r1', 'r2'), never another model's
    machine_id: str | None = None
    machine_name: str | None = None  # defaults to the model name (and "(virtual)" when simulated)
    model: str = "r1"  # roaster model (a key of MODELS)
    roaster_serial: str | None = None  # open the roaster with this serial; None: the only one on the bus
    simulate: bool = False
    time_scale: float = 1.0  # simulation only: 1 real time, >1 faster, 0 stepped (deterministic)
    stop_on: str = "cool_end"  # 'cool_end': after cooling ends; 'duration': after max_duration_s
    max_duration_s: float = 1800.0
    poll_interval_s: float = 0.1
    record_interval_s: float = 1.0
    bt_channel: str = "a"  # 'a': BT = bytes 0-3 (Artisan's R1 BT/DT); 'b': BT = bytes 8-11 (Artisan's IBTS mode)
    dry_end_bt_c: float | None = 150.0  # DRY_END when BT reaches it (None: only operator marks)
    fcs_bt_c: float | None = None  # FCs when BT reaches it; None (default): only the operator marks FCs
    queue_poll_interval_s: float = device_contract.WAREHOUSE_CYCLE_S  # how often the warehouse thread reads the queue (device seconds)
    approval_ttl_s: float = 300.0  # an approval without expires_at expires this long after approved_at
    reconnect_timeout_s: float = 30.0  # give up (and close the session) after this long unplugged
    reconnect_interval_s: float = 1.0  # one reconnect attempt per this many seconds, loop keeps cycling
    exit_policy: str = "make_safe"  # or 'leave_roaster_as_is' (opt-in: a commanded roaster keeps heating)
    exit_timeout_s: float = 12.0  # the make-safe exit ends by then (Dagster waits 20 s after SIGINT)
    watchdog_timeout_s: float = 2.0  # real seconds without a finished poll cycle before the watchdog acts
    recordings_dir: str | None = None  # in-progress files; default <data>/device/recordings
    landing_dir: str | None = None  # finished files; default Settings.sidecar_landing_dir
    warehouse: str | None = None  # command queue/executions; None: record only, execute nothing
    beans: str | None = None
    title: str | None = None
    notes: str | None = None
    batch_weight_g: float | None = None
    limits: SafetyLimits = field(default_factory=SafetyLimits)
    # simulation only
    seed: int = 0
    start_at: str | None = None  # ISO time the simulated clock starts at
    virtual: VirtualR1Config = field(default_factory=VirtualR1Config)

    def __post_init__(self):
        if self.stop_on not in STOP_CONDITIONS:
            raise ValueError(f"stop_on must be one of {STOP_CONDITIONS}, got {self.stop_on!r}")
        if self.bt_channel not in ("a", "b"):
            raise ValueError(f"bt_channel must be 'a' or 'b', got {self.bt_channel!r}")
        if self.exit_policy not in EXIT_POLICIES:
            raise ValueError(f"exit_policy must be one of {EXIT_POLICIES}, got {self.exit_policy!r}")
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {sorted(MODELS)}, got {self.model!r}")
        self.machine_id = self.machine_id or self.model  # an R2 started without one reads no R1's approvals
        if self.roaster_serial is not None:
            self.roaster_serial = str(self.roaster_serial)
        # a NaN time switches off what it times, silently (a NaN watchdog never fires again, a NaN reconnect timeout
        # never gives up); zero or less is no interval either
        bad = [name for name in TIMINGS if not (math.isfinite(getattr(self, name)) and getattr(self, name) > 0)]
        if bad or not (math.isfinite(self.time_scale) and self.time_scale >= 0):
            raise ValueError(f"these settings must be finite numbers > 0 (time_scale >= 0): {', '.join(bad) or 'time_scale'}")
        if not self.simulate:
            refuse_simulation_settings(self.simulation_settings())
        if self.seed != SidecarConfig.seed and self.virtual.seed not in (VirtualR1Config.seed, self.seed):
            raise ValueError(f"seed ({self.seed}) and virtual.seed ({self.virtual.seed}) differ, and the virtual "
                             f"roaster has one seed: give only one of them")

    @property
    def simulation_seed(self) -> int:
        """The virtual roaster's seed: virtual.seed when given, else seed (0, their default, counts as not given)."""
        return self.virtual.seed if self.virtual.seed != VirtualR1Config.seed else self.seed

    def simulation_settings(self) -> list[str]:
        """The settings only the virtual roaster reads that differ from their defaults (virtual.faults by field)."""
        given = [name for name in ("time_scale", "seed", "start_at") if getattr(self, name) != getattr(SidecarConfig, name)]
        virtual = [name for name in _not_default(self.virtual, "virtual.") if name != "virtual.faults"]
        return given + virtual + _not_default(self.virtual.faults, "virtual.faults.")

    @classmethod
    def from_dict(cls, values: dict) -> "SidecarConfig":
        """Build from plain JSON-able values (Dagster run config, Pipes extras)."""
        values = dict(values)
        # every unknown key, nested ones by their full name (virtual.faults.unplug_fle), before any settings object is built
        sections = {"": (cls, values)}
        if isinstance(values.get("limits"), dict):
            sections["limits."] = (SafetyLimits, values["limits"])
        if isinstance(values.get("virtual"), dict):
            sections["virtual."] = (VirtualR1Config, values["virtual"])
            for name, kind in (("faults", Faults), ("operator", OperatorPlan)):
                if isinstance(values["virtual"].get(name), dict):
                    sections[f"virtual.{name}."] = (kind, values["virtual"][name])
        unknown = [prefix + key for prefix, (kind, given) in sections.items()
                   for key in sorted(set(given) - {f.name for f in fields(kind)})]
        if unknown:
            raise ValueError(f"unknown sidecar settings: {unknown}")
        if isinstance(values.get("limits"), dict):
            values["limits"] = SafetyLimits(**{k: tuple(v) if isinstance(v, list) else v for k, v in values["limits"].items()})
        if isinstance(values.get("virtual"), dict):
            virtual = dict(values["virtual"])
            if isinstance(virtual.get("faults"), dict):
                virtual["faults"] = Faults(**{k: tuple(v) if isinstance(v, list) else v for k, v in virtual["faults"].items()})
            if isinstance(virtual.get("operator"), dict):
                virtual["operator"] = OperatorPlan(**{
                    k: tuple(tuple(x) for x in v) if isinstance(v, list) else v for k, v in virtual["operator"].items()
                })
            values["virtual"] = VirtualR1Config(**virtual)
        return cls(**values)


def refuse_simulation_settings(names: list[str]) -> None:
    """A real run (simulate: false) given settings only the virtual roaster reads is refused: they would be ignored
    without a word, so a fault set for a test would leave a real roast with nothing injected."""
    if names:
        raise ValueError(f"these settings apply only with simulate: true (the virtual roaster), and this run has "
                         f"simulate: false (a real roaster): {', '.join(names)}. Remove them, or set simulate: true")


def _not_default(settings, prefix: str) -> list[str]:
    """The fields of a dataclass of settings that differ from a default-built one, each named prefix + field."""
    defaults = type(settings)()
    return [prefix + f.name for f in fields(settings) if getattr(settings, f.name) != getattr(defaults, f.name)]


@dataclass
class SidecarResult:
    path: Path
    session_id: str
    source: str
    end_reason: str
    duration_s: float
    samples: int
    invalid_samples: int
    polls: int
    lost_polls: int
    commands_executed: int
    command_statuses: dict[str, int]
    faults: list[str]
    abort_latency_s: float | None
    jitter_s: np.ndarray  # lateness of each poll against its schedule, device seconds
    error: str | None  # traceback of an exception inside a cycle (the session still ended through the exit procedure)
    exit: dict  # the exit procedure: required, confirmed, final heater/state as the last status showed them
    probe_fault: dict | None = None  # the failed probe(s) and what they read (the footer's probe_fault)

    @property
    def left_unsafe(self) -> bool:
        """It commanded the roaster, its policy was make_safe, and the exit could not confirm it safe."""
        outcome = self.exit["outcome"]
        return (self.exit["commanded"] and self.exit["policy"] == "make_safe"
                and not outcome.startswith(("made safe", "already safe")))

    def metadata(self) -> dict:
        jitter = self.jitter_s
        return {
            "path": str(self.path),
            "session_id": self.session_id,
            "source": self.source,
            "end_reason": self.end_reason,
            "duration_s": round(self.duration_s, 1),
            "samples": self.samples,
            "invalid_samples": self.invalid_samples,
            "polls": self.polls,
            "lost_samples": self.lost_polls,
            "commands_executed": self.commands_executed,
            "command_statuses": self.command_statuses,
            "faults": self.faults,
            "abort_latency_s": self.abort_latency_s,
            "exit": self.exit,
            "error": self.error,
            "poll_jitter_p50_ms": round(float(np.percentile(jitter, 50)) * 1000, 2) if len(jitter) else None,
            "poll_jitter_p99_ms": round(float(np.percentile(jitter, 99)) * 1000, 2) if len(jitter) else None,
        }



def _sample_values(reading: Status) -> dict:
    """Every decoded field: the core channels under short keys (a failed probe's as null), the rest under their own names."""
    a, b = (None if math.isnan(value) else value for value in (reading.channel_a_c, reading.channel_b_c))
    return {"st": reading.state, "a": a, "b": b, "ex": reading.exhaust_c,
            "h": reading.heater, "f": reading.fan, "d": reading.drum, **reading.extra}


class Sidecar:
    def __init__(self, cfg: SidecarConfig, clock, open_driver: Callable[[str | None], RoasterDriver], source: str,
                 simulator: dict | None = None, progress: Callable[[str], None] | None = None,
                 recording_id: str | None = None):
        self.cfg = cfg
        self.clock = clock
        self.open_driver = open_driver  # serial (None: the only roaster) -> an open driver
        self.source = source
        self.simulator = simulator
        self.progress = progress or log.info
        self.recording_id = recording_id or uuid.uuid4().hex
        self._abort_request: tuple[str, float] | None = None
        self._stop_request: str | None = None
        self._marks: list[str] = []
        self.usb_lock = threading.RLock()  # the poll loop and the watchdog share the driver
        self.driving_safe = False  # drive_safe is running (the watchdog's thread, or a failing loop)
        self.heartbeat = time.monotonic()
        self.virtual_roaster = None  # simulation: the virtual roaster (build_sidecar), remembered for a rescue
        self.watcher: Watcher | None = None  # a sidecar without a warehouse: what survives a kill of it (watcher.py)
        self.survivor_gone = False  # the worker or watcher ended while this sidecar ran (said once)

    # ----- requests from outside the loop (signal handlers, tests) ----------------------------
    def request_abort(self, reason: str) -> None:
        if self._abort_request is None:
            self._abort_request = (reason, self.clock.now())

    def request_stop(self, reason: str) -> None:
        if self._stop_request is None:
            self._stop_request = reason

    def mark(self, name: str) -> None:
        """An operator's event mark (e.g. first crack heard); recorded with the next sample."""
        if name not in self.events:
            self._marks.append(name)

    # ----- helpers -----------------------------------------------------------------------------
    def _bt_et(self, reading: Status) -> tuple[float, float]:
        a, b = reading.channel_a_c, reading.channel_b_c
        return (a, b) if self.cfg.bt_channel == "a" else (b, a)

    def _fault(self, kind: str, message: str) -> None:
        self.faults.append(f"{kind}: {message}")
        self._say(f"fault {kind}: {message}")
        self._keep(f"fault {kind}", self.recorder.fault, self.clock.now() - self.t0, kind, message)

    def _keep(self, what: str, write: Callable, *line) -> None:
        """Write a fault or command line; a broken recording (disk full) must not stop the abort and the
        exit procedure, which write through here (a failing sample write ends the cycle and begins the exit)."""
        try:
            write(*line)
        except (OSError, ValueError) as error:
            self._say(f"{what} not recorded: {error}")

    def _say(self, message: str) -> None:
        """One progress line. The run's log channel may break (Dagster Pipes appends each line to a temp file: a
        full disk, the folder gone): a line is then given up, never the abort or the exit procedure that said it."""
        try:
            self.progress(message)
        except Exception as error:  # noqa: BLE001 (whatever the channel raises, the roaster comes first)
            log.warning("progress line not delivered (%s: %s): %s", type(error).__name__, error, message)

    def _commanding(self) -> None:
        """Before a command goes out: from now on every exit makes this roaster safe (exit_policy make_safe), and
        so does the warehouse worker (or, recording only, the watcher) should this process be killed."""
        survivor = self.bridge or self.watcher
        if not self.commanded and survivor is not None:
            survivor.commanding()
        self.commanded = True

    def _must_make_safe(self) -> bool:
        return self.cfg.exit_policy == "make_safe" and self.commanded

    def _header(self) -> dict:
        cfg, driver, info = self.cfg, self.driver, self.info
        machine = cfg.machine_name or driver.model_name + (" (virtual)" if self.source == "simulator" else "")
        header = {
            "recording_id": self.recording_id,
            "source": self.source,
            "machine": machine,
            "machine_id": cfg.machine_id,
            "model": cfg.model,
            "product_id": f"0x{driver.product_id:04x}",
            "serial": info.serial,
            "firmware": info.firmware,
            "roast_count": info.roast_count,
            "channel_mapping": {"bt": cfg.bt_channel, "et": "b" if cfg.bt_channel == "a" else "a"},
            "started_at": self.clock.wall(),
            "poll_interval_s": cfg.poll_interval_s,
            "record_interval_s": cfg.record_interval_s,
            "event_thresholds_c": {"DRY_END": cfg.dry_end_bt_c, "FCs": cfg.fcs_bt_c},
            "limits": asdict(self.limits),
            "exit_policy": cfg.exit_policy,
            "approval_ttl_s": cfg.approval_ttl_s,
            "beans": cfg.beans,
            "title": cfg.title,
            "notes": cfg.notes,
            "batch_weight_g": cfg.batch_weight_g,
        }
        if self.simulator is not None:
            header["simulator"] = self.simulator
        return header

    # ----- events ----------------------------------------------------------------------------

    def _events_for(self, reading: Status, t: float) -> list[tuple[str, str]]:
        """Events this reading marks, each with how it was detected."""
        found = [(name, "operator") for name in self._marks]
        self._marks.clear()
        previous = self.previous_state
        if previous is not None and reading.state != previous:
            if reading.state == State.ROASTING:
                found.append(("CHARGE", "state:roasting"))
            elif previous == State.ROASTING and reading.state == State.COOLING:
                found.append(("DROP", "state:cooling"))
            elif previous == State.COOLING and reading.state in (State.SHUTDOWN, State.OFF):
                found.append(("COOL", "state:cooling_end"))
        if self.charge_t is not None and self.drop_t is None and t - self.charge_t > 60:
            # fallbacks when nobody marks them: BT crossing a configured temperature
            bt, _ = self._bt_et(reading)
            for name, threshold in (("DRY_END", self.cfg.dry_end_bt_c), ("FCs", self.cfg.fcs_bt_c)):
                if threshold is not None and name not in self.events and bt >= threshold:
                    found.append((name, f"bt>={threshold:g}"))
        return found

    # ----- commands --------------------------------------------------------------------------
    def _wall(self, device_t: float | None) -> datetime | None:
        return None if device_t is None else self.wall0 + timedelta(seconds=device_t - self.t0)

    def _execution_row(self, execution: Execution) -> dict:
        command = execution.command
        return {
            "execution_id": f"{self.recording_id[:12]}-{command.proposal_id}",
            "proposal_id": command.proposal_id,
            "machine_id": command.machine_id,
            "session_id": None,
            "recording_id": self.recording_id,
            "command_type": command.command_type,
            "target_value": command.target_value if command.target_value is None or math.isfinite(command.target_value) else None,
            "status": execution.status,
            "started_at": self._wall(execution.started),
            "completed_at": self._wall(execution.finished),
            "session_t_s": None if self.charge_t is None else round(execution.started - self.t0 - self.charge_t, 2),
            "observed_value": execution.observed_value,
            "error": execution.error,
            "source": self.source,
            "command_timeout_s": self.limits.command_timeout_s,
        }

    def _count(self, status: str) -> None:
        self.command_statuses[status] = self.command_statuses.get(status, 0) + 1

    def _report(self, execution: Execution) -> None:
        """Hand an execution's current status to the warehouse thread (EXECUTING at start, the outcome at the end)."""
        row = self._execution_row(execution)
        if self.bridge:
            self.bridge.execution(row)
        if execution.status != "EXECUTING":
            self._keep(f"command {row['proposal_id']}", self.recorder.command, row)
            self._count(execution.status)
            command = execution.command
            self._say(f"command {command.proposal_id} {command.command_type} {command.target_value} -> "
                          f"{execution.status} {execution.error or ''}".rstrip())

    def _expire(self, command: Command, reason: str) -> None:
        closed_at = datetime.now(UTC)
        if self.bridge:
            self.bridge.expired(command.proposal_id, closed_at, reason, self.source)
        self._keep(f"command {command.proposal_id}", self.recorder.command, {
            "proposal_id": command.proposal_id, "machine_id": command.machine_id, "command_type": command.command_type,
            "target_value": command.target_value, "status": "EXPIRED", "closed_at": closed_at, "error": reason,
            "source": self.source})
        self._count("EXPIRED")
        self._say(f"command {command.proposal_id} {command.command_type} -> EXPIRED {reason}")

    def _refuse(self, command: Command, now: float, reason: str) -> None:
        execution = Execution(command, now, self.limits, now)
        execution.fail(now, reason)
        self._report(execution)

    def _next_command(self, reading: Status, now: float) -> None:
        if self.bridge is None:
            return
        self._take(now)
        while self.waiting:
            # an approved ABORT waits for nothing; any other waits for the running command to end and for the
            # approvals to be re-read (its own may have been revoked meanwhile)
            if self.waiting[0].command_type != "ABORT" and (self.active is not None or self._approvals_unread_s(now) is not None):
                return
            command = self.waiting.pop(0)
            if command.revoked:
                self._fault("revoked", f"command {command.proposal_id} {command.command_type}: approval revoked "
                                       f"({command.revoked}) before it ran; not executed")
                continue
            verdict = approval_refusal(command, datetime.now(UTC), self.started_real, self.recording_id,
                                       self.info.serial, self.cfg.approval_ttl_s)
            if verdict is not None and verdict[0] == "EXPIRED":
                self._expire(command, verdict[1])
            elif verdict is not None:
                self._refuse(command, now, f"refused: {verdict[1]}")
            elif command.command_type == "ABORT":  # the safe direction: runs whenever its approval holds, after an abort too
                self.request_abort(f"operator proposal {command.proposal_id}")
                self.abort_proposal = Execution(command, now, self.limits, now)
                self._report(self.abort_proposal)
                self.locked_out = True  # the rest of this batch is refused below
            elif self.locked_out:
                # approved for a roast that an abort or the session's end closed: never to run later by surprise
                why = f"this session was aborted ({self.abort.reason})" if self.abort else f"the session is ending ({self.end_reason})"
                self._refuse(command, now, f"not executed: {why}")
            elif reason := refusal(command, reading, self._bt_et(reading)[0], self.limits):
                self._refuse(command, now, f"refused by local limits: {reason}")
            else:
                self.active = Execution(command, now, self.limits, self.last_change_at)
                self._report(self.active)

    def _take(self, now: float) -> None:
        """New approvals join the waiting list; a newer view of one already taken (its expiry moved, or
        revoked) replaces it, also under the running command."""
        if now >= self.next_queue_poll:
            self.next_queue_poll = now + self.cfg.queue_poll_interval_s
            if self.stepped and not self.warehouse_stalled:
                try:
                    self.bridge.sync(STEPPED_SYNC_TIMEOUT_S)  # stepped time has no wall clock: wait for one warehouse cycle
                except queue.Empty:
                    # never waited for again (its late answer would pass for the next cycle's): the error ends the
                    # session through the exit procedure, which needs no warehouse to make the roaster safe
                    self.warehouse_stalled = True
                    raise TimeoutError(f"the warehouse did not finish a cycle within {STEPPED_SYNC_TIMEOUT_S:g} s "
                                       f"(a stepped run waits for each); the session ends") from None
        reads = self.bridge.reads
        commands = self.bridge.take()
        if self.bridge.reads != reads:  # timed when the worker read, not when this loop took the news (a stall may lie between)
            self.approvals_read_at = now if self.stepped else self.bridge.read_at
        for command in commands:
            if self.active is not None and self.active.command.proposal_id == command.proposal_id:
                self.active.command = command
                continue
            known = [i for i, waiting in enumerate(self.waiting) if waiting.proposal_id == command.proposal_id]
            if known:
                self.waiting[known[0]] = command
            elif not command.revoked:
                self.waiting.append(command)
        if self.bridge.lease_lost and not self.left_machine:
            self._leave_machine(now)
        self.waiting.sort(key=lambda command: command.command_type != "ABORT")  # an approved ABORT waits for nothing

    def _leave_machine(self, now: float) -> None:
        """Another sidecar holds this machine_id now: it reads the approvals. Those waiting here are left to it
        unanswered (a row from here would close them for it), but an ABORT for this roaster, the safe direction;
        and the session ends: no later ABORT can reach this roaster, so one this session commanded is made safe."""
        self.left_machine = True
        left = [command.proposal_id for command in self.waiting
                if not (command.command_type == "ABORT" and str(command.roaster_serial) == str(self.info.serial))]
        self.waiting = [command for command in self.waiting if command.proposal_id not in left]
        self._fault("lease_lost", f"{self.bridge.lease_lost}; this sidecar executes nothing more"
                                  + (f" (left to it: {', '.join(left)})" if left else ""))
        if not self.exiting:
            self._begin_exit("lease lost", now)

    def _recheck_clock(self, now: float) -> float:
        """Approvals are revoked on the real clock: the queue's last read is timed there (a stepped run reads the
        queue once per queue cycle of its own time, so there its own clock serves)."""
        return now if self.stepped else device_clock.since_boot()  # a host suspend counts: nothing was re-read meanwhile

    def _approvals_unread_s(self, now: float) -> float | None:
        """How long the queue has not been read, once that is longer than APPROVAL_RECHECK_CYCLES queue cycles
        (seconds of the recheck clock): a revocation made since could not be seen (None: read recently enough)."""
        cycles_s = APPROVAL_RECHECK_CYCLES * self.cfg.queue_poll_interval_s
        limit_s = cycles_s if self.stepped else max(cycles_s / self.clock.time_scale, APPROVAL_RECHECK_MIN_S)
        unread_s = self._recheck_clock(now) - self.approvals_read_at
        return unread_s if unread_s > limit_s else None

    def _start_abort(self, now: float) -> None:
        reason, requested_at = self._abort_request
        self._abort_request = None
        if self.abort is not None and not self.abort.done:
            return  # one abort process at a time; it already goes where this one would
        self.abort = Abort(reason, requested_at, self.limits)
        self.abort_overdue_reported = False
        self.locked_out = True
        self._fault("abort", reason)
        if self.active is not None:
            self.active.abort(now, f"aborted: {reason}")
            self._report(self.active)
            self.active = None

    def _action(self, reading: Status, now: float) -> r.Action | None:
        """The one action for this cycle: abort first, then the running command, then the next approved one."""
        if self.driving_safe:
            return None  # the watchdog's abort is running: one abort process at a time
        if self._abort_request is not None:
            self._start_abort(now)
        if self.abort is not None and not self.abort.done:
            action = self.abort.advance(reading, now)
            if self.abort.done:
                self._finish_abort(now)
            elif self.abort.overdue and not self.abort_overdue_reported:
                self.abort_overdue_reported = True
                self._fault("abort_overdue", f"not confirmed after {self.abort.reachable_s:.1f} s with the roaster reachable "
                                             f"(heater {reading.heater}, {reading.state_name}); still sending")
            return action
        if reading.probe_faults:
            return None  # a probe reads impossibly: no command starts or steps (none may raise the heater) until it reads right
        # new approvals, and the running command's revoked or shortened; while it runs only an ABORT starts
        self._next_command(reading, now)
        if self._abort_request is not None:  # an approved ABORT just taken: it ends the running command before its next step
            return self._action(reading, now)
        if self.active is None:
            return None
        if self.active.command.command_type in LEVEL_COMMANDS:  # limits and approval hold for every step, not just the first
            ended = ended_approval(self.active.command, datetime.now(UTC), self.cfg.approval_ttl_s)
            if not ended and (unread_s := self._approvals_unread_s(now)) is not None:
                ended = (f"approval not re-read for {unread_s:.1f} s (the warehouse locked or out of reach): a "
                         "revocation could not be seen")
            if ended:
                level = level_of(self.active.command.command_type, reading)
                self.active.abort(now, f"{ended} during execution; no further step sent (level {level})")
                self._report(self.active)
                self.active = None
                return None
            reason = refusal(self.active.command, reading, self._bt_et(reading)[0], self.limits)
            if reason:
                self.active.fail(now, f"stopped by local limits: {reason}")
                self._report(self.active)
                self.active = None
                return None
        action = self.active.advance(reading, now)
        self.last_change_at = self.active.last_change_at
        if self.active.status != "EXECUTING":
            self._report(self.active)
            self.active = None
        return action

    def _finish_abort(self, now: float) -> None:
        abort = self.abort
        self._say(f"abort confirmed in {abort.latency_s:.2f} s, {abort.reachable_s:.2f} s of it reachable, "
                      f"{abort.actions} action(s) ({abort.reason})")
        if self.abort_proposal is not None:
            self.abort_proposal.complete(now, 0.0)
            self._report(self.abort_proposal)
            self.abort_proposal = None

    def _apply(self, action: r.Action, reading: Status, now: float) -> None:
        if self.driving_safe or (self.watchdog is not None and self.watchdog.took_over and not self.exiting):
            return  # the watchdog drives (or drove) the roaster while this cycle hung: its status, and action, are stale
        self._commanding()
        if self.abort is not None and not self.abort.done:
            self._fault("abort_step", f"{action.describe()} (status: heater {reading.heater}, {reading.state_name})")
        try:
            with self.usb_lock:
                self.driver.apply(action)
        except DeviceDisconnected as error:
            self._lose_device(now, str(error))
        except DeviceError as error:  # write timeout, an errno without meaning: the status shows it did not take
            self._fault("send_failed", f"{action.describe()}: {error}")

    # ----- the device ------------------------------------------------------------------------
    def _poll(self, now: float) -> tuple[Status | None, str | None, bool]:
        """One poll, or one reconnect attempt while unplugged: (status, why there is none, idle message)."""
        if self.driver is None:
            if now >= self.next_reconnect:
                self._try_reconnect(now)
            return None, "disconnected", False
        try:
            with self.usb_lock:
                reading = self.driver.poll()
            self.usb_trouble = None
            return reading, None, False
        except InvalidStatus as error:
            return None, f"invalid status: {error}", error.idle_message and self.previous_state in (None, State.OFF)
        except DeviceDisconnected as error:
            self._lose_device(now, str(error))
            return None, "disconnected", False
        except DeviceError as error:  # a stall (read timeout) or an errno without special meaning
            if isinstance(error, ReadTimeout) and now - self.last_valid_at >= STALL_REOPEN_S:
                # connected but silent: reopen it (a fresh claim, late replies drained; the R2 is also reset)
                self._lose_device(now, f"no answer for {now - self.last_valid_at:.1f} s ({error}); closing it to reopen")
                return None, "disconnected", False
            kind = "stall" if isinstance(error, ReadTimeout) else "usb_error"
            if self.usb_trouble != kind:
                self._fault(kind, str(error))
            self.usb_trouble = kind
            return None, str(error), False

    def _lose_device(self, now: float, message: str) -> None:
        self._fault("disconnect", message)
        if self.active is not None:
            self.active.fail(now, "device disconnected during execution")
            self._report(self.active)
            self.active = None
        with self.usb_lock:
            self.driver.close()
            self.driver = None
        self.disconnected_at = self.next_reconnect = now

    def _try_reconnect(self, now: float) -> None:
        """One attempt, for the same roaster (serial) only; the loop keeps cycling in between."""
        self.next_reconnect = now + self.cfg.reconnect_interval_s
        try:
            driver = self.open_driver(self.info.serial)
        except DeviceError:
            return
        with self.usb_lock:
            self.driver = driver
        self._fault("reconnected", f"roaster serial {self.info.serial} back after {now - self.disconnected_at:.1f} s")
        self.disconnected_at = None

    def _record(self, reading: Status | None, why: str | None, idle: bool, t: float) -> None:
        """Record every ``record_interval_s``, and at once on a state change or event."""
        due = t >= self.next_record - self.t0 - 1e-9
        recorded = False
        if reading is not None:
            state_changed = self.previous_state is not None and reading.state != self.previous_state
            if self.previous_state is None and reading.state == State.ROASTING:
                # CHARGE was before this session: the beans may have been in for long, so the BT ceiling
                # holds from TP_GRACE_S after now (the latest CHARGE can have been)
                self.joined_roast_t = t
                self._fault("joined_roast", f"the roaster was already roasting; CHARGE not seen, the BT ceiling "
                                            f"applies from {TP_GRACE_S:g} s after the session start")
            found = self._events_for(reading, t)
            if state_changed or found or due:
                recorded = True
                index = self.recorder.sample(t, _sample_values(reading))
                for event_name, how in found:
                    self.events[event_name] = index
                    self.recorder.event(event_name, index, t, how)
                    if event_name == "CHARGE":
                        self.charge_t = t
                    elif event_name == "DROP":
                        self.drop_t = t
            self.previous_state = reading.state
        elif due and not idle:  # an idle message is not a lost sample: record the next poll instead
            recorded = True
            self.recorder.sample(t, None, why)
        while recorded and self.next_record - self.t0 <= t + 1e-9:
            self.next_record += self.cfg.record_interval_s

    # ----- main loop -------------------------------------------------------------------------
    def run(self) -> SidecarResult:
        """Start, cycle until the session ends, run the exit procedure, land the file.

        An exception inside a cycle does not end the process: it is recorded, the exit procedure
        begins (end reason 'error') and cycling goes on until the roaster is safe; if cycles keep
        failing, the same abort process runs without the loop (``drive_safe``)."""
        self.start()
        return self.run_started()

    def run_started(self) -> SidecarResult:
        """``run`` after ``start`` (tests start, step to a point, inject a fault, then let it end)."""
        failures = 0
        while True:
            try:
                if not self.step():
                    break
            except KeyboardInterrupt:  # in-process Ctrl-C (the Pipes child turns SIGINT into request_stop)
                self.request_stop("terminated")
            except Exception as error:
                failures += 1
                self.error = self.error or "".join(traceback.format_exception(error)).strip()
                self._fault("error", f"{type(error).__name__}: {error}")
                self.next_tick = self.clock.now() + self.cfg.poll_interval_s
                if not self.exiting:
                    self._begin_exit("error", self.clock.now())
                if failures >= 3:
                    if self._must_make_safe() and not self.safe.confirmed:
                        made_safe = self.drive_safe("poll loop failing", self.exit_deadline)
                        self.exit_outcome = ("made safe outside the poll loop: heater 0 and cooling confirmed by status"
                                             if made_safe else "NOT confirmed safe: the poll loop kept failing")
                    break
            self.clock.sleep(self.next_tick - self.clock.now())
        return self.finish()

    def start(self) -> None:
        """Open the roaster (a ``DeviceError`` here fails loudly: not found, permission...) and begin recording."""
        cfg, clock = self.cfg, self.clock
        self.stepped = isinstance(clock, SteppedClock)
        # device seconds -> real seconds; a stepped run drives the bridge with sync() instead
        interval = 3600.0 if self.stepped else cfg.queue_poll_interval_s / clock.time_scale
        lease_s = max(LEASE_CYCLES * (cfg.queue_poll_interval_s if self.stepped else interval), LEASE_MIN_S)
        # the machine first (MachineBusy), before anything is said to the roaster
        took_over = claim_machine(cfg.warehouse, cfg.machine_id, self.recording_id, cfg.model, self.source,
                                  lease_s) if cfg.warehouse else None
        try:
            self._begin(interval, lease_s, took_over)
        except BaseException:
            # the roaster not found, the recording folder unwritable...: the next sidecar on this machine_id need not
            # wait for the lease to lapse
            if cfg.warehouse:
                WarehouseIO(cfg.warehouse, cfg.machine_id, self.recording_id, False, lease_s).release()
            self._end_watcher()
            self._forget_virtual_roaster()
            raise

    def _begin(self, interval: float, lease_s: float, took_over: str | None) -> None:
        cfg, clock = self.cfg, self.clock
        self.driver: RoasterDriver | None = self.open_driver(cfg.roaster_serial)
        self.info = self.driver.info
        self.limits = cfg.limits.within_model(self.driver.limits)
        recordings = Path(cfg.recordings_dir) if cfg.recordings_dir else Settings.from_env().recordings_dir
        self.t0, self.wall0 = clock.now(), clock.wall()
        self.started_real = datetime.now(UTC)  # approvals are judged on the real clock
        name = f"{self.wall0:%Y%m%dT%H%M%S}-{cfg.machine_id}-{self.recording_id[:8]}{SIDECAR_SUFFIX}"
        self.recorder = SessionRecorder(recordings / name, self._header(), fsync=not self.stepped)
        self._say(f"recording {self.recorder.path} from {self.driver.model_name} serial {self.info.serial} ({self.source})")
        self.faults: list[str] = []
        self.events: dict[str, int] = {}
        self.command_statuses: dict[str, int] = {}
        self.waiting: list[Command] = []
        self.previous_state: int | None = None
        self.charge_t = self.drop_t = None
        self.joined_roast_t: float | None = None  # session time of the first status, when it already showed roasting
        self.active: Execution | None = None
        self.abort: Abort | None = None
        self.abort_proposal: Execution | None = None
        self.abort_overdue_reported = False
        self.locked_out = False  # after an abort (or once the session ends) nothing else is executed
        self.left_machine = False  # another sidecar took this machine_id's lease (_leave_machine)
        self.commanded = False  # set by the first action sent: from then on every exit makes the roaster safe
        self.last_change_at = -math.inf
        self.next_queue_poll = self.t0
        self.warehouse_stalled = False  # a stepped run's warehouse cycle timed out: the loop waits for none again
        self.approvals_read_at = self._recheck_clock(self.t0)  # the last cycle that read the queue (_recheck_clock)
        self.polls = self.lost = self.idle_messages = 0
        self.jitter: list[float] = []
        self.next_tick = self.next_record = self.last_cycle_at = self.t0
        self.next_progress = self.t0 + 60
        self.last_valid_at = self.t0
        self.safe = SafeConfirmation(self.limits)  # fed every poll: is the roaster confirmed safe for the exit
        self.probes = ProbeWatch(self.limits)  # fed every status: has a probe failed
        self.probe_fault: dict | None = None  # the failed probe(s), once confirmed (footer, end reason, abort reason)
        self.usb_trouble: str | None = None
        self.disconnected_at: float | None = None
        self.next_reconnect = self.t0
        self.exiting = False
        self.exit_deadline: float | None = None
        self.exit_outcome = "not needed"
        self.end_reason = "duration"
        self.error: str | None = None
        self.last_reading: Status | None = None
        self.bridge = None
        if took_over:
            self._fault("lease", took_over)
        if cfg.warehouse:
            self.bridge = CommandBridge(cfg.warehouse, cfg.machine_id, self.recording_id, interval, stepped=self.stepped,
                                        lease_s=lease_s, rescue=self._rescue_plan())
            self.bridge.session(self._session_row())
            self.bridge.start()
        elif (plan := self._rescue_plan()) is not None:
            # recording only: no warehouse worker to survive a kill of this process, which an operator's abort
            # (SIGUSR1) or a safety trip makes command the roaster; the watcher does (watcher.py)
            started_s = device_clock.since_boot() - (clock.now() - self.t0) / clock.time_scale
            watcher = Watcher(plan, self.recorder.path, started_s, clock.time_scale)
            watcher.start()
            self.watcher = watcher  # once started: one the OS refused has nothing to end (a failed start says why)
        self.heartbeat = time.monotonic()
        self.watchdog = None if self.stepped else Watchdog(self, cfg.watchdog_timeout_s)

    def _rescue_plan(self) -> RescuePlan | None:
        """How the warehouse worker or the watcher makes this roaster safe if this process is killed (None: it is
        left as it is)."""
        cfg = self.cfg
        if cfg.exit_policy != "make_safe" or self.stepped:  # (a stepped run's worker is a thread: it dies with it)
            return None
        memory = None
        if self.virtual_roaster is not None:  # the rescue picks the virtual roaster up where this process left it
            memory = str(self.recorder.path.with_name(self.recorder.path.name + VIRTUAL_ROASTER_SUFFIX))
            self.virtual_roaster.remember_in(memory)
        return RescuePlan(cfg.model, self.info.serial, self.limits, cfg.poll_interval_s, cfg.reconnect_interval_s,
                          cfg.exit_timeout_s, memory)

    def _session_row(self, ended: bool = False) -> dict:
        return {"recording_id": self.recording_id, "machine_id": self.cfg.machine_id, "roaster_serial": self.info.serial,
                "model": self.driver.model_name if self.driver else self.cfg.model, "source": self.source,
                "started_at": self.started_real, "ended_at": datetime.now(UTC) if ended else None,
                "end_reason": self.end_reason if ended else None, "exit_outcome": self.exit_outcome if ended else None}

    def step(self) -> bool:
        """One poll cycle; False when the session is over (then call ``finish``)."""
        cfg, clock = self.cfg, self.clock
        now = clock.now()
        self.heartbeat = time.monotonic()
        if not self.stepped and now - self.last_cycle_at > TIME_GAP_S * clock.time_scale:
            self._fault("time_gap", f"{now - self.last_cycle_at:.1f} s between two poll cycles (the host was suspended, "
                                    "or this process stopped): nothing watched the roaster meanwhile")
        self.last_cycle_at = now
        self.jitter.append(max(0.0, now - self.next_tick))
        t = now - self.t0
        self.polls += 1
        reading, why, idle = self._poll(now)
        if reading is None:
            self.idle_messages += idle
            self.lost += not idle
            self.safe.lost()
            if self.abort is not None:
                self.abort.unreachable()
        else:
            self.last_valid_at = now
            self.last_reading = reading
            self.safe.see(reading, now)
            if self.probe_fault is None and self.probes.see(reading, now):
                self._probe_failed(now)
        try:
            self._record(reading, why, idle, t)
            unrecorded = None
        except (OSError, ValueError) as error:  # the recordings disk full: raised once the roaster has been seen to
            unrecorded = error

        if self.watchdog is not None and self.watchdog.took_over and not self.exiting:
            # the loop was stuck and the watchdog drove the roaster: resumed, it ends the session and sends no step
            self._begin_exit("watchdog", now)
        if reading is not None:
            bt, et = self._bt_et(reading)
            beans_since = self.charge_t if self.charge_t is not None else self.joined_roast_t
            beans_in = beans_since is not None and self.drop_t is None and t - beans_since > TP_GRACE_S
            trip = trip_reason(bt, et, self.limits, beans_in)
            if trip:
                self.request_abort(f"safety trip: {trip}")
            if (self.probe_fault is not None and not is_safe(reading) and self._abort_request is None
                    and (self.abort is None or self.abort.done)):
                # nothing can check the ceilings any more: heater 0 and cooling, whoever commanded the roaster
                self.request_abort(f"probe failed: {self.probe_fault['message']}")
            action = self._action(reading, now)
            if action is not None:
                self._apply(action, reading, now)
        elif (self.commanded and now - self.last_valid_at > self.limits.lost_control_s
              and self.previous_state in HEATING_STATES and (self.abort is None or self.abort.done)
              and self._abort_request is None):
            # once the sidecar has driven the roaster it answers for it; before that the operator at the panel does
            self.request_abort(f"lost control: no valid status for {now - self.last_valid_at:.1f} s")
        if unrecorded is not None:
            raise unrecorded  # after the ceilings, the probes and the abort had their turn (the exit follows)

        self._check_survivor()
        if now >= self.next_progress:
            self.next_progress += 60
            state = self.last_reading.state_name if self.last_reading else "unknown"
            self._say(f"t={t:.0f} s state={state} samples={self.recorder.samples} lost={self.lost}")
        reason = self._end_condition(now, t)
        if reason and not self.exiting:
            self._begin_exit(reason, now)
        if self.exiting and self._exit_done(now, reading):
            return False
        self.next_tick += cfg.poll_interval_s
        after = clock.now()
        if after > self.next_tick + cfg.poll_interval_s:  # overran whole cycles: those polls are lost
            skipped = int((after - self.next_tick) / cfg.poll_interval_s)
            self.lost += skipped
            self.next_tick += skipped * cfg.poll_interval_s
        return True

    def _probe_failed(self, now: float) -> None:
        """A probe has read impossibly for probe_fault_confirm_s: say which and what it read; the abort follows."""
        probes = [{"channel": channel, "role": "BT" if channel == self.cfg.bt_channel else "ET",
                   "reads_c": None if math.isnan(value) else value}
                  for channel, value in sorted(self.probes.failure.items())]
        reads = ", ".join(f"{probe['role']} probe (channel {probe['channel'].upper()}) reads "
                          f"{'NaN' if probe['reads_c'] is None else format(probe['reads_c'], 'g')} °C" for probe in probes)
        low, high = r.PROBE_RANGE_C
        message = (f"{reads} for {now - self.probes.since:.1f} s (a working probe reads above {low:g} and at most "
                   f"{high:g} °C): failed or unplugged")
        self.probe_fault = {"message": message, "probes": probes, "since_t": round(self.probes.since - self.t0, 2),
                            "failed_t": round(now - self.t0, 2)}
        self._fault("probe_failed", message)

    def _end_condition(self, now: float, t: float) -> str | None:
        if self.watchdog is not None and self.watchdog.took_over:
            return "watchdog"
        if self._stop_request:
            return self._stop_request
        if (self.probe_fault is not None and self.safe.confirmed and self._abort_request is None
                and (self.abort is None or self.abort.done)):
            return f"probe failed: {self.probe_fault['message']}"  # once the roaster is confirmed safe
        if self.disconnected_at is not None and now - self.disconnected_at >= self.cfg.reconnect_timeout_s:
            if not self.exiting:
                self._fault("gave_up", f"no roaster after {self.cfg.reconnect_timeout_s:g} s of retries; session closed")
            return "disconnected"
        if "COOL" in self.events and self.cfg.stop_on == "cool_end":
            return "cool_end"
        if t >= self.cfg.max_duration_s:
            return "duration"
        return None

    def _begin_exit(self, reason: str, now: float) -> None:
        """The one way out: stop executing, and make a roaster this session commanded safe first."""
        self.exiting, self.end_reason, self.locked_out = True, reason, True
        self.exit_deadline = now + self.cfg.exit_timeout_s
        if self.active is not None:
            self.active.abort(now, f"session ending ({reason}) during execution")
            self._report(self.active)
            self.active = None
        if not self.commanded:
            self.exit_outcome = "untouched: the sidecar never commanded this roaster"
        elif self.cfg.exit_policy != "make_safe":
            self.exit_outcome = "left as is (exit_policy leave_roaster_as_is)"
            self._fault("exit", f"session ending ({reason}); exit_policy leave_roaster_as_is: the roaster keeps its last settings")
        elif self.safe.confirmed and self.driver is not None:
            self.exit_outcome = "already safe"
        else:
            self._fault("exit", f"session ending ({reason}); the sidecar commanded this roaster: driving it to heater 0 and cooling")
            self.request_abort(f"session ending ({reason})")

    def _exit_done(self, now: float, reading: Status | None) -> bool:
        if not self._must_make_safe() or self.exit_outcome == "already safe":
            return True
        if self.abort is not None and self.abort.done and self._abort_request is None and is_safe(reading):
            self.exit_outcome = "made safe: heater 0 and cooling confirmed by status"
            return True
        if self.end_reason == "disconnected":
            self.exit_outcome = "roaster gone: nothing can be sent"
            return True
        if now >= self.exit_deadline:
            state = "roaster not reachable" if reading is None else f"heater {reading.heater}, {reading.state_name}"
            self.exit_outcome = f"NOT confirmed safe within {self.cfg.exit_timeout_s:g} s ({state})"
            self._fault("exit_unsafe", self.exit_outcome)
            return True
        return False

    def drive_safe(self, who: str, deadline: float) -> bool:
        """The abort process without the poll loop (watchdog, a loop that keeps failing): poll, step the
        heater down / press PRS, re-check, until a status shows heater 0 in a safe state or ``deadline``."""
        abort = Abort(who, self.clock.now(), self.limits)
        self._fault("drive_safe", f"{who}: driving the roaster to heater 0 and cooling outside the poll loop")
        self.driving_safe = True
        try:
            return self._drive_safe(abort, who, deadline)
        finally:
            self.driving_safe = False

    def _drive_safe(self, abort: Abort, who: str, deadline: float) -> bool:
        while self.clock.now() < deadline:
            now = self.clock.now()
            reading = None
            if not self.usb_lock.acquire(timeout=1.0):
                self._fault("drive_safe", "the USB handle is held by the stuck poll loop; cannot reach the roaster")
                return False
            try:
                if self.driver is None and now >= self.next_reconnect:
                    self._try_reconnect(now)  # as the loop does: this roaster only, one attempt per interval
                if self.driver is not None:
                    reading = self.driver.poll()
                    self.last_reading = reading
                    self.safe.see(reading, now)  # the loop's exit reads the same statuses
                    action = abort.advance(reading, now)
                    if abort.done:
                        self.last_valid_at = now
                        self._fault("drive_safe", f"{who}: heater 0 and {reading.state_name} confirmed by status")
                        return True
                    if action is not None:
                        self._commanding()
                        self._fault("abort_step", f"{action.describe()} (status: heater {reading.heater}, {reading.state_name})")
                        self.driver.apply(action)
            except (DeviceError, InvalidStatus) as error:
                if isinstance(error, DeviceDisconnected):  # that handle never answers again: close it, reopen the roaster
                    self._lose_device(now, str(error))
                self.safe.lost()
                abort.unreachable()
            finally:
                self.usb_lock.release()
            self.clock.sleep(self.cfg.poll_interval_s)
        return False

    def _stop_bridge(self, session) -> None:
        """The session's end and the last rows to the warehouse; the worker stops (``session``: the parsed
        recording, None when its footer could not be written)."""
        if not self.bridge:
            return
        if session is not None:
            self.bridge.set_session_id(session.session_id)
        self.bridge.session(self._session_row(ended=True))
        if not self.bridge.stop(timeout_s=3.0):
            message = "command executions not all written to the warehouse (locked); they are in the recording"
            self.faults.append(f"warehouse: {message}")
            self._say(message)

    def _check_survivor(self) -> None:
        """The process that would make the roaster safe after a kill of this one (warehouse worker or watcher) ends
        only after this sidecar: one gone meanwhile (killed, OOM) takes that rescue with it, which is said, once."""
        survivor = self.bridge or self.watcher
        if survivor is None or self.survivor_gone or survivor.alive():
            return
        self.survivor_gone = True
        self._fault("survivor_gone", f"{survivor.who} has ended: should this sidecar be killed now, nothing would make "
                                     "a roaster it commanded safe (its exit procedure still does at every other end)")

    def _end_watcher(self) -> None:
        """The exit procedure has run (or the start failed): the roaster is no longer the watcher's to rescue."""
        if self.watcher is not None:
            self.watcher.end()
            self.watcher = None

    def _forget_virtual_roaster(self) -> None:
        """The worker or watcher has stopped (or never ran): no rescue to come, so the virtual roaster's memory goes."""
        if self.virtual_roaster is not None and self.virtual_roaster.memory_file is not None:
            Path(self.virtual_roaster.memory_file).unlink(missing_ok=True)
            self.virtual_roaster.memory_file = None

    def finish(self) -> SidecarResult:
        """Close the recording (footer), hand the last rows to the warehouse thread, land the file."""
        clock = self.clock
        if self.watchdog is not None:
            self.watchdog.stop()  # (its abort may still be under way when the exit's deadline has passed)
        self._end_watcher()  # the exit procedure has run, and nothing commands the roaster any more
        with self.usb_lock:
            if self.driver is not None:
                self.driver.close()
        if self.active is not None:
            self.active.fail(clock.now(), f"session ended ({self.end_reason}) during execution")
            self._report(self.active)
        if self.abort_proposal is not None:
            self.abort_proposal.fail(clock.now(), f"abort not confirmed before the session ended ({self.end_reason})")
            self._report(self.abort_proposal)
        duration = clock.now() - self.t0
        abort_latency = None if self.abort is None else self.abort.latency_s
        last = self.last_reading
        exit_summary = {
            "policy": self.cfg.exit_policy, "commanded": self.commanded, "outcome": self.exit_outcome,
            "heater": None if last is None else last.heater, "state": None if last is None else last.state_name,
        }
        session = None
        try:
            self.recorder.close({
                "end_reason": self.end_reason,
                "ended_at": clock.wall(),
                "duration_s": round(duration, 2),
                "polls": self.polls,
                "lost_polls": self.lost,
                "idle_messages": self.idle_messages,
                "commands": self.command_statuses,
                "abort_latency_s": abort_latency,
                "exit": exit_summary,
                "error": self.error,
                "probe_fault": self.probe_fault,
            })
            session = parse_sidecar(self.recorder.path.read_bytes(), str(self.recorder.path))
        finally:  # the warehouse gets the exit's rows even when the recording cannot take its footer (disk full)
            self._stop_bridge(session)
            self._forget_virtual_roaster()
        landing = Path(self.cfg.landing_dir) if self.cfg.landing_dir else Settings.from_env().sidecar_landing_dir
        landing.mkdir(parents=True, exist_ok=True)
        final_path = Path(shutil.move(str(self.recorder.path), str(landing / self.recorder.path.name)))
        self._say(f"session {session.session_id} landed at {final_path} ({self.end_reason}; exit: {self.exit_outcome})")
        return SidecarResult(
            path=final_path, session_id=session.session_id, source=self.source, end_reason=self.end_reason,
            duration_s=duration, samples=self.recorder.samples, invalid_samples=self.recorder.invalid_samples,
            polls=self.polls, lost_polls=self.lost, commands_executed=sum(self.command_statuses.values()),
            command_statuses=dict(self.command_statuses), faults=self.faults,
            abort_latency_s=abort_latency, jitter_s=np.array(self.jitter), exit=exit_summary, error=self.error,
            probe_fault=self.probe_fault,
        )


class Watchdog:
    """A thread independent of the poll loop. When no poll cycle has finished for ``timeout_s`` real
    seconds and the sidecar has commanded the roaster, it drives the roaster safe itself
    (``Sidecar.drive_safe``) and the session ends with reason 'watchdog'. Off for stepped
    simulations, whose time does not pass while the loop is stuck."""

    def __init__(self, sidecar: Sidecar, timeout_s: float):
        self.sidecar = sidecar
        self.timeout_s = timeout_s
        self.fired = False
        self.took_over = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sidecar-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if threading.current_thread() is not self._thread:
            self._thread.join()

    def _run(self) -> None:
        sidecar = self.sidecar
        while not self._stop.wait(min(0.25, self.timeout_s / 4)):
            silent = time.monotonic() - sidecar.heartbeat
            if silent <= self.timeout_s:
                self.fired = False  # cycling again: armed for the next silence
                continue
            if self.fired:
                continue
            self.fired = True
            sidecar._fault("watchdog", f"poll loop silent for {silent:.1f} s")
            if sidecar._must_make_safe():
                self.took_over = True
                sidecar.drive_safe("watchdog", sidecar.clock.now() + sidecar.cfg.exit_timeout_s)


def build_sidecar(cfg: SidecarConfig, progress: Callable[[str], None] | None = None):
    """The sidecar wired to a real roaster (pyusb's libusb backend) or, with ``simulate``, its virtual twin.

    Returns ``(sidecar, virtual_device_or_None)``.
    """
    model, plug_in_virtual = MODELS[cfg.model]
    if not cfg.simulate:
        return Sidecar(cfg, RealClock(), lambda serial: model.open(serial), "real", progress=progress), None
    start = datetime.fromisoformat(cfg.start_at) if cfg.start_at else None
    clock = make_clock(cfg.time_scale, start)
    virtual = VirtualR1Config(**{**cfg.virtual.__dict__, "seed": cfg.simulation_seed})
    device, backend = plug_in_virtual(virtual, clock)
    simulator = {
        "seed": cfg.simulation_seed,
        "time_scale": cfg.time_scale,
        "faults": virtual.faults.describe(),
        "operator_plan": asdict(virtual.operator) if virtual.operator else None,
        "thermal_model": asdict(virtual.thermal),
        "batch_g_in_hopper": virtual.batch_g,
        "ibts": virtual.ibts,
    }
    # a stepped simulation from a given start is reproducible, so its id is too (same seed and start:
    # same session_id); one starting "now" is a new session every time, whatever its seed
    recording_id = stepped_recording_id(cfg) if cfg.time_scale == 0 and cfg.start_at else None
    sidecar = Sidecar(cfg, clock, lambda serial: model.open(serial, backend=backend), "simulator", simulator, progress,
                      recording_id)
    sidecar.virtual_roaster = device
    device.on_mark = sidecar.mark  # the simulated operator marks first crack when the model's crack starts
    return sidecar, device


def stepped_recording_id(cfg: SidecarConfig) -> str:
    """The recording id of a stepped simulation (what an approval for that session names)."""
    model = "" if cfg.model == "r1" else f":{cfg.model}"  # (the R1's ids as they were before the R2)
    return uuid.uuid5(uuid.NAMESPACE_URL, f"daena-sim:{cfg.machine_id}:{cfg.simulation_seed}:{cfg.start_at}{model}").hex


def run_sidecar(cfg: SidecarConfig, progress: Callable[[str], None] | None = None) -> SidecarResult:
    sidecar, _ = build_sidecar(cfg, progress)
    return sidecar.run()
