"""The NBMF benchmark asset: measure every codec on the warehouse's held-out records."""

import dagster as dg

from daena_pipelines.commands import contract as commands
from daena_pipelines.evals import contract as evals
from daena_pipelines.nbmf.benchmark import DEFAULT_REPETITIONS
from daena_pipelines.nbmf.runs import execute_run
from daena_pipelines.lib.metadata import preview_table, table_metadata
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.specs import asset_defaults, key, keys
from daena_pipelines.lib.warehouse import WarehouseResource
from daena_pipelines.nbmf import contract
from daena_pipelines.telemetry import contract as telemetry

# the tables the benchmark corpus is drawn from (nbmf/corpus.py)
CORPUS_SOURCES = [
    telemetry.SESSIONS, telemetry.POINTS, commands.PROPOSALS, commands.AUDIT_LOG, evals.EVAL_RUNS, evals.JUDGE_SCORES,
]


class NbmfBenchmarkConfig(dg.Config):
    repetitions: int = DEFAULT_REPETITIONS


@dg.asset(
    key=key(contract.RESULTS),
    deps=keys(CORPUS_SOURCES),
    **asset_defaults("nbmf", table=contract.RESULTS),
    description=(
        "NBMF vs raw JSON, zlib-9, zstd-3 and zstd-19 on the warehouse's held-out records (with the bundled data: "
        "simulator sessions and a generated proposal log) and the shared real profiles, per record class "
        "and size bucket: ratios, fidelity, latency percentiles and MB/s, each row labelled with the origin of its records "
        "(one row per origin, and a row over several named by all of them: reference+simulator). records_by_origin (also in "
        "nbmf.runs) says how many records of each class were real, reference, simulated or generated. Writes nbmf.runs, "
        "nbmf.results, nbmf.latency_samples and a JSON + CSV artifact per run."
    ),
)
def nbmf_results(
    context: dg.AssetExecutionContext, config: NbmfBenchmarkConfig, duckdb: WarehouseResource, daena_settings: DaenaSettings
):
    run = execute_run(duckdb.get_connection, daena_settings.get(), repetitions=config.repetitions)
    for record_class, reason in run["skipped_classes"].items():
        context.log.info(f"record class {record_class} skipped: {reason}")
    preview = (
        "SELECT record_class, size_bucket, codec, origin, "
        "max(value) FILTER (metric = 'ratio_total') AS ratio_total, "
        "max(value) FILTER (metric = 'exact_match_rate') AS exact_match_rate, "
        "max(value) FILTER (metric = 'encode_mb_s') AS encode_mb_s, "
        "max(value) FILTER (metric = 'decode_mb_s') AS decode_mb_s "
        f"FROM nbmf.results WHERE run_id = '{run['run_id']}' AND size_bucket IN ('lt4k', 'all') "
        "GROUP BY ALL ORDER BY record_class, size_bucket, codec, origin"
    )
    with duckdb.get_connection() as con:
        metadata = table_metadata(con, "nbmf.results", preview)
    target_rows = [(t["target"], t["reached"], t["goal"], t["met"], t["origin"]) for t in run["targets"]]
    return dg.MaterializeResult(
        metadata={
            **metadata,
            "run_id": run["run_id"],
            "corpus_sha256": run["corpus_sha256"],
            "test_records": run["test_records"],
            "skipped_classes": dg.MetadataValue.json(run["skipped_classes"]),
            "records_by_origin": dg.MetadataValue.json(run["records_by_origin"]),
            "settings": dg.MetadataValue.json(run["settings"]),
            "targets": preview_table(["target", "reached", "goal", "met", "origin"], target_rows,
                                     ["string", "float", "string", "bool", "string"]),
            "artifact_json": dg.MetadataValue.path(run["artifact_json"]),
            "artifact_csv": dg.MetadataValue.path(run["artifact_csv"]),
        }
    )
