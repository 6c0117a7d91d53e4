"""Record the six bundled sample sessions from the virtual Bullet R1 into assets/landing/.

Deterministic: a stepped clock (no wall-clock timing) and fixed seeds, so running it again
produces byte-identical files. Every file is labelled source='simulator' and its notes say so;
these are not real roasts. The sidecar polls at 10 Hz and records 1 sample per second (plus
every state change), which keeps a whole preheat-to-cool session near 150 kB.

    python scripts/make_sample_sessions.py [--out assets/landing]
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daena_pipelines import config  # noqa: E402
from daena_pipelines.telemetry.contract import SIDECAR_SUFFIX  # noqa: E402
from daena_pipelines.telemetry.sidecar import parse_sidecar  # noqa: E402
from daena_pipelines.device.sidecar import SidecarConfig, run_sidecar  # noqa: E402
from daena_pipelines.device.thermal import ThermalParams  # noqa: E402
from daena_pipelines.device.virtual_r1 import OperatorPlan, VirtualR1Config  # noqa: E402

MACHINE = "Aillio Bullet R1 (virtual)"
# (beans, start time, seed, green-bean moisture, roaster's drop temperature, preheat target)
ROASTS = [
    ("Brazil Cerrado", "2026-11-17T09:10:00+00:00", 101, 0.100, 212.0, 240),
    ("Ethiopia Guji", "2026-11-17T14:40:00+00:00", 102, 0.112, 208.0, 245),
    ("Kenya Nyeri", "2026-11-18T09:05:00+00:00", 103, 0.115, 209.0, 245),
    ("Brazil Cerrado", "2026-11-18T15:20:00+00:00", 104, 0.098, 213.0, 235),
    ("Ethiopia Guji", "2026-11-19T08:50:00+00:00", 105, 0.110, 207.0, 240),
    ("Kenya Nyeri", "2026-11-19T13:30:00+00:00", 106, 0.118, 210.0, 250),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=config.ASSETS_DIR / "landing")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    for old in args.out.glob(f"*-r1-virtual-*{SIDECAR_SUFFIX}"):
        old.unlink()  # earlier output of this script; regenerated below
    with tempfile.TemporaryDirectory() as recordings:
        for number, (beans, start_at, seed, moisture, drop_bt_c, preheat_c) in enumerate(ROASTS, start=1):
            cfg = SidecarConfig(
                machine_id="r1-virtual", machine_name=MACHINE, simulate=True, time_scale=0, seed=seed,
                start_at=start_at, recordings_dir=recordings, landing_dir=str(args.out),
                beans=beans, batch_weight_g=250.0, title=f"{beans} #{number} (simulated)",
                notes=(f"Recorded from the virtual Bullet R1 (simulator, seed {seed}) by scripts/make_sample_sessions.py. "
                       "Not a real roast: thermal model and operator are simulated."),
                virtual=VirtualR1Config(
                    batch_g=250.0,
                    thermal=ThermalParams(initial_moisture=moisture),
                    operator=OperatorPlan(drop_bt_c=drop_bt_c, preheat_target_c=preheat_c),
                ),
            )
            result = run_sidecar(cfg, progress=lambda message: None)
            if result.faults or result.end_reason != "cool_end":
                raise SystemExit(f"{result.path}: not a clean roast ({result.end_reason}; {result.faults})")
            session = parse_sidecar(result.path.read_bytes(), str(result.path))
            charge, fcs, drop = (session.events.get(name) for name in ("CHARGE", "FCs", "DROP"))
            since = session.time_s - session.time_s[charge]
            print(f"{result.path.name}: {beans}, {result.samples} samples, {result.path.stat().st_size / 1000:.0f} kB, "
                  f"FCs {since[fcs] / 60:.1f} min @ {session.bt_c[fcs]:.1f} °C, "
                  f"DROP {since[drop] / 60:.1f} min @ {session.bt_c[drop]:.1f} °C, lost {result.lost_polls}")


if __name__ == "__main__":
    main()
