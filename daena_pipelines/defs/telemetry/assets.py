"""Dagster assets for roast telemetry: one ingest step materialises the four telemetry tables."""

from pathlib import Path
from typing import Optional

import dagster as dg
import duckdb
import numpy as np

from daena_pipelines.config import Settings
from daena_pipelines.lib.metadata import preview_table, table_metadata
from daena_pipelines.device import contract as device
from daena_pipelines.lib.metadata import markdown_table, table_metadata
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.specs import OWNERS, asset_defaults, key, keys, table_spec
from daena_pipelines.lib.warehouse import DUCKDB_POOL, WarehouseResource
from daena_pipelines.telemetry import contract, ingest, plot, recompute
from daena_pipelines.telemetry.metrics import METRICS_VERSION


# Not materialised here: the files the ingest reads, an asset so the lineage starts where the data does.
landing_folder = dg.AssetSpec(
    key(contract.LANDING_FOLDER),
    description="Roast files waiting for the ingest: DAENA_LANDING_DIR (your Artisan or RoasTime folder; the bundled "
    "samples by default) and <data>/landing (the sidecar's recordings). landing_folder_sensor watches both.",
    group_name="telemetry", owners=OWNERS, kinds={"folder"},
    metadata={"folders": dg.MetadataValue.text(", ".join(map(str, Settings.from_env().landing_dirs)))},
)

class IngestConfig(dg.Config):
    """Which files to ingest. By default the landing folders (DAENA_LANDING_DIR and the sidecar's
    recordings in <data>/landing); files
    already ingested with the same content are skipped either way."""

    landing_dir: Optional[str] = None
    paths: Optional[list[str]] = None  # set by the landing sensor: only the new or changed files
    workers: Optional[int] = None  # parser processes; default min(2, cores)


LATEST_SESSION = """SELECT session_id FROM telemetry.sessions ORDER BY roasted_at DESC NULLS LAST, ingested_at DESC LIMIT 1"""


def latest_session_curve(con: duckdb.DuckDBPyConnection) -> tuple[str, str, dict, dict] | None:
    """(session id, chart title, curve columns as float arrays, events in s from CHARGE) of the
    latest roast; None before the first session."""
    latest = con.execute(
        f"""SELECT s.session_id, s.title, s.beans, s.source_path, s.source, m.tp_s, m.dry_end_s, m.fcs_s, m.drop_s
           FROM telemetry.sessions s JOIN telemetry.roast_metrics m USING (session_id)
           WHERE s.session_id = ({LATEST_SESSION})"""
    ).fetchone()
    if latest is None:
        return None
    session_id, title, beans, source_path, source, *event_times = latest
    curve = con.execute(
        "SELECT t_s, bt_c, et_c, ror_c_per_min FROM telemetry.points WHERE session_id = ? ORDER BY t_s", [session_id]
    ).fetchnumpy()
    curve = {name: np.ma.filled(values.astype(float), np.nan) for name, values in curve.items()}  # NULL -> NaN
    events = {"CHARGE": 0.0} | {
        name: t for name, t in zip(("TP", "DRY END", "FCs", "DROP"), event_times) if t is not None
    }
    # the beans once: a title often names them already ("Kenya Nyeri #6")
    name = title if title and beans and beans in title else " — ".join(x for x in (beans, title) if x)
    return session_id, f"{name or Path(source_path).name} · {source} · session {session_id}", curve, events


def _latest_session_text(con: duckdb.DuckDBPyConnection) -> str:
    """Which roast the points preview shows, and whether it is real or simulated."""
    latest = con.execute(f"SELECT session_id, source FROM telemetry.sessions WHERE session_id = ({LATEST_SESSION})").fetchone()
    return "the latest roast (by roasted_at)" + (f": {latest[0]}, source {latest[1]}" if latest else ": none yet")


def _events_table(curve: dict, events: dict) -> dg.MetadataValue:
    """Each event: seconds and m:ss from CHARGE, BT there (°C, interpolated between samples)."""
    finite = np.isfinite(curve["bt_c"])
    rows = [
        (name, round(t, 1), f"{int(t // 60)}:{int(t % 60):02d}",
         round(float(np.interp(t, curve["t_s"][finite], curve["bt_c"][finite])), 1) if finite.any() else None)
        for name, t in events.items()
    ]
    return preview_table(["event", "t_s", "m:ss", "bt_c"], rows, ["string", "float (s from CHARGE)", "string", "float (°C)"])


def _report_metadata(report: ingest.IngestReport) -> dict:
    """The run's ingest in one line, and its rejected and duplicate files as tables (when any)."""
    metadata = {"ingest_report": dg.MetadataValue.text(
        f"{len(report.loaded)} sessions loaded ({len(report.replaced)} replacing a changed file), "
        f"{len(report.removed)} removed (their file changed into a copy of a roast kept from another), "
        f"{len(report.duplicates)} duplicates recognised, {len(report.rejected)} files rejected, "
        f"{report.unchanged} unchanged files skipped, {len(report.ignored)} non-roast files ignored."
    )}
    if report.rejected:
        metadata["rejected_files"] = preview_table(["file", "error", "reason"], [(Path(p).name, k, m) for p, k, m in report.rejected])
    if report.duplicates:
        metadata["duplicate_files"] = preview_table(["file", "same as"], [(Path(p).name, why) for p, why in report.duplicates])
    return metadata


@dg.multi_asset(
    specs=[
        table_spec(contract.SESSIONS, "One row per roast session (Artisan .alog profiles and device sidecar recordings); source = "
                   "'simulator' for a recording of the virtual roaster (the bundled samples), else 'real'.",
                   deps=[contract.LANDING_FOLDER, device.SIDECAR_RECORDING]),
        table_spec(contract.POINTS, "One row per telemetry sample: seconds from CHARGE, BT/ET °C, our RoR, heater/fan/drum, extra channels; "
                   "real or simulated as its session (telemetry.sessions.source)."),
        table_spec(contract.ROAST_METRICS, "Per-session roast metrics (phases, DTR, TP, RoR, AUC, crash/flick) beside Artisan's own values; "
                   "real or simulated as its session (telemetry.sessions.source, in the preview)."),
        table_spec(contract.INGEST_ERRORS, "Files that could not become a session, with the reason; copies are in the quarantine folder."),
    ],
    pool=DUCKDB_POOL,
    can_subset=False,
)
def telemetry_ingest(
    context: dg.AssetExecutionContext, config: IngestConfig, duckdb: WarehouseResource, daena_settings: DaenaSettings
):
    """Ingest new or changed roast files from the landing folder, one transaction per batch."""
    settings = daena_settings.get()
    folders = [Path(config.landing_dir)] if config.landing_dir else settings.landing_dirs
    missing = None
    if config.paths is not None:
        paths = [Path(p) for p in config.paths]
    else:  # every file: the ingest tells roasts from the rest (by name, and by content where a name allows both)
        paths = [path for folder in folders for path in ingest.walk(folder)]
        missing = ingest.missing_landing(folders[0])  # the user's folder (the sidecar's appears with its first recording)
        if missing:
            context.log.warning(missing)
    with duckdb.get_connection() as con:
        report = ingest.ingest(con, paths, settings.quarantine_dir, workers=config.workers)
        by_name = [path for path, why in report.ignored if why == ingest.NOT_A_ROAST_NAME]
        if by_name:
            context.log.info(f"ignored {len(by_name)} files in no roast format, e.g. {Path(by_name[0]).name}")
        for path, why in report.ignored:
            if why != ingest.NOT_A_ROAST_NAME:
                context.log.info(f"ignored {path}: {why}")
        for path, kind, message in report.rejected:
            context.log.warning(f"rejected {path}: {kind}: {message}")
        for path, why in report.duplicates:
            context.log.info(f"duplicate {path}: {why}")
        context.log.info(
            f"{len(report.loaded)} loaded, {len(report.duplicates)} duplicates, {len(report.rejected)} rejected, {report.unchanged} unchanged"
        )
        run_summary = {
            "sessions_loaded": dg.MetadataValue.int(len(report.loaded)),
            "files_rejected": dg.MetadataValue.int(len(report.rejected)),
            "duplicates": dg.MetadataValue.int(len(report.duplicates)),
            "files_unchanged": dg.MetadataValue.int(report.unchanged),
            "landing_dirs": dg.MetadataValue.text(", ".join(map(str, folders)) + (f" ({missing})" if missing else "")),
        }
        yield dg.MaterializeResult(
            asset_key=key(contract.SESSIONS),
            metadata={
                **table_metadata(
                    con, "telemetry.sessions",
                    "SELECT session_id, source_format, source, roasted_at, beans, title, original_unit FROM telemetry.sessions ORDER BY roasted_at DESC NULLS LAST LIMIT 10",
                ),
                **run_summary,
                **_report_metadata(report),
                "warehouse": dg.MetadataValue.path(duckdb.target()),
            },
        )
        yield dg.MaterializeResult(
            asset_key=key(contract.POINTS),
            metadata={
                **table_metadata(
                    con, "telemetry.points",
                    f"SELECT * EXCLUDE (extra_values) FROM telemetry.points WHERE session_id = ({LATEST_SESSION}) "
                    "AND t_s BETWEEN 0 AND 30 ORDER BY t_s LIMIT 10",
                ),
                "preview_session": dg.MetadataValue.text(_latest_session_text(con)),
            },
        )
        yield dg.MaterializeResult(
            asset_key=key(contract.ROAST_METRICS),
            metadata=table_metadata(
                con, "telemetry.roast_metrics",
                """SELECT m.session_id, s.source, s.beans, m.tp_s, m.fcs_s, m.drop_s, m.dtr_pct, m.drop_bt_c, m.auc_c_min, m.max_ror_c_per_min, m.crash, m.flick
                   FROM telemetry.roast_metrics m JOIN telemetry.sessions s USING (session_id) ORDER BY s.roasted_at DESC NULLS LAST LIMIT 10""",
            ),
        )
        yield dg.MaterializeResult(
            asset_key=key(contract.INGEST_ERRORS),
            metadata={
                **table_metadata(con, "telemetry.ingest_errors", "SELECT source_path, error_kind, message, seen_at FROM telemetry.ingest_errors ORDER BY seen_at DESC LIMIT 20"),
                "rejected_this_run": dg.MetadataValue.int(len(report.rejected)),
                "quarantine_dir": dg.MetadataValue.path(str(settings.quarantine_dir)),
            },
        )


@dg.asset(
    key=dg.AssetKey(["telemetry", "metrics_recompute"]),
    deps=[key(contract.ROAST_METRICS)],
    description="Recomputes telemetry.roast_metrics (and the points' RoR) of stored sessions whose metrics_version is older "
    "than the code's, from their stored points: no input file needed. Reports how many sessions it recomputed.",
    **asset_defaults("telemetry"),
)
def telemetry_metrics_recompute(context: dg.AssetExecutionContext, duckdb: WarehouseResource) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        count = recompute.recompute_metrics(con)
    context.log.info(f"recomputed the metrics of {count} stored sessions to metrics version {METRICS_VERSION}")
    return dg.MaterializeResult(metadata={
        "sessions_recomputed": dg.MetadataValue.int(count),
        "metrics_version": dg.MetadataValue.int(METRICS_VERSION),
    })


@dg.asset(
    key=["telemetry", "roast_curve"],
    deps=keys([contract.SESSIONS, contract.POINTS, contract.ROAST_METRICS]),
    description="The latest roast's curve: BT and ET (°C) against time, with its events (CHARGE, TP, DRY END, FCs, "
    "DROP) as a table. The asset page draws it in place (`roast_curve`); `full_chart` adds RoR (°C/min, right axis) "
    "and the axes, also written as an SVG file beside the other artifacts (`svg_file`).",
    **asset_defaults("telemetry", kinds={"duckdb", "python", "svg"}),
)
def roast_curve(duckdb: WarehouseResource, daena_settings: DaenaSettings) -> dg.MaterializeResult:
    with duckdb.get_connection() as con:
        latest = latest_session_curve(con)
    if latest is None:
        return dg.MaterializeResult(metadata={"session_id": dg.MetadataValue.text("(no session yet)")})
    session_id, title, curve, events = latest
    svg = plot.roast_curve_svg(curve["t_s"], curve["bt_c"], curve["et_c"], curve["ror_c_per_min"], events, title)
    path = daena_settings.get().results_dir / "roast_curves" / f"{session_id}.svg"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(svg)
    thumbnail = plot.roast_curve_thumbnail(curve["t_s"], curve["bt_c"], curve["et_c"], events)
    return dg.MaterializeResult(metadata={
        # drawn in place on the asset page (short markdown); the full chart is one click away
        "roast_curve": dg.MetadataValue.md(plot.svg_markdown(thumbnail, "BT red, ET blue; events dashed")),
        "events": _events_table(curve, events),
        "session": dg.MetadataValue.text(title),
        "session_id": dg.MetadataValue.text(session_id),
        "full_chart": dg.MetadataValue.md(plot.svg_markdown(svg, f"roast curve of session {session_id}")),
        "svg_file": dg.MetadataValue.path(str(path)),
    })
