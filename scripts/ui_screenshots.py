"""Screenshots of the Dagster UI as a newcomer sees it, from a real headless browser.

    .venv/bin/python scripts/ui_screenshots.py [--skip-materialize] [--out data/screenshots]

Runs `daena materialize` (the project's own warehouse and Dagster home, as the README says),
starts `dg dev` in the project folder, and has headless Chromium (Debian: `apt-get install
chromium`) load the pages the README promises: the asset catalog, a warning check's detail, the
roast curve (its asset page draws the curve in place), sidecar_job's Launchpad, the Overview
timeline, one day of evals/eval_runs and regressions/findings; then the latest roast's full
chart, the SVG file (the UI shows a chart that size behind "Show Markdown" only). The PNGs land
in the output folder (`docs/screenshots/` holds the committed ones); `dg dev` is stopped at the end.
Not part of the test suite: it needs Chromium and takes a few minutes.
"""
from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from daena_pipelines.config import Settings
from daena_pipelines.telemetry.plot import HEIGHT as CHART_HEIGHT, WIDTH as CHART_WIDTH

PROJECT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
LOCATION = "daena_pipelines"
PAGE = "1600,1000"  # browser window, pixels
PAGES = {  # name: (path, window): the catalog tall enough for every asset
    "catalog": ("/assets", "1600,1750"),
    "warning_check": ("/assets/telemetry/roast_metrics?view=checks&checkDetail=agrees_with_artisan", PAGE),
    "roast_curve": ("/assets/telemetry/roast_curve", PAGE),
    "sidecar_launchpad": (f"/locations/{LOCATION}/jobs/sidecar_job/playground", PAGE),
    "overview_timeline": ("/overview/activity/timeline", PAGE),  # the `daena materialize` runs under their jobs
    "eval_runs_partition": ("/assets/evals/eval_runs?view=partitions&partition=2026-11-18", PAGE),
    "findings": ("/assets/regressions/findings", PAGE),
}


def wait_for(url: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=5) as reply:
                if reply.status == 200:
                    return
        except OSError:
            pass
        time.sleep(2)
    raise SystemExit(f"{url} did not answer within {timeout_s:.0f} s")


def screenshot(browser: str, url: str, path: Path, wait_ms: int, size: str) -> None:
    subprocess.run(
        [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", f"--window-size={size}",
         f"--virtual-time-budget={wait_ms}", f"--screenshot={path}", url],
        check=True, capture_output=True, timeout=180,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(Settings.from_env().data_dir / "screenshots"))
    parser.add_argument("--port", type=int, default=3033)
    parser.add_argument("--skip-materialize", action="store_true", help="use the warehouse and runs as they are")
    parser.add_argument("--wait-ms", type=int, default=25_000, help="page render time granted to the browser")
    args = parser.parse_args()
    browser = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if browser is None:
        raise SystemExit("no Chromium found: apt-get install chromium")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not args.skip_materialize:
        subprocess.run([str(BIN / "daena"), "materialize"], cwd=PROJECT, check=False)
    env = {**os.environ, "VIRTUAL_ENV": str(BIN.parent), "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    env.pop("DAGSTER_HOME", None)  # as a newcomer starts it: dg dev reads the project's .env
    log = Settings.from_env().data_dir / "ui_screenshots_dg_dev.log"  # beside the warehouse, out of the screenshots folder
    log.parent.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [str(BIN / "dg"), "dev", "--port", str(args.port)], cwd=PROJECT, env=env,
        stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{args.port}"
        wait_for(f"{base}/server_info", 240)
        time.sleep(10)  # the code location loads after the webserver answers
        for name, (page, size) in PAGES.items():
            path = out / f"{name}.png"
            screenshot(browser, base + page, path, args.wait_ms, size)
            print(f"{name}: {path}")
        curves = sorted((Settings.from_env().results_dir / "roast_curves").glob("*.svg"), key=lambda p: p.stat().st_mtime)
        if curves:
            chart_size = f"{CHART_WIDTH},{CHART_HEIGHT}"  # the SVG's own size: no empty page around it
            screenshot(browser, curves[-1].as_uri(), out / "roast_curve_chart.png", 2_000, chart_size)
            print(f"roast_curve_chart: {out / 'roast_curve_chart.png'}")
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
    return 0


if __name__ == "__main__":
    sys.exit(main())
