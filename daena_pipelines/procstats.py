"""Peak memory and CPU time of a process's descendants, for the benchmarks (Linux /proc).

The ingest's parser processes are forked by multiprocessing's fork server, a child of the
ingesting process that outlives them: they are its children, not ours, so
``getrusage(RUSAGE_CHILDREN)`` never sees them. A thread samples every descendant's own
high-water mark (``VmHWM``) and CPU time (``stat``'s utime + stime) instead; what a worker adds
in its last interval before it exits is missed.
"""
from __future__ import annotations

import os
import threading
from pathlib import Path


def _children(pid: int) -> list[int]:
    try:
        return [int(c) for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
    except OSError:
        return []


def _cpu_s(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime (fields 14, 15)


def _peak_kb(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


class DescendantPeakRss:
    """``with DescendantPeakRss() as peak: ...`` then ``peak.mb``: the largest peak RSS of any
    descendant process seen while the block ran, and ``peak.cpu_s``: their CPU time, as last seen
    (a descendant that was already running counts with all of its CPU)."""

    def __init__(self, interval_s: float = 0.1):
        self.interval_s, self.kb = interval_s, 0
        self._cpu: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    @property
    def mb(self) -> float:
        return self.kb / 1024

    @property
    def cpu_s(self) -> float:
        return sum(self._cpu.values())

    def _sample(self) -> None:
        pending = _children(os.getpid())
        while pending:
            pid = pending.pop()
            self.kb = max(self.kb, _peak_kb(pid))
            self._cpu[pid] = max(self._cpu.get(pid, 0.0), _cpu_s(pid))
            pending += _children(pid)

    def _watch(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> DescendantPeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._sample()  # the survivors' last interval (e.g. a fork server that outlives the block)
