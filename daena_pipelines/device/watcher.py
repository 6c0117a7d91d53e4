"""The watcher of a sidecar that only records (no warehouse, so no warehouse worker to survive a kill of it).

Such a sidecar commands its roaster too: an operator's abort (SIGUSR1), a safety trip. Killed (kill -9, OOM, a
crash of the interpreter) in the middle of that abort, nothing in it runs. Its watcher, a process spawned at its
start, does nothing but look every ``PARENT_CHECK_S`` whether the sidecar still lives; when it finds it dead, it
runs what the warehouse worker would (``rescue.after_death``: ``make_safe`` when the sidecar had commanded the
roaster, within ``exit_timeout_s``), says what became of the roaster on stderr (the Dagster run's log) and, as a
``fault`` line, in the recording the dead sidecar left, and ends. Once the sidecar's exit procedure has run, the
sidecar kills it (``end``): it never touched the roaster. docs/device.md, "kill -9".
"""
from __future__ import annotations

import logging
import os
import time
from pathlib import Path

import orjson

from daena_pipelines.device.clock import since_boot
from daena_pipelines.device.recording import fault_line
from daena_pipelines.device.rescue import DIED, PARENT_CHECK_S, Outliving, RescuePlan, SharedFlag, after_death, outlive_the_sidecar

log = logging.getLogger(__name__)

WATCHER = "the sidecar's watcher"
FAULT_KIND = "watcher"  # the recording's fault line of a watcher that found its sidecar dead


class Watcher:
    """The sidecar side: ``start``, ``commanding`` (before the first command), ``end`` (the exit procedure has run)."""

    def __init__(self, plan: RescuePlan, recording: Path, started_s: float, time_scale: float):
        """``started_s``: the session's start on ``clock.since_boot()``; ``time_scale``: device seconds per real one
        (the recording's ``t`` of the watcher's fault line)."""
        self._commanded = SharedFlag()  # as the warehouse worker's: set before the first command goes out
        self.process = Outliving(target=_watch, name="sidecar-watcher", daemon=True, args=(
            plan, str(recording), started_s, time_scale, self._commanded))

    who = WATCHER

    def start(self) -> None:
        self.process.start()

    def alive(self) -> bool:
        return self.process.is_alive()

    def commanding(self) -> None:
        """The sidecar is about to send the roaster its first command: should it be killed from now on, the watcher
        makes the roaster safe."""
        self._commanded.set()

    def end(self) -> None:
        """The exit procedure has run: the watcher goes. It is killed: it acts only once the sidecar is dead, so
        while the sidecar lives to kill it, it has nothing under way (and no lock a kill could leave taken)."""
        self.process.end(0.0)


def _watch(plan: RescuePlan, recording: str, started_s: float, time_scale: float, commanded) -> None:
    sidecar = outlive_the_sidecar()
    while sidecar.is_alive():
        time.sleep(PARENT_CHECK_S)
    roaster = after_death(plan, commanded, WATCHER)
    _report(recording, (since_boot() - started_s) * time_scale, f"sidecar {DIED}: {roaster}")


def _report(recording: str, t: float, message: str) -> None:
    """The recording first (the run's log may be gone with its step), then stderr."""
    written = "; said in its recording"
    try:
        with open(recording, "r+b") as file:
            file.seek(-1, os.SEEK_END)  # (never empty: the header is written at the start)
            if file.read(1) == b"\n":
                file.write(orjson.dumps(fault_line(t, FAULT_KIND, message)) + b"\n")
                file.flush()
                os.fsync(file.fileno())
            else:  # a line after it would make the torn one a broken line in the middle, which no reader takes
                written = "; not said in its recording, whose last line the sidecar left torn"
    except OSError as error:
        written = f"; not said in its recording ({error})"
    log.warning("%s (recording %s%s)", message, recording, written)
