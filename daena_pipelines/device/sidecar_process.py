"""Entry point of the sidecar process launched by Dagster Pipes (``python -m daena_pipelines.device.sidecar_process``).

USB work lives here, never in the code server. The settings arrive as the Pipes extra
``sidecar`` (a ``SidecarConfig`` as a dict); logs and progress stream back through Pipes and the
recorded session is reported as the asset's materialization.

Signals: SIGINT (what Dagster sends when a run is terminated; it waits 20 s before giving up), SIGTERM,
SIGHUP (the terminal that runs ``dagster dev`` closed) and SIGQUIT (Ctrl-\\) end the session through the
exit procedure: a roaster this session commanded is driven to heater 0 and cooling (confirmed by status)
before the footer is written (``STOP_SIGNALS``; the warehouse worker ignores them and writes the exit's rows, a
recording-only sidecar's watcher ignores them and is ended by the sidecar).
Ctrl-Z and the terminal's other job-control stops (``JOB_CONTROL_SIGNALS``) are ignored. SIGUSR1 is an operator
abort; SIGUSR2 marks first crack. The exit code is 1 when a cycle raised (the session still ended
through the exit procedure and its file landed), 2 when the session commanded the roaster and its exit
could not confirm it safe (roaster gone, or not within exit_timeout_s): the run fails instead of
looking like a safe end; 3 when a probe failed (``exit_code``).
"""
from __future__ import annotations

import os
import signal
import sys
import threading

from dagster_pipes import open_dagster_pipes

from daena_pipelines.device.rescue import JOB_CONTROL_SIGNALS, STOP_SIGNALS
from daena_pipelines.device.roaster import DeviceError
from daena_pipelines.device.sidecar import SidecarConfig, build_sidecar


def main() -> int:
    with open_dagster_pipes() as pipes:
        cfg = SidecarConfig.from_dict(pipes.get_extra("sidecar"))
        sidecar, _ = build_sidecar(cfg, progress=pipes.log.info)
        for stop_signal in STOP_SIGNALS:
            signal.signal(stop_signal, lambda number, _: sidecar.request_stop(f"terminated ({signal.Signals(number).name})"))
        for pause in JOB_CONTROL_SIGNALS:  # Ctrl-Z pauses no sidecar: its roaster would heat on unwatched
            signal.signal(pause, signal.SIG_IGN)
        signal.signal(signal.SIGUSR1, lambda *_: sidecar.request_abort("operator signal (SIGUSR1)"))
        signal.signal(signal.SIGUSR2, lambda *_: sidecar.mark("FCs"))  # operator heard first crack
        try:
            result = sidecar.run()
        except DeviceError as error:
            pipes.log.error(str(error))  # the operator's message, first thing in the run's logs
            raise
        for fault in result.faults:
            pipes.log.warning(fault)
        if result.error:
            pipes.log.error(result.error)
        pipes.report_asset_materialization(metadata={
            "dagster/row_count": result.samples,  # the catalog's row count: the recording's samples
            **{k: _typed(v) for k, v in result.metadata().items()},
        })
        if result.left_unsafe:  # fail the run: a commanded roaster may still be heating
            pipes.log.error(f"the roaster this session commanded was NOT confirmed safe at the exit "
                            f"({result.exit['outcome']}); check it at its panel")
        if result.probe_fault:
            pipes.log.error(f"probe failed: {result.probe_fault['message']}; last status heater {result.exit['heater']}, "
                            f"{result.exit['state']} ({result.exit['outcome']}). Check the probe before the next roast")
        return exit_code(result)


def exit_code(result) -> int:
    """1: a cycle raised; 2: a commanded roaster not confirmed safe; 3: a probe failed (the roaster made safe, but
    the run must not look like a good roast); 0 otherwise."""
    return 1 if result.error else 2 if result.left_unsafe else 3 if result.probe_fault else 0


def _typed(value):
    """Pipes infers scalars; containers and None need their type spelled out."""
    if isinstance(value, (dict, list)):
        return {"raw_value": value, "type": "json"}
    if value is None:
        return {"raw_value": None, "type": "null"}
    return value


def leave(code: int) -> None:
    """Exit with ``code``. A stepped run's warehouse thread still inside a stalled DuckDB cycle would abort the
    interpreter's shutdown (SIGABRT, the code lost): then the process leaves without it, its output flushed."""
    if any(thread.name == "sidecar-warehouse" and thread.is_alive() for thread in threading.enumerate()):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    leave(main())
