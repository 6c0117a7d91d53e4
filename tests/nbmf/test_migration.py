"""nbmf migration 4 on a warehouse left at nbmf migration 3 with a run in it: the key of nbmf.results gains the
origin, the rows it had are kept and say that their origins were not recorded."""
import duckdb
import pytest

from daena_pipelines import migrations
from daena_pipelines.db import connect
from daena_pipelines.nbmf import runs

OLD_ROW = ("old-run", "session", "all", "nbmf_lossless", "ratio_total", 6.95, "x")


def _columns(con, table: str) -> list[tuple[str, str]]:
    return con.execute(f"SELECT column_name, column_type FROM (DESCRIBE {table})").fetchall()


def test_a_warehouse_at_nbmf_migration_3_keeps_its_results_labelled_unrecorded_and_takes_rows_per_origin(tmp_path, monkeypatch):
    path = tmp_path / "old.duckdb"
    with monkeypatch.context() as old_code:  # the nbmf schema as the code before migration 4 left it
        old_code.setitem(migrations.DOMAINS, "nbmf", ("daena_pipelines.nbmf.runs", 3))
        old_code.setattr(runs, "MIGRATIONS", runs.MIGRATIONS[:3])
        with duckdb.connect(str(path)) as con:
            migrations.migrate(con, ["nbmf"])
            con.execute("INSERT INTO nbmf.results VALUES (?, ?, ?, ?, ?, ?, ?)", list(OLD_ROW))
            con.execute("INSERT INTO nbmf.latency_samples VALUES ('old-run', 'session', 'small', 'nbmf_lossless', 'encode', 1234)")
            assert "origin" not in dict(_columns(con, "nbmf.results"))
    with connect(path) as con:  # today's code: migration 4 is due
        assert con.execute("SELECT max(version) FROM meta.schema_migrations WHERE domain = 'nbmf'").fetchone()[0] == 4
        assert con.execute("SELECT run_id, record_class, size_bucket, codec, metric, origin, value, unit FROM nbmf.results"
                           ).fetchall() == [(*OLD_ROW[:5], "unrecorded", *OLD_ROW[5:])]
        assert con.execute("SELECT origin, ns FROM nbmf.latency_samples").fetchall() == [("unrecorded", 1234)]
        # a run's per-origin rows and its pooled row of one metric side by side; the same key twice is still refused
        con.execute("INSERT INTO nbmf.results VALUES ('new-run', 'session', 'all', 'nbmf_lossless', 'ratio_total', 'reference', 6.87, 'x'),"
                    " ('new-run', 'session', 'all', 'nbmf_lossless', 'ratio_total', 'reference+simulator', 7.03, 'x')")
        with pytest.raises(duckdb.ConstraintException):
            con.execute("INSERT INTO nbmf.results VALUES ('new-run', 'session', 'all', 'nbmf_lossless', 'ratio_total', 'reference', 1.0, 'x')")
        migrated = {t: _columns(con, t) for t in ("nbmf.results", "nbmf.latency_samples")}
        comment = con.execute("SELECT comment FROM duckdb_columns() WHERE table_name = 'results' AND column_name = 'origin'").fetchone()[0]
        assert "unrecorded: a run from before nbmf migration 4" in comment
    with connect(tmp_path / "new.duckdb") as con:  # the same tables as a new warehouse gets
        assert migrated == {t: _columns(con, t) for t in migrated}
