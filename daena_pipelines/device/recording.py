"""The device sidecar's recording file (``*.sidecar.jsonl``): the writer. The format and its
reader are in ``telemetry/sidecar.py`` (device writes recordings, telemetry reads them)."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import orjson

from daena_pipelines.telemetry.contract import SIDECAR_FORMAT, SIDECAR_VERSION


def fault_line(t: float, kind: str, message: str) -> dict:
    """A ``fault`` line: something that happened to the session ``t`` seconds into it."""
    return {"type": "fault", "t": round(t, 2), "kind": kind, "message": message}


class SessionRecorder:
    """Appends one recording. Each line is flushed to the OS before ``write`` returns (it survives a
    crash of this process); a background thread fsyncs behind it (so it also survives a power cut
    within about a poll), keeping disk latency out of the 10 Hz poll loop."""

    def __init__(self, path: Path, header: dict, fsync: bool = True):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "xb")  # never overwrite an earlier recording
        self.samples = 0
        self.invalid_samples = 0
        self._last_t: float | None = None  # the last sample's t as written
        self._dirty = threading.Event()
        self._lock = threading.Lock()  # the watchdog may write faults while the poll loop records
        self._closing = False
        # off only for stepped simulations, which have no wall-clock crash to survive
        self._syncer = threading.Thread(target=self._sync_loop, daemon=True) if fsync else None
        if self._syncer:
            self._syncer.start()
        self._write({"type": "header", "format": SIDECAR_FORMAT, "version": SIDECAR_VERSION, **header})

    def _sync_loop(self) -> None:
        while not self._closing:
            self._dirty.wait()
            self._dirty.clear()
            os.fsync(self._file.fileno())

    def _write(self, record: dict) -> None:
        line = orjson.dumps(record) + b"\n"
        with self._lock:
            self._file.write(line)
            self._file.flush()
        self._dirty.set()

    def sample(self, t: float, values: dict | None, why: str | None = None) -> int:
        """Record a reading (``values`` in the sample keys above) or an invalid sample; returns its index."""
        t = round(t, 2)
        if self._last_t is not None and t <= self._last_t:
            # two cycles back to back (the loop catching up after one overran) can lie within the hundredth the file
            # keeps, and the reader refuses a recording whose t does not increase: this one goes a hundredth later
            t = round(self._last_t + 0.01, 2)
        self._last_t = t
        if values is None:
            self._write({"type": "sample", "t": t, "ok": False, "why": why})
            self.invalid_samples += 1
        else:
            self._write({"type": "sample", "t": t, **values})
        self.samples += 1
        return self.samples - 1

    def event(self, name: str, index: int, t: float, by: str) -> None:
        self._write({"type": "event", "name": name, "i": index, "t": round(t, 2), "by": by})

    def command(self, execution: dict) -> None:
        self._write({"type": "command", **execution})

    def fault(self, t: float, kind: str, message: str) -> None:
        self._write(fault_line(t, kind, message))

    def close(self, footer: dict) -> None:
        self._write({"type": "footer", "samples": self.samples, "invalid_samples": self.invalid_samples, **footer})
        if self._syncer:
            self._closing = True
            self._dirty.set()
            self._syncer.join()
            os.fsync(self._file.fileno())
        self._file.close()
