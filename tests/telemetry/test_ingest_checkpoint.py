"""The ingest's closing CHECKPOINT of a DuckDB file (`ingest._checkpoint_file`): it writes the
WAL into the file when it can, and never fails a run whose batches are committed."""
from pathlib import Path

import duckdb

from daena_pipelines.telemetry import ingest
from tests.telemetry.profiles import alog_bytes, profile


def test_the_ingest_checkpoints_its_file(tmp_path):
    (tmp_path / "a.alog").write_bytes(alog_bytes(profile(roastUUID="x")))
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        ingest.ingest(con, [tmp_path / "a.alog"], tmp_path / "q", workers=1)
        wal = tmp_path / "w.duckdb.wal"
        assert not wal.exists() or wal.stat().st_size == 0  # written into the file, not left to the close


def test_another_open_transaction_does_not_fail_an_ingest_that_committed(tmp_path):
    # a second connection of the same process (one database instance) in a write transaction:
    # DuckDB refuses CHECKPOINT then ("there are other write transactions active")
    (tmp_path / "a.alog").write_bytes(alog_bytes(profile(roastUUID="x")))
    warehouse = str(tmp_path / "w.duckdb")
    with duckdb.connect(warehouse) as con, duckdb.connect(warehouse) as other:
        other.execute("CREATE TABLE t (i INTEGER)")
        other.execute("BEGIN")
        other.execute("INSERT INTO t VALUES (1)")
        report = ingest.ingest(con, [tmp_path / "a.alog"], tmp_path / "q", workers=1)  # before: TransactionException
        other.execute("COMMIT")
        assert len(report.loaded) == 1
        assert con.execute("SELECT count(*) FROM telemetry.sessions").fetchone() == (1,)
    with duckdb.connect(warehouse) as con:  # and it is all in the file after the close
        assert con.execute("SELECT count(*), (SELECT count(*) FROM t) FROM telemetry.sessions").fetchone() == (1, 1)
