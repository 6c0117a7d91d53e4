"""Build old-warehouse.duckdb with the code of an older checkout (run from that checkout's root):

    git worktree add /tmp/old-main 00ec389      # main as it was before schema migrations existed
    cd /tmp/old-main && python /path/to/tests/telemetry/data/make_old_warehouse.py old-warehouse.duckdb
    gzip -9 -n old-warehouse.duckdb     # committed as tests/telemetry/data/old-warehouse.duckdb.gz

It ingests constructed profiles (tests/telemetry/profiles.py of that checkout: one with DRY END
marked, one without, one in °F, one with a roasted weight missing) and one bundled sidecar
recording, with that checkout's ingest, into a fresh warehouse. tests/telemetry/test_migrations.py
opens a copy of the result with today's code.
"""
import sys
import tempfile
from pathlib import Path

import duckdb

sys.path.insert(0, str(Path.cwd()))
from daena_pipelines.telemetry import ingest  # noqa: E402  (the old checkout's)
from tests.telemetry.profiles import alog_bytes, profile  # noqa: E402

out = Path(sys.argv[1])
with tempfile.TemporaryDirectory() as tmp:
    landing = Path(tmp)
    base = profile()
    files = {
        "marked.alog": base,
        "no-dry-end.alog": profile(roastUUID="no-dry-end", timeindex=[base["timeindex"][0], 0, *base["timeindex"][2:]], phases=[100, 150, 190, 220]),
        "fahrenheit.alog": profile(mode="F", roastUUID="fahrenheit"),
        "no-roasted-weight.alog": profile(roastUUID="light", weight=[250.0, 0, "g"]),
    }
    for name, data in files.items():
        (landing / name).write_bytes(alog_bytes(data))
    sidecar = sorted(Path("assets/landing").glob("*.sidecar.jsonl"))[0]
    (landing / sidecar.name).write_bytes(sidecar.read_bytes())
    con = duckdb.connect(str(out))
    report = ingest.ingest(con, sorted(landing.iterdir()), landing / "quarantine", workers=1)
    con.execute("CHECKPOINT")
    con.close()
print(f"{out}: {len(report.loaded)} sessions, rejected {report.rejected}")
