"""The sidecar: poll the R1 at ~10 Hz, record durably, execute approved commands within limits.

One loop, one thread. Each cycle: poll the status, record (every ``record_interval_s`` and at
every state change), check the ceilings, then write at most one command (abort first, then the
running command, then the next approved proposal). Disconnects are retried for
``reconnect_timeout_s`` and the session is then closed cleanly. Runs the same against a real R1 or
the virtual one; only the pyusb backend and the clock differ.
"""
from __future__ import annotations

import logging
import math
import shutil
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np

from daena_pipelines import config as project_config
from daena_pipelines.device import protocol as p
from daena_pipelines.device.clock import RealClock, make_clock
from daena_pipelines.device.command_store import WarehouseCommandStore
from daena_pipelines.device.driver import BulletR1, DeviceDisconnected, R1Error, ReadTimeout
from daena_pipelines.device.recording import SUFFIX, SessionRecorder, parse_sidecar
from daena_pipelines.device.safety import (
    LEVEL_COMMANDS, TP_GRACE_S, Abort, Execution, SafetyLimits, refusal, trip_reason,
)
from daena_pipelines.device.virtual_r1 import Faults, OperatorPlan, VirtualR1Config, plug_in_virtual_r1

log = logging.getLogger(__name__)

STOP_CONDITIONS = ("cool_end", "duration")
HEATING_STATES = (p.State.PREHEATING, p.State.CHARGE, p.State.ROASTING)


@dataclass
class SidecarConfig:
    machine_id: str = "r1"
    machine_name: str | None = None  # defaults to the model name (and "(virtual)" when simulated)
    simulate: bool = False
    time_scale: float = 1.0  # simulation only: 1 real time, >1 faster, 0 stepped (deterministic)
    stop_on: str = "cool_end"  # 'cool_end': after cooling ends; 'duration': after max_duration_s
    max_duration_s: float = 1800.0
    poll_interval_s: float = 0.1
    record_interval_s: float = 1.0
    bt_channel: str = "a"  # which wire channel is bean temperature; the other is ET
    dry_end_bt_c: float | None = 150.0  # DRY_END when BT reaches it (None: only operator marks)
    fcs_bt_c: float | None = None  # FCs when BT reaches it; None (default): only the operator marks FCs
    queue_poll_interval_s: float = 2.0
    reconnect_timeout_s: float = 30.0
    recordings_dir: str | None = None  # in-progress files; default <data>/device/recordings
    landing_dir: str | None = None  # finished files; default config.landing_dir()
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

    @classmethod
    def from_dict(cls, values: dict) -> "SidecarConfig":
        """Build from plain JSON-able values (Dagster run config, Pipes extras)."""
        values = dict(values)
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
        known = {f.name for f in fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown sidecar settings: {sorted(unknown)}")
        return cls(**values)


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
            "poll_jitter_p50_ms": round(float(np.percentile(jitter, 50)) * 1000, 2) if len(jitter) else None,
            "poll_jitter_p99_ms": round(float(np.percentile(jitter, 99)) * 1000, 2) if len(jitter) else None,
        }


def _sample_values(reading: p.StatusReading) -> dict:
    return {
        "st": reading.state, "a": reading.channel_a_c, "b": reading.channel_b_c, "ror": reading.ror_a_c_per_min,
        "ex": reading.exhaust_c, "ir": reading.ir_c, "pcb": reading.pcb_c,
        "h": reading.heater, "f": reading.fan, "d": reading.drum,
    }


class Sidecar:
    def __init__(self, cfg: SidecarConfig, clock, open_driver: Callable[[], BulletR1], source: str,
                 store: WarehouseCommandStore | None = None, simulator: dict | None = None,
                 progress: Callable[[str], None] | None = None, recording_id: str | None = None):
        self.cfg = cfg
        self.clock = clock
        self.open_driver = open_driver
        self.source = source
        self.store = store
        self.simulator = simulator
        self.progress = progress or log.info
        self.recording_id = recording_id or uuid.uuid4().hex
        self._abort_request: tuple[str, float] | None = None
        self._stop_request: str | None = None
        self._marks: list[str] = []

    # ----- requests from outside the loop (signals, tests) ----------------------------------
    def request_abort(self, reason: str) -> None:
        if self._abort_request is None:
            self._abort_request = (reason, self.clock.now())

    def request_stop(self, reason: str) -> None:
        self._stop_request = reason

    # ----- helpers -----------------------------------------------------------------------------
    def _bt_et(self, reading: p.StatusReading) -> tuple[float, float]:
        a, b = reading.channel_a_c, reading.channel_b_c
        return (a, b) if self.cfg.bt_channel == "a" else (b, a)

    def _fault(self, kind: str, message: str) -> None:
        self.faults.append(f"{kind}: {message}")
        self.recorder.fault(self.clock.now() - self.t0, kind, message)
        self.progress(f"fault {kind}: {message}")

    def _reconnect(self) -> BulletR1 | None:
        deadline = self.clock.now() + self.cfg.reconnect_timeout_s
        attempts = 0
        while self.clock.now() < deadline:
            attempts += 1
            try:
                driver = self.open_driver()
                self._fault("reconnected", f"device back after {attempts} attempt(s)")
                return driver
            except R1Error:
                self.clock.sleep(1.0)
                self._record(None, "disconnected", False, self.clock.now() - self.t0)  # keep the time base
        return None

    def _header(self, driver: BulletR1, info: p.DeviceInfo) -> dict:
        cfg = self.cfg
        machine = cfg.machine_name or driver.model_name + (" (virtual)" if self.source == "simulator" else "")
        header = {
            "recording_id": self.recording_id,
            "source": self.source,
            "machine": machine,
            "machine_id": cfg.machine_id,
            "vendor_id": f"0x{p.VENDOR_ID:04x}",
            "product_id": f"0x{driver.product_id:04x}",
            "serial": info.serial,
            "firmware": info.firmware,
            "roast_count": info.roast_count,
            "channel_mapping": {"bt": cfg.bt_channel, "et": "b" if cfg.bt_channel == "a" else "a"},
            "started_at": self.clock.wall(),
            "poll_interval_s": cfg.poll_interval_s,
            "record_interval_s": cfg.record_interval_s,
            "event_thresholds_c": {"DRY_END": cfg.dry_end_bt_c, "FCs": cfg.fcs_bt_c},
            "limits": asdict(cfg.limits),
            "beans": cfg.beans,
            "title": cfg.title,
            "notes": cfg.notes,
            "batch_weight_g": cfg.batch_weight_g,
        }
        if self.simulator is not None:
            header["simulator"] = self.simulator
        return header

    # ----- events ----------------------------------------------------------------------------
    def mark(self, name: str) -> None:
        """An operator's event mark (e.g. first crack heard); recorded with the next sample."""
        if name not in self.events:
            self._marks.append(name)

    def _events_for(self, reading: p.StatusReading, t: float) -> list[tuple[str, str]]:
        """Events this reading marks, each with how it was detected."""
        found = [(name, "operator") for name in self._marks]
        self._marks.clear()
        previous = self.previous_state
        if previous is not None and reading.state != previous:
            if reading.state == p.State.ROASTING:
                found.append(("CHARGE", "state:roasting"))
            elif previous == p.State.ROASTING and reading.state == p.State.COOLING:
                found.append(("DROP", "state:cooling"))
            elif previous == p.State.COOLING and reading.state in (p.State.SHUTDOWN, p.State.OFF):
                found.append(("COOL", "state:cooling_end"))
        if self.charge_t is not None and self.drop_t is None and t - self.charge_t > 60:
            # fallbacks when nobody marks them: BT crossing a configured temperature
            bt, _ = self._bt_et(reading)
            for name, threshold in (("DRY_END", self.cfg.dry_end_bt_c), ("FCs", self.cfg.fcs_bt_c)):
                if threshold is not None and name not in self.events and bt >= threshold:
                    found.append((name, f"bt>={threshold:g}"))
        return found

    # ----- commands --------------------------------------------------------------------------
    def _execution_row(self, execution: Execution, execution_id: str) -> dict:
        command = execution.command
        started_wall = self.wall0 + timedelta(seconds=execution.started - self.t0)
        finished_wall = None if execution.finished is None else self.wall0 + timedelta(seconds=execution.finished - self.t0)
        return {
            "execution_id": execution_id,
            "proposal_id": command.proposal_id,
            "machine_id": command.machine_id,
            "session_id": None,
            "recording_id": self.recording_id,
            "command_type": command.command_type,
            "target_value": command.target_value,
            "status": execution.status,
            "started_at": started_wall,
            "completed_at": finished_wall,
            "session_t_s": None if self.charge_t is None else round(execution.started - self.t0 - self.charge_t, 2),
            "observed_value": execution.observed_value,
            "error": execution.error,
            "source": self.source,
        }

    def _report(self, execution: Execution) -> None:
        """Persist an execution's current status (EXECUTING at start, the outcome at the end)."""
        execution_id = f"{self.recording_id[:12]}-{execution.command.proposal_id}"
        row = self._execution_row(execution, execution_id)
        if self.store:
            self.store.record(row)
        if execution.status != "EXECUTING":
            self.recorder.command(row)
            self.command_statuses[execution.status] = self.command_statuses.get(execution.status, 0) + 1
            self.progress(f"command {execution.command.proposal_id} {execution.command.command_type} "
                          f"{execution.command.target_value} -> {execution.status} {execution.error or ''}".rstrip())

    def _next_command(self, reading: p.StatusReading, now: float) -> None:
        if self.store is None or now < self.next_queue_poll:
            return
        self.next_queue_poll = now + self.cfg.queue_poll_interval_s
        commands = self.store.approved(self.cfg.machine_id, self.recording_id, self.seen_proposals)
        for command in commands or []:
            self.seen_proposals.add(command.proposal_id)
            if self.locked_out:
                # approved for a roast that an abort ended: never to be run later by surprise
                execution = Execution(command, now, self.cfg.limits, now)
                execution.fail(now, f"not executed: this session was aborted ({self._abort_request[0]})")
                self._report(execution)
                continue
            if command.command_type == "ABORT":
                self.request_abort(f"operator proposal {command.proposal_id}")
                self.abort_proposal = Execution(command, now, self.cfg.limits, now)
                self._report(self.abort_proposal)
                self.locked_out = True  # the rest of this batch is refused above
                continue
            execution = Execution(command, now, self.cfg.limits, self.last_change_at)
            bt, _ = self._bt_et(reading)
            reason = refusal(command, reading, bt, self.cfg.limits)
            if reason:
                execution.fail(now, f"refused by local limits: {reason}")
                self._report(execution)
                continue
            self.active = execution
            self.controlling = True
            self._report(execution)
            return

    def _command_to_send(self, reading: p.StatusReading, now: float) -> bytes | None:
        if self._abort_request is not None and self.abort is None:
            reason, requested_at = self._abort_request
            self.abort = Abort(reason, requested_at, self.cfg.limits)
            self.locked_out = True
            self._fault("abort", reason)
            if self.active is not None:
                self.active.abort(now, f"aborted: {reason}")
                self._report(self.active)
                self.active = None
        if self.abort is not None and not self.abort.done:
            command = self.abort.advance(reading, now)
            if self.abort.done:
                self._finish_abort(now)
            return command
        if self.active is not None:
            if self.active.command.command_type in LEVEL_COMMANDS:  # limits hold for every step, not just the first
                reason = refusal(self.active.command, reading, self._bt_et(reading)[0], self.cfg.limits)
                if reason:
                    self.active.fail(now, f"stopped by local limits: {reason}")
                    self._report(self.active)
                    self.active = None
                    return None
            command = self.active.advance(reading, now)
            self.last_change_at = self.active.last_change_at
            if self.active.status != "EXECUTING":
                self._report(self.active)
                self.active = None
            return command
        self._next_command(reading, now)
        if self.active is not None:
            return self._command_to_send(reading, now)
        return None

    def _finish_abort(self, now: float) -> None:
        abort = self.abort
        if abort.confirmed_at is not None:
            self.progress(f"abort confirmed in {abort.latency_s:.2f} s ({abort.reason})")
        else:
            self._fault("abort_failed", abort.failed)
        if self.abort_proposal is not None:
            execution = self.abort_proposal
            if abort.confirmed_at is not None:
                execution.complete(now, 0.0)
            else:
                execution.fail(now, abort.failed)
            self._report(execution)

    # ----- main loop -------------------------------------------------------------------------
    def run(self) -> SidecarResult:
        self.start()
        while self.step():
            self.clock.sleep(self.next_tick - self.clock.now())
        return self.finish()

    def start(self) -> None:
        """Open the R1 (an ``R1Error`` here fails loudly: not found, permission...) and begin recording."""
        cfg, clock = self.cfg, self.clock
        self.driver: BulletR1 | None = self.open_driver()
        info = self.driver.read_info()
        recordings = Path(cfg.recordings_dir) if cfg.recordings_dir else project_config.data_dir() / "device" / "recordings"
        self.t0, self.wall0 = clock.now(), clock.wall()
        name = f"{self.wall0:%Y%m%dT%H%M%S}-{cfg.machine_id}-{self.recording_id[:8]}{SUFFIX}"
        self.recorder = SessionRecorder(recordings / name, self._header(self.driver, info), fsync=clock.time_scale != 0)
        self.progress(f"recording {self.recorder.path} from {self.driver.model_name} serial {info.serial} ({self.source})")
        self.faults: list[str] = []
        self.events: dict[str, int] = {}
        self.command_statuses: dict[str, int] = {}
        self.seen_proposals: set[str] = set()
        self.previous_state: int | None = None
        self.charge_t = self.drop_t = None
        self.active: Execution | None = None
        self.abort: Abort | None = None
        self.abort_proposal: Execution | None = None
        self.locked_out = False  # after an abort nothing else is executed this session
        self.controlling = False  # set by the first executed command: from then on lost control aborts
        self.last_change_at = -math.inf
        self.next_queue_poll = self.t0
        self.polls = self.lost = self.idle_messages = 0
        self.jitter: list[float] = []
        self.next_tick = self.next_record = self.t0
        self.next_progress = self.t0 + 60
        self.last_valid_at = self.t0
        self.stalled = False
        self.end_reason = "duration"
        self.last_reading: p.StatusReading | None = None

    def _poll(self) -> tuple[p.StatusReading | None, str | None, bool]:
        """One poll: (reading, why it failed, whether the failure was the R1's idle message)."""
        try:
            return self.driver.poll(), None, False
        except p.InvalidStatus as error:
            return None, f"invalid status: {error}", error.idle_message and self.previous_state in (None, p.State.OFF)
        except ReadTimeout as error:
            if not self.stalled:
                self._fault("stall", str(error))
            self.stalled = True
            return None, str(error), False
        except DeviceDisconnected as error:
            self._fault("disconnect", str(error))
            if self.active is not None:
                self.active.fail(self.clock.now(), "device disconnected during execution")
                self._report(self.active)
                self.active = None
            self.driver.close()
            self.driver = self._reconnect()
            return None, "disconnected", False

    def _record(self, reading: p.StatusReading | None, why: str | None, idle: bool, t: float) -> None:
        """Record every ``record_interval_s``, and at once on a state change or event."""
        due = t >= self.next_record - self.t0 - 1e-9
        recorded = False
        if reading is not None:
            state_changed = self.previous_state is not None and reading.state != self.previous_state
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

    def step(self) -> bool:
        """One poll cycle; False when the session should end (then call ``finish``)."""
        cfg, clock = self.cfg, self.clock
        now = clock.now()
        self.jitter.append(max(0.0, now - self.next_tick))
        t = now - self.t0
        self.polls += 1
        reading, why, idle = self._poll()
        if self.driver is None:
            self.lost += 1
            self.end_reason = "disconnected"
            self._fault("gave_up", f"no device after {cfg.reconnect_timeout_s:g} s of retries; session closed")
            return False
        if reading is None:
            self.idle_messages += idle
            self.lost += not idle
        else:
            self.stalled = False
            self.last_valid_at = now
            self.last_reading = reading
        self._record(reading, why, idle, t)

        if reading is not None:
            bt, et = self._bt_et(reading)
            beans_in = self.charge_t is not None and self.drop_t is None and t - self.charge_t > TP_GRACE_S
            trip = trip_reason(bt, et, cfg.limits, beans_in)
            if trip:
                self.request_abort(f"safety trip: {trip}")
            command = self._command_to_send(reading, now)
            if command is not None:
                try:
                    self.driver.send(command)
                except DeviceDisconnected:
                    pass  # the next poll sees the disconnect and handles it
        elif (self.controlling and now - self.last_valid_at > cfg.limits.lost_control_s
              and self.previous_state in HEATING_STATES and self._abort_request is None):
            # only once the sidecar has driven the roaster; before that the operator at the panel is in control
            self.request_abort(f"lost control: no valid status for {now - self.last_valid_at:.1f} s")

        if now >= self.next_progress:
            self.next_progress += 60
            state = self.last_reading.state_name if self.last_reading else "unknown"
            self.progress(f"t={t:.0f} s state={state} samples={self.recorder.samples} lost={self.lost}")
        if "COOL" in self.events and cfg.stop_on == "cool_end":
            self.end_reason = "cool_end"
            return False
        if self._stop_request:
            self.end_reason = self._stop_request
            return False
        if t >= cfg.max_duration_s:
            self.end_reason = "duration"
            return False
        self.next_tick += cfg.poll_interval_s
        after = clock.now()
        if after > self.next_tick + cfg.poll_interval_s:  # overran whole cycles: those polls are lost
            skipped = int((after - self.next_tick) / cfg.poll_interval_s)
            self.lost += skipped
            self.next_tick += skipped * cfg.poll_interval_s
        return True

    def finish(self) -> SidecarResult:
        """Close the recording (footer), write pending executions, move the file to the landing folder."""
        clock = self.clock
        if self.driver is not None:
            self.driver.close()
        if self.active is not None:
            self.active.fail(clock.now(), f"session ended ({self.end_reason}) during execution")
            self._report(self.active)
        duration = clock.now() - self.t0
        abort_latency = None if self.abort is None else self.abort.latency_s
        self.recorder.close({
            "end_reason": self.end_reason,
            "ended_at": clock.wall(),
            "duration_s": round(duration, 2),
            "polls": self.polls,
            "lost_polls": self.lost,
            "idle_messages": self.idle_messages,
            "commands": self.command_statuses,
            "abort_latency_s": abort_latency,
        })
        session = parse_sidecar(self.recorder.path.read_bytes(), str(self.recorder.path))
        if self.store:
            self.store.set_session_id(self.recording_id, session.session_id)
            if not self.store.flush():
                message = "command executions not written to the warehouse (locked); they are in the recording"
                self.faults.append(f"warehouse: {message}")
                self.progress(message)
        landing = Path(self.cfg.landing_dir) if self.cfg.landing_dir else project_config.landing_dir()
        landing.mkdir(parents=True, exist_ok=True)
        final_path = Path(shutil.move(str(self.recorder.path), str(landing / self.recorder.path.name)))
        self.progress(f"session {session.session_id} landed at {final_path} ({self.end_reason})")
        return SidecarResult(
            path=final_path, session_id=session.session_id, source=self.source, end_reason=self.end_reason,
            duration_s=duration, samples=self.recorder.samples, invalid_samples=self.recorder.invalid_samples,
            polls=self.polls, lost_polls=self.lost, commands_executed=sum(self.command_statuses.values()),
            command_statuses=dict(self.command_statuses), faults=self.faults,
            abort_latency_s=abort_latency, jitter_s=np.array(self.jitter),
        )


def build_sidecar(cfg: SidecarConfig, progress: Callable[[str], None] | None = None):
    """The sidecar wired to a real R1 (pyusb's libusb backend) or, with ``simulate``, the virtual R1.

    Returns ``(sidecar, virtual_device_or_None)``.
    """
    store = WarehouseCommandStore(cfg.warehouse) if cfg.warehouse else None
    if not cfg.simulate:
        return Sidecar(cfg, RealClock(), BulletR1.open, "real", store, progress=progress), None
    start = datetime.fromisoformat(cfg.start_at) if cfg.start_at else None
    clock = make_clock(cfg.time_scale, start)
    virtual = VirtualR1Config(**{**cfg.virtual.__dict__, "seed": cfg.seed})
    device, backend = plug_in_virtual_r1(virtual, clock)
    simulator = {
        "seed": cfg.seed,
        "time_scale": cfg.time_scale,
        "faults": virtual.faults.describe(),
        "operator_plan": asdict(virtual.operator) if virtual.operator else None,
        "thermal_model": asdict(virtual.thermal),
        "batch_g_in_hopper": virtual.batch_g,
    }
    # a stepped simulation is reproducible, so its id is too (same seed and start: same session_id)
    recording_id = uuid.uuid5(uuid.NAMESPACE_URL, f"daena-sim:{cfg.machine_id}:{cfg.seed}:{cfg.start_at}").hex if cfg.time_scale == 0 else None
    sidecar = Sidecar(cfg, clock, lambda: BulletR1.open(backend=backend), "simulator", store, simulator, progress, recording_id)
    device.on_mark = sidecar.mark  # the simulated operator marks first crack when the model's crack starts
    return sidecar, device


def run_sidecar(cfg: SidecarConfig, progress: Callable[[str], None] | None = None) -> SidecarResult:
    sidecar, _ = build_sidecar(cfg, progress)
    return sidecar.run()

