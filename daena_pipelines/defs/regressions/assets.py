"""The golden files, and regressions.findings: what failed against them, open until it passes again."""
from typing import Optional

import dagster as dg
from pydantic import Field

from daena_pipelines.config import Settings
from daena_pipelines.lib.findings_feed import unread
from daena_pipelines.lib.metadata import table_metadata
from daena_pipelines.lib.specs import OWNERS, asset_defaults, key, keys
from daena_pipelines.lib.warehouse import WarehouseResource
from daena_pipelines.regressions import contract
from daena_pipelines.regressions.findings import WatermarksMoved, read_watermarks, record_evaluations

golden_files = dg.AssetSpec(
    key(contract.GOLDEN),
    description="golden/ (DAENA_GOLDEN_DIR): golden values the golden checks compare with, golden roast cases the "
    "evals score against, NBMF dictionaries. Changed by review and `daena promote-golden --write`, not by a run.",
    group_name="regressions", owners=OWNERS, kinds={"folder", "json"},
    metadata={"folder": dg.MetadataValue.path(str(Settings.from_env().golden_dir))},
)

# short columns first: a wide first column would push the values out of the UI's table
READ_ATTEMPTS = 10  # how often the event log is read again when a concurrent run recorded first
OPEN_FINDINGS = """SELECT asset_key, check_name, details->>'golden' AS golden, details->>'actual' AS actual,
    details->>'change' AS change, occurrences, last_seen, metric, first_seen
    FROM regressions.findings WHERE resolved_at IS NULL ORDER BY last_seen DESC LIMIT 20"""


class FindingsConfig(dg.Config):
    checks: Optional[list[str]] = Field(
        default=None, description="Asset checks whose results to read, as 'asset/key:check_name'; "
        "empty = every check of the code location (only golden checks yield findings).")


def _check_keys(config: FindingsConfig) -> list[dg.AssetCheckKey]:
    if config.checks is not None:
        return [dg.AssetCheckKey.from_user_string(k) for k in config.checks]
    # a run's step context has no repository definition here: the code location's own definitions
    from daena_pipelines.definitions import defs  # imported at run time, when it is loaded already

    return list(defs.resolve_asset_graph().asset_check_keys)


@dg.asset(
    key=key(contract.FINDINGS),
    deps=keys([contract.GOLDEN, *contract.GUARDED]),
    description="One row per failing golden value (and per benchmark/eval materialisation that did not happen), open "
    "until a later evaluation passes it. Reads the check results and runs recorded since its last materialisation "
    "(how far it read is kept in regressions.findings_watermarks); regressions_sensor requests it when there are "
    "new ones, `daena materialize` runs it last. The preview lists the open findings.",
    **asset_defaults("regressions", table=contract.FINDINGS),
)
def findings(context: dg.AssetExecutionContext, config: FindingsConfig, duckdb: WarehouseResource) -> dg.MaterializeResult:
    for attempt in range(1, READ_ATTEMPTS + 1):
        with duckdb.get_connection() as con:
            watermarks = read_watermarks(con)
        # the event log is read with no warehouse connection open
        evaluations, moved = unread(context.instance, _check_keys(config), watermarks)
        try:
            with duckdb.get_connection() as con:
                counts = record_evaluations(con, evaluations, moved, read_from=watermarks)
                metadata = table_metadata(con, contract.FINDINGS, OPEN_FINDINGS)
                open_findings = con.execute("SELECT count(*) FROM regressions.findings WHERE resolved_at IS NULL").fetchone()[0]
            break
        except WatermarksMoved:  # a concurrent findings run (DuckLake: several at once) recorded them first
            if attempt == READ_ATTEMPTS:
                raise
    context.log.info(f"{len(evaluations)} evaluations read: {counts}; {open_findings} findings open")
    return dg.MaterializeResult(metadata={
        **metadata,
        "open_findings": dg.MetadataValue.int(open_findings),
        "evaluations_read": dg.MetadataValue.int(len(evaluations)),
        **{name: dg.MetadataValue.int(n) for name, n in counts.items()},
    })
