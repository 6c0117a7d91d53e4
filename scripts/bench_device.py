"""Benchmark the sidecar against the virtual Bullet R1: polling jitter, lost samples, abort latency.

1. A 15-minute session (device time) at a high time scale: lateness of every poll against its
   10 Hz schedule (p50/p99), polls lost (target 0). Baseline, measured in the same run: a bare
   loop that only sleeps to the same schedule for as many ticks, so the ratios show what USB +
   recording add, and its missed ticks show what the machine's scheduler alone loses (at x20 a
   poll has 5 ms; on a shared machine the OS alone oversleeps that now and then).
2. Abort latency in real time: fast-forward a roast to full heat, switch the clock to 1x, request
   an abort and time it from request to the status confirming heater 0 and cooling (target < 2 s).

    python scripts/bench_device.py [--time-scale 20] [--aborts 3]   (about 2.5 min; exit 1 if a target is missed)
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from daena_pipelines import config  # noqa: E402
from daena_pipelines.device import protocol as p  # noqa: E402
from daena_pipelines.device.sidecar import SidecarConfig, build_sidecar  # noqa: E402
from daena_pipelines.device.virtual_r1 import OperatorPlan, VirtualR1Config  # noqa: E402

SESSION_S = 15 * 60
ABORT_TARGET_S = 2.0


def percentiles_ms(lateness_s: np.ndarray) -> dict:
    return {"p50_ms": round(float(np.percentile(lateness_s, 50)) * 1000, 3),
            "p99_ms": round(float(np.percentile(lateness_s, 99)) * 1000, 3)}


def bare_sleep_baseline(interval_s: float, ticks: int) -> tuple[np.ndarray, int]:
    """Lateness (real seconds) and missed ticks of a loop that only sleeps to an absolute schedule,
    counting a miss exactly as the sidecar counts a lost poll."""
    lateness, missed = [], 0
    next_tick = time.monotonic()
    for _ in range(ticks):
        lateness.append(max(0.0, time.monotonic() - next_tick))
        next_tick += interval_s
        now = time.monotonic()
        if now > next_tick + interval_s:
            skipped = int((now - next_tick) / interval_s)
            missed += skipped
            next_tick += skipped * interval_s
        time.sleep(max(0.0, next_tick - time.monotonic()))
    return np.array(lateness), missed


def config_for(folder: str, time_scale: float, **overrides) -> SidecarConfig:
    return SidecarConfig(
        machine_id="bench", simulate=True, time_scale=time_scale, seed=11,
        recordings_dir=f"{folder}/rec", landing_dir=f"{folder}/landing",
        virtual=VirtualR1Config(operator=OperatorPlan()), **overrides,
    )


def session_run(folder: str, time_scale: float) -> dict:
    cfg = config_for(folder, time_scale, stop_on="duration", max_duration_s=SESSION_S)
    sidecar, _ = build_sidecar(cfg, progress=lambda message: None)
    started = time.monotonic()
    result = sidecar.run()
    real_s = time.monotonic() - started
    lateness_real_s = result.jitter_s / time_scale
    return {
        "device_s": round(result.duration_s, 1), "real_s": round(real_s, 2), "time_scale": time_scale,
        "polls": result.polls, "expected_polls": int(SESSION_S / cfg.poll_interval_s) + 1,
        "lost_polls": result.lost_polls, "samples": result.samples, "invalid_samples": result.invalid_samples,
        "jitter_real": percentiles_ms(lateness_real_s), "jitter_device": percentiles_ms(result.jitter_s),
        "interval_real_ms": cfg.poll_interval_s / time_scale * 1000,
    }


def abort_run(folder: str, fast_scale: float) -> dict:
    cfg = config_for(folder, fast_scale)
    sidecar, device = build_sidecar(cfg, progress=lambda message: None)
    sidecar.start()
    clock = sidecar.clock
    while not (sidecar.charge_t is not None and clock.now() - sidecar.t0 - sidecar.charge_t > 120):
        sidecar.step()
        clock.sleep(sidecar.next_tick - clock.now())
    clock.set_scale(1.0)
    heater_before = device.heater
    requested_real = time.monotonic()
    sidecar.request_abort("benchmark")
    while True:
        sidecar.step()
        if sidecar.abort is not None and sidecar.abort.done:
            break
        clock.sleep(sidecar.next_tick - clock.now())
    real_latency = time.monotonic() - requested_real
    confirmed = device.heater == 0 and device.state == p.State.COOLING
    sidecar.request_stop("benchmark done")
    sidecar.step()
    sidecar.finish()
    return {"heater_before": heater_before, "latency_device_s": round(sidecar.abort.latency_s, 3),
            "latency_real_s": round(real_latency, 3), "confirmed": confirmed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time-scale", type=float, default=20.0)
    parser.add_argument("--aborts", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        session = session_run(folder, args.time_scale)
        baseline, baseline_missed = bare_sleep_baseline(session["interval_real_ms"] / 1000, session["expected_polls"])
        aborts = [abort_run(folder, 50.0) for _ in range(args.aborts)]
    base = percentiles_ms(baseline)
    worst_abort = max(a["latency_device_s"] for a in aborts)
    report = {
        "measured_at": datetime.now(UTC).isoformat(), "session": session,
        "baseline_bare_sleep_real": {**base, "missed_ticks": baseline_missed},
        "jitter_p50_ratio_vs_baseline": round(session["jitter_real"]["p50_ms"] / max(base["p50_ms"], 1e-6), 2),
        "jitter_p99_ratio_vs_baseline": round(session["jitter_real"]["p99_ms"] / max(base["p99_ms"], 1e-6), 2),
        "aborts": aborts, "abort_target_s": ABORT_TARGET_S,
        "ok": session["lost_polls"] == 0 and worst_abort < ABORT_TARGET_S and all(a["confirmed"] for a in aborts),
    }
    out = config.results_dir() / f"bench_device-{datetime.now(UTC):%Y%m%dT%H%M%S}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))
    s = session
    print(f"15-min session at x{s['time_scale']:g}: {s['real_s']} s real, polls {s['polls']}/{s['expected_polls']}, "
          f"lost {s['lost_polls']} (target 0), invalid samples {s['invalid_samples']}")
    print(f"poll jitter (real): p50 {s['jitter_real']['p50_ms']} ms, p99 {s['jitter_real']['p99_ms']} ms "
          f"(interval {s['interval_real_ms']:g} ms); bare-sleep baseline p50 {base['p50_ms']} ms, p99 {base['p99_ms']} ms; "
          f"ratio p50 {report['jitter_p50_ratio_vs_baseline']}, p99 {report['jitter_p99_ratio_vs_baseline']}")
    print(f"bare-sleep baseline missed {baseline_missed} of {s['expected_polls']} ticks on the same schedule "
          f"(what this machine's scheduler loses without any USB or recording work)")
    print(f"poll jitter (device time): p50 {s['jitter_device']['p50_ms']} ms, p99 {s['jitter_device']['p99_ms']} ms")
    for a in aborts:
        print(f"abort from heater {a['heater_before']}: {a['latency_device_s']} s (real {a['latency_real_s']} s), "
              f"confirmed heater 0 + cooling: {a['confirmed']} (target < {ABORT_TARGET_S} s)")
    print(f"{'OK' if report['ok'] else 'FAILED'}; results in {out}")
    sys.exit(0 if report["ok"] else 1)


if __name__ == "__main__":
    main()
