"""Entry point of the sidecar process launched by Dagster Pipes (``python -m daena_pipelines.device.sidecar_process``).

USB work lives here, never in the code server. The settings arrive as the Pipes extra
``sidecar`` (a ``SidecarConfig`` as a dict); logs and progress stream back through Pipes and the
recorded session is reported as the asset's materialization. SIGINT/SIGTERM (run terminated) end the
recording cleanly; SIGUSR1 is an operator abort (heater 0, cooling); SIGUSR2 marks first crack.
"""
from __future__ import annotations

import signal

from dagster_pipes import open_dagster_pipes

from daena_pipelines.device.roaster import DeviceError
from daena_pipelines.device.sidecar import SidecarConfig, build_sidecar


def main() -> None:
    with open_dagster_pipes() as pipes:
        cfg = SidecarConfig.from_dict(pipes.get_extra("sidecar"))
        sidecar, _ = build_sidecar(cfg, progress=pipes.log.info)
        # Dagster forwards a run termination as SIGINT: stop recording cleanly (footer, landing)
        for stop_signal in (signal.SIGINT, signal.SIGTERM):
            signal.signal(stop_signal, lambda *_: sidecar.request_stop("terminated"))
        signal.signal(signal.SIGUSR1, lambda *_: sidecar.request_abort("operator signal (SIGUSR1)"))
        signal.signal(signal.SIGUSR2, lambda *_: sidecar.mark("FCs"))  # operator heard first crack
        try:
            result = sidecar.run()
        except DeviceError as error:
            pipes.log.error(str(error))  # the operator's message, first thing in the run's logs
            raise
        for fault in result.faults:
            pipes.log.warning(fault)
        pipes.report_asset_materialization(metadata={k: _typed(v) for k, v in result.metadata().items()})


def _typed(value):
    """Pipes infers scalars; containers and None need their type spelled out."""
    if isinstance(value, (dict, list)):
        return {"raw_value": value, "type": "json"}
    if value is None:
        return {"raw_value": None, "type": "null"}
    return value


if __name__ == "__main__":
    main()
