"""Run the pipelines on the fault cases of ``faults.py`` and judge every outcome.

``python -m tests.badinput.harness [--seed N]`` runs each case on its own beside all the good
inputs and prints the table: fault class -> cases -> run failures -> good rows lost -> bad
admitted (and cases whose error row or flag is missing or wrong). The test module runs all
cases in one batch per input kind instead, which is what CI can afford.
"""
from __future__ import annotations

import argparse
import re
import shutil
import tempfile
import traceback
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from tests.badinput import faults

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "artisan-scottjames"


@dataclass
class Verdict:
    """How one run treated the cases it contained."""

    run_failed: str | None = None  # the exception, when the run itself failed
    good_lost: int = 0
    admitted: list[str] = field(default_factory=list)  # bad cases loaded without an error row or flag
    wrong: list[str] = field(default_factory=list)  # other misses: no/duplicate error row, message not naming the problem


def _judge(case: faults.Case, errors: list[str], loaded: bool, flags: list[str], verdict: Verdict) -> None:
    matching = [m for m in errors if re.search(case.problem, m)]
    if case.expect == faults.LOAD:
        if not loaded or errors:
            verdict.wrong.append(f"{case.name}: should load cleanly, got errors {errors}")
        return
    flagged = loaded and any(re.search(case.problem, f) for f in flags)
    if loaded and not flagged and not errors:
        verdict.admitted.append(case.name)
    elif case.expect == faults.FLAG and not flagged:
        verdict.wrong.append(f"{case.name}: expected a quality flag matching {case.problem!r}, got flags {flags} errors {errors}")
    elif case.expect == faults.REJECT and (len(errors) != 1 or not matching or loaded):
        verdict.wrong.append(f"{case.name}: expected one error matching {case.problem!r}, got {errors} (loaded: {loaded})")
    elif case.expect == "reject-or-flag" and not (flagged or (len(errors) == 1 and matching and not loaded)):
        verdict.wrong.append(f"{case.name}: expected a flag or one error matching {case.problem!r}, got {errors} {flags}")


# ---- telemetry (.alog and sidecar recordings) ------------------------------------------------------


def run_telemetry(work: Path, cases: list[faults.Case]) -> Verdict:
    import duckdb

    from daena_pipelines.telemetry import ingest

    good, bad = faults.write_landing(work / "landing", SHARED, cases)
    verdict = Verdict()
    con = duckdb.connect(str(work / "warehouse.duckdb"))
    try:
        try:
            ingest.ingest(con, [*good, *map(Path, bad)], work / "quarantine", workers=1)
        except Exception as exc:  # the run failing is what is measured here
            verdict.run_failed = f"{type(exc).__name__}: {exc}"[:300]
        loaded = {p for (p,) in con.execute("SELECT source_path FROM telemetry.sessions").fetchall()} if _has(con, "telemetry", "sessions") else set()
        verdict.good_lost = sum(str(p) not in loaded for p in good)
        errors = defaultdict(list)
        if _has(con, "telemetry", "ingest_errors"):
            for path, message in con.execute("SELECT source_path, message FROM telemetry.ingest_errors").fetchall():
                errors[path].append(message)
        flags = defaultdict(list)
        if loaded:
            rows = con.execute("SELECT source_path, settings FROM telemetry.sessions").fetchall()
            import json

            for path, settings in rows:
                flags[path] = [str(f) for f in (json.loads(settings) or {}).get("quality_flags", [])]
        for path, case in bad.items():
            _judge(case, errors[path], path in loaded, flags[path], verdict)
    finally:
        con.close()
    return verdict


def _has(con, schema: str, table: str) -> bool:
    return bool(con.execute("SELECT count(*) FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [schema, table]).fetchone()[0])


# ---- command-service readers -----------------------------------------------------------------------


def run_commands(work: Path, jsonl_cases: list[faults.Case], sqlite_rows: bool, sqlite_files: list[faults.Case],
                 baseline: set[str] | None = None) -> Verdict:
    """One materialisation of commands/proposals on the bundled store and export plus the given faults."""
    import dagster as dg

    from daena_pipelines.defs.commands.assets import command_proposals as assets  # not all definitions: faster
    from daena_pipelines.lib.warehouse import warehouse_resource

    work.mkdir(parents=True, exist_ok=True)
    sqlite_paths, jsonl_paths = [str(faults.SQLITE_STORE)], [str(faults.JSONL_EXPORT)]
    expected: dict[str, faults.Case] = {}  # location prefix -> case
    if jsonl_cases:
        export = work / "fuzz_export.jsonl"
        for number, case in faults.write_jsonl(export, jsonl_cases).items():
            expected[f"{export}:{number}"] = case
        jsonl_paths.append(str(export))
    if sqlite_rows:
        store = work / "fuzz_store.sqlite"
        for rowid, case in faults.write_sqlite_with_bad_rows(store).items():
            expected[f"{store}:proposals rowid={rowid}"] = case
        sqlite_paths.append(str(store))
    for case in sqlite_files:
        path = work / f"{case.name}{case.suffix}"
        path.write_bytes(case.data)
        expected[str(path)] = case
        sqlite_paths.append(str(path))

    verdict = Verdict()
    warehouse = work / "warehouse.duckdb"
    config = {"sqlite_paths": sqlite_paths, "jsonl_paths": jsonl_paths, "read_sidecar_executions": False}
    try:
        result = dg.materialize([assets], resources={"duckdb": warehouse_resource(warehouse)},
                                run_config={"ops": {assets.op.name: {"config": config}}}, raise_on_error=False)
        if not result.success:
            failure = next((e for e in result.all_events if e.is_step_failure), None)
            verdict.run_failed = str(failure.step_failure_data.error.message if failure else "run failed")[:300]
    except Exception as exc:
        verdict.run_failed = f"{type(exc).__name__}: {exc}"[:300]
    if not warehouse.exists():
        verdict.good_lost = len(baseline or ())
        verdict.wrong += [f"{c.name}: no warehouse written" for c in expected.values()]
        return verdict
    with warehouse_resource(warehouse).get_connection() as con:  # the run's own connection settings
        accepted = ({p for (p,) in con.execute("SELECT proposal_id FROM commands.proposals").fetchall()}
                    if _has(con, "commands", "proposals") else set())
        invalid = ({p for (p,) in con.execute("SELECT proposal_id FROM commands.invalid_transitions").fetchall()}
                   if _has(con, "commands", "invalid_transitions") else set())
        errors = con.execute("SELECT location, message FROM commands.ingest_errors").fetchall() if _has(con, "commands", "ingest_errors") else []
    if baseline is not None:
        verdict.good_lost = len(baseline - accepted)
    for location, case in expected.items():
        mine = [m for loc, m in errors if loc == location or loc.startswith(location + ":")]
        proposal_id = f"fuzz-{case.name}"
        _judge(case, mine, proposal_id in accepted or proposal_id in invalid, [], verdict)
    return verdict


def command_baseline() -> set[str]:
    """Proposal ids the bundled store and export yield on their own (the good rows)."""
    from daena_pipelines.commands import store

    batches = [store.read_sqlite(faults.SQLITE_STORE), store.read_jsonl(faults.JSONL_EXPORT)]
    return {p.proposal_id for p in store.accept(store.combine(batches)).proposals}


# ---- the table ---------------------------------------------------------------------------------------


def table(seed: int) -> str:
    import random

    rows: dict[tuple[str, str], list] = {}  # (input, class) -> [cases, run failures, good lost, admitted, wrong]
    notes = []

    def add(kind: str, case: faults.Case, verdict: Verdict) -> None:
        row = rows.setdefault((kind, case.fault_class), [0, 0, 0, 0, 0])
        row[0] += 1
        row[1] += verdict.run_failed is not None
        row[2] += verdict.good_lost
        row[3] += len(verdict.admitted)
        row[4] += len(verdict.wrong) if verdict.run_failed is None else 0
        if verdict.run_failed or verdict.wrong:
            notes.append(f"{case.name}: {verdict.run_failed or '; '.join(verdict.wrong)}")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for i, case in enumerate(faults.telemetry_cases(SHARED, seed)):
            kind = {".alog": "alog", ".json": "roastime"}.get(case.suffix, "sidecar")
            add(kind, case, _guarded(lambda: run_telemetry(tmp / f"t{i}", [case])))
            shutil.rmtree(tmp / f"t{i}", ignore_errors=True)
        baseline = command_baseline()
        rng = random.Random(seed)
        for i, case in enumerate(faults.jsonl_cases(rng)):
            add("commands jsonl", case, _guarded(lambda: run_commands(tmp / f"j{i}", [case], False, [], baseline)))
        for name, (fault_class, *_rest) in faults.SQLITE_ROW_FAULTS.items():
            only = {name: faults.SQLITE_ROW_FAULTS[name]}
            original, faults.SQLITE_ROW_FAULTS = faults.SQLITE_ROW_FAULTS, only
            try:
                verdict = _guarded(lambda: run_commands(tmp / f"s{name}", [], True, [], baseline))
            finally:
                faults.SQLITE_ROW_FAULTS = original
            add("commands sqlite", faults.Case(fault_class, name, faults.REJECT, ""), verdict)
        for case in faults.sqlite_file_cases(rng):
            add("commands sqlite", case, _guarded(lambda: run_commands(tmp / f"f{case.name}", [], False, [case], baseline)))

    lines = ["| input | fault class | cases | run failures | good rows lost (sessions / proposals) | bad admitted | error row/flag missing or wrong |",
             "|---|---|---:|---:|---:|---:|---:|"]
    totals = [0] * 5
    for (kind, fault_class), values in rows.items():
        lines.append(f"| {kind} | {fault_class} | " + " | ".join(map(str, values)) + " |")
        totals = [a + b for a, b in zip(totals, values)]
    lines.append("| **all** | | " + " | ".join(f"**{v}**" for v in totals) + " |")
    return "\n".join(lines) + "\n\n" + "\n".join(notes)


def _guarded(run) -> Verdict:
    try:
        return run()
    except Exception:  # the harness itself must finish the table
        return Verdict(run_failed=traceback.format_exc(limit=1).strip().splitlines()[-1])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=11)
    print(table(parser.parse_args().seed))
