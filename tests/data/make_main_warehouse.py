"""Build main-warehouse.duckdb with the code of an older checkout (run from that checkout's root):

    git worktree add /tmp/old-main 26f2521      # main before the regressions, nbmf and evals schema
                                                # histories became migrations only (migration ledger:
                                                # evals 2, nbmf 1, regressions 4, device 3)
    cd /tmp/old-main && python /path/to/tests/data/make_main_warehouse.py main-warehouse.duckdb
    gzip -9 -n main-warehouse.duckdb            # committed as tests/data/main-warehouse.duckdb.gz

That checkout's first connection applies its migrations; then its own code writes a row or two in
each domain whose schema history changed after it: the timing gate's history and verdicts (tables
it created at run time), an NBMF run (reference_records, which its nbmf migration 1 added), golden
cases and an eval row (fc_crash_pass, which its evals migration 1 added), a judge score (the
judge's added columns), and an approved command for the sidecar. tests/test_migrations.py opens
a copy with today's code.
"""
import datetime as dt
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path.cwd()))
from daena_pipelines.db import connect  # noqa: E402  (the old checkout's)
from daena_pipelines.evals import golden, tables  # noqa: E402
from daena_pipelines.regressions import history  # noqa: E402

out = Path(sys.argv[1])
at = dt.datetime(2026, 12, 1, 12, tzinfo=dt.timezone.utc)
with tempfile.TemporaryDirectory() as tmp, connect(out) as con:
    history.record_samples(con, "20261201T120000000000Z-aaaaaa", "nbmf", [("k", "cpu", i, 1.0 + i / 100) for i in range(5)], at)
    run_id, outcomes = history.gate_latest(con, "nbmf", folder=Path(tmp))
    con.execute("INSERT INTO nbmf.runs (run_id, started_at, corpus_records, reference_records, test_records) "
                "VALUES ('20261201T120000000000Z-aaaaaa', ?, 40, 12, 30)", [at])
    loaded, errors = golden.load_cases(Path("golden/cases"))
    tables.write_golden_cases(con, loaded, errors)
    row = {c: None for c in tables.EVAL_RUN_COLUMNS} | {
        "partition_date": at.date(), "session_id": "old-session", "case_id": loaded[0].case.case_id, "outcome": "PASS",
        "fc_crash_pass": True, "session_source": "simulator", "evaluated_at": at}
    tables.replace_partitions(con, "evals.eval_runs", at.date(), at.date(), tables.EVAL_RUN_COLUMNS, [list(row.values())])
    con.execute("INSERT INTO evals.judge_scores (partition_date, session_id, case_id, sample_index, status, source, endpoint, "
                "model, prompt_version, plan_clarity, judged_at) VALUES (?, 'old-session', ?, 0, 'judged', 'simulator', "
                "'messages', 'old-model', 'v1', 80, ?)", [at.date(), loaded[0].case.case_id, at])
    con.execute("INSERT INTO device.command_queue (proposal_id, machine_id, roaster_serial, command_type, target_value, "
                "target_unit, status, approved_at, source) VALUES ('old-approval', 'r1', '4242', 'SET_FAN', 3, 'level', "
                "'APPROVED', ?, 'test')", [at])
    con.execute("CHECKPOINT")
print(f"{out}: gate {run_id} {[o.passed for o in outcomes]}, {len(loaded)} golden cases")
