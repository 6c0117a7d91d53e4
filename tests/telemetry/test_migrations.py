"""An old warehouse file (made by main before schema migrations existed, see data/make_old_warehouse.py)
opens with today's code, migrates on first connection and gets the new metrics for its old sessions."""
import gzip
import json
import shutil
from pathlib import Path

import duckdb
import numpy as np
import pytest

from daena_pipelines import migrations
from daena_pipelines.db import connect
from daena_pipelines.telemetry import ingest, recompute
from daena_pipelines.telemetry.metrics import METRICS_VERSION
from daena_pipelines.telemetry.contract import METRIC_COLUMNS_BY_VERSION
from tests.telemetry.profiles import alog_bytes, profile

OLD_WAREHOUSE = Path(__file__).parent / "data" / "old-warehouse.duckdb.gz"


@pytest.fixture
def old_warehouse(tmp_path):
    path = tmp_path / "old.duckdb"
    with gzip.open(OLD_WAREHOUSE) as src, open(path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    return path


def _columns(con, table):
    schema, name = table.split(".")
    return {r[0] for r in con.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = ? AND table_name = ?", [schema, name]).fetchall()}


def test_old_warehouse_migrates_on_first_connection_and_old_sessions_get_the_new_metrics(old_warehouse, tmp_path):
    with duckdb.connect(str(old_warehouse), read_only=True) as con:  # as main left it
        assert not METRIC_COLUMNS_BY_VERSION[2].keys() & _columns(con, "telemetry.roast_metrics")
        before = {r[0]: r[1:] for r in con.execute(
            "SELECT session_id, tp_s, fcs_s, drop_s, auc_c_min, artisan_drop_s, dry_end_s FROM telemetry.roast_metrics").fetchall()}
        points_before = con.execute("SELECT count(*) FROM telemetry.points").fetchone()[0]
        extra_before = con.execute("SELECT session_id, t_s, extra FROM telemetry.points ORDER BY ALL").fetchall()
    assert len(before) == 5
    assert sum(1 for *_k, extra in extra_before if extra) == 1297  # the sidecar recording's samples carry 4 channels

    with connect(old_warehouse) as con:  # first connection with today's code
        ledger = con.execute("SELECT domain, version FROM meta.schema_migrations ORDER BY ALL").fetchall()
        assert ("telemetry", 1) in ledger and ("telemetry", 2) in ledger
        # migrations 3-5: the extra map became names per session and a list of values per sample,
        # and the view points_with_extra gives every sample its map back
        assert "extra" not in _columns(con, "telemetry.points")
        assert con.execute("SELECT session_id, t_s, extra FROM telemetry.points_with_extra ORDER BY ALL").fetchall() == extra_before
        assert {d for d, _v in ledger} == set(migrations.DOMAINS)
        assert METRIC_COLUMNS_BY_VERSION[2].keys() <= _columns(con, "telemetry.roast_metrics")
        assert recompute.stale_session_ids(con) == sorted(before)

        assert recompute.recompute_metrics(con) == 5
        rows = {r[0]: r[1:] for r in con.execute(
            f"""SELECT session_id, tp_s, fcs_s, drop_s, auc_c_min, artisan_drop_s, dry_end_s, metrics_version, met_c,
                       total_ror_c_per_min, finish_phase_delta_c, finish_phase_auc_c_min, dry_phase_ror_c_per_min
                FROM telemetry.roast_metrics""").fetchall()}
        assert set(rows) == set(before)
        for sid, old in before.items():
            new = rows[sid]
            assert new[:6] == pytest.approx(old, nan_ok=True)  # unchanged definitions give the same values
            assert new[6] == METRICS_VERSION
            assert all(v is not None for v in new[7:11]), (sid, new)  # the new metrics, from the stored points
            # an old session's settings hold no dry-end threshold: only a marked DRY END ends drying
            assert (new[11] is None) == (old[5] is None), (sid, new)
        assert sum(old[5] is None for old in before.values()) == 1
        assert con.execute("SELECT count(*) FROM telemetry.points").fetchone()[0] == points_before
        assert recompute.recompute_metrics(con) == 0  # nothing left to do

        # the old warehouse takes new files without a Binder Error, and knows the old ones
        new_file = tmp_path / "new.alog"
        new_file.write_bytes(alog_bytes(profile(roastUUID="after-migration")))
        report = ingest.ingest(con, [new_file], tmp_path / "q", workers=1)
        assert len(report.loaded) == 1
        assert con.execute("SELECT metrics_version, dry_end_inferred FROM telemetry.roast_metrics WHERE session_id = ?",
                           [report.loaded[0]]).fetchone() == (METRICS_VERSION, False)

    with connect(old_warehouse) as con:  # later connections find nothing to do
        assert migrations.migrate(con) == []


def test_the_recompute_is_a_dagster_step_that_reports_its_count(old_warehouse):
    import dagster as dg

    from daena_pipelines.defs.telemetry.assets import telemetry_metrics_recompute
    from daena_pipelines.lib.warehouse import WarehouseResource

    resources = {"duckdb": WarehouseResource(database=str(old_warehouse))}
    counts = []
    for _run in range(2):
        result = dg.materialize([telemetry_metrics_recompute], resources=resources)
        assert result.success
        (materialization,) = result.asset_materializations_for_node("telemetry__metrics_recompute")
        counts.append(materialization.metadata["sessions_recomputed"].value)
    assert counts == [5, 0]


def test_recompute_reads_missing_file_settings_back_from_the_unchanged_source_file(tmp_path):
    base = profile()
    charge = base["timeindex"][0]
    # the CHARGE labels around ET's reading, in time order: ET/BT exchanged, then reopened (alog)
    labels = [[0, base["timex"][charge], base["temp1"][charge] + 20, base["timex"][charge], base["temp1"][charge] - 20]]
    no_dry_end = {"timeindex": [charge, 0, *base["timeindex"][2:]], "phases": [100, 150, 190, 220],
                  "version": "3.4.0", "computed": {"AUC": 300, "AUCbegin": "TP", "AUCbase": 100}, "anno_positions": labels}
    paths = {name: tmp_path / f"{name}.alog" for name in ("kept", "changed", "gone")}
    for name, path in paths.items():
        path.write_bytes(alog_bytes(profile(roastUUID=name, **no_dry_end)))
    with connect(tmp_path / "w.duckdb") as con:
        ingest.ingest(con, list(paths.values()), tmp_path / "q", workers=1)
        query = """SELECT s.source_path, m.dry_end_s, m.dry_end_inferred, s.settings->>'dry_end_threshold_c',
                   s.settings->>'live_tp_fallback_s', s.settings->>'live_tp_curve'
                   FROM telemetry.roast_metrics m JOIN telemetry.sessions s USING (session_id)"""
        fresh = {Path(r[0]).stem: r[1:] for r in con.execute(query).fetchall()}
        assert fresh["kept"][0] is not None and fresh["kept"][1:] == (True, "150.0", "120.0", "none")
        # as a warehouse of schema version 1 stored them: no threshold or fallback time kept, older metrics
        for sid, settings in con.execute("SELECT session_id, settings FROM telemetry.sessions").fetchall():
            old = {k: v for k, v in json.loads(settings).items() if k not in recompute.FROM_FILE}
            con.execute("UPDATE telemetry.sessions SET settings = ?::JSON WHERE session_id = ?", [json.dumps(old), sid])
        con.execute("UPDATE telemetry.roast_metrics SET metrics_version = NULL, dry_end_s = NULL, dry_end_inferred = NULL")
        paths["changed"].write_bytes(alog_bytes(profile(roastUUID="changed", **{**no_dry_end, "phases": [100, 120, 190, 220]})))
        paths["gone"].unlink()

        assert recompute.recompute_metrics(con) == 3
        after = {Path(r[0]).stem: r[1:] for r in con.execute(query).fetchall()}
        assert after["kept"] == fresh["kept"]  # read back from the file, and kept in the settings
        # another content at the path, or no file: no threshold, so no inferred DRY END
        assert after["changed"] == after["gone"] == (None, None, None, None, None)
        assert recompute.recompute_metrics(con) == 0


def test_recompute_replaces_file_settings_read_under_an_older_rule(tmp_path):
    # a session stored by metrics version 5 from an Artisan 1.4 file kept the 150-s live TP
    # fallback, which that version's recognition did not have; its unchanged file now says so
    path = tmp_path / "old.alog"
    path.write_bytes(alog_bytes(profile(version="1.4.0", computed={"AUC": 300, "AUCbegin": "TP", "AUCbase": 100})))
    with connect(tmp_path / "w.duckdb") as con:
        ingest.ingest(con, [path], tmp_path / "q", workers=1)
        query = "SELECT settings->>'live_tp_fallback_s', settings->>'auc_begin' FROM telemetry.sessions"
        assert con.execute(query).fetchall() == [(None, "TP")]
        con.execute("""UPDATE telemetry.sessions SET settings = json_merge_patch(settings, '{"live_tp_fallback_s": 150.0}')""")
        con.execute("UPDATE telemetry.roast_metrics SET metrics_version = 5")
        assert con.execute(query).fetchall() == [("150.0", "TP")]
        assert recompute.recompute_metrics(con) == 1
        assert con.execute(query).fetchall() == [(None, "TP")]


def test_a_warehouse_whose_samples_differ_in_extra_channels_is_refused_and_left_as_it_was(old_warehouse):
    # migration 3 keeps one list of channel names per session: a session whose samples carry
    # other channels than its first one would lose values, so nothing of migration 3 may commit
    with duckdb.connect(str(old_warehouse)) as con:
        con.execute("""UPDATE telemetry.points SET extra = map_from_entries([('other', 1.0)])
                       WHERE (session_id, t_s) = (SELECT (session_id, max(t_s)) FROM telemetry.points
                                                  WHERE cardinality(extra) > 0 GROUP BY session_id)""")
        maps_before = con.execute("SELECT session_id, t_s, extra FROM telemetry.points ORDER BY ALL").fetchall()
    with pytest.raises(RuntimeError, match="telemetry migration 3: 1 points carry other extra channels"):
        with connect(old_warehouse):
            pass
    with duckdb.connect(str(old_warehouse)) as con:
        assert con.execute("SELECT max(version) FROM meta.schema_migrations WHERE domain = 'telemetry'").fetchone()[0] == 2
        assert "extra_values" not in _columns(con, "telemetry.points") and "extra_channels" not in _columns(con, "telemetry.sessions")
        assert con.execute("SELECT session_id, t_s, extra FROM telemetry.points ORDER BY ALL").fetchall() == maps_before


def test_a_json_export_with_infinite_artisan_values_recomputes_to_what_it_ingested(tmp_path):
    """Python's json (Artisan's JSON export) writes NaN and Infinity. An infinite AUCbase became the
    setting auc_base_c, stored as null (JSON holds neither): the recompute then failed on every
    stale session (TypeError: float() of None). An infinite dry-end threshold is refused by key.
    Hand-made profiles (tests/telemetry/profiles.py)."""
    inf = float("inf")
    data = profile(version="4.0.2", computed={"AUC": 300, "AUCbegin": "TP", "AUCbase": inf, "det": float("nan")})
    (tmp_path / "export.json").write_text(json.dumps(data))
    (tmp_path / "phases.json").write_text(json.dumps({**data, "phases": [100, inf, 190, 220], "roastUUID": "p"}))
    with connect(tmp_path / "w.duckdb") as con:
        report = ingest.ingest(con, sorted(tmp_path.glob("*.json")), tmp_path / "q", workers=1)
        assert report.rejected == [(str(tmp_path / "phases.json"), "bad_value", "'phases'[1]=inf is not a finite number")]
        fresh = con.execute("SELECT * FROM telemetry.roast_metrics").fetchall()
        assert len(fresh) == 1
        con.execute("UPDATE telemetry.roast_metrics SET metrics_version = 6")
        (tmp_path / "export.json").unlink()
        assert recompute.recompute_metrics(con) == 1  # before: TypeError
        (after,) = con.execute("SELECT * FROM telemetry.roast_metrics").fetchall()
        # (the recompute's clock counts from CHARGE: sums may differ in the last bit)
        assert [pytest.approx(v, rel=1e-12) if isinstance(v, float) else v for v in after] == list(fresh[0])


def test_recompute_begins_a_stored_hot_turning_points_auc_at_the_live_tp_fallback(tmp_path):
    """Metrics version 10: a TP above Artisan's live ceiling (150 °C) is never accepted while
    recording, so the AUC begins at the fallback (docs/telemetry.md, "Why AUC from TP
    disagrees"). A session stored by version 9 began it at the profile's TP; the recompute needs
    no file for it (the fallback time is in the stored settings). Hand-made profile
    (tests/telemetry/profiles.py) with a hot drum's curve: BT 200 °C at CHARGE (20 s), a TP of
    160 °C 40 s later, then +0.25 °C/s."""
    from daena_pipelines.telemetry import metrics

    t = np.asarray(profile()["timex"])
    since = np.clip(t - 20.0, 0.0, None)
    bt = np.where(since < 40, 200.0 - since, 160.0 + 0.25 * (since - 40.0))
    path = tmp_path / "hot.alog"
    path.write_bytes(alog_bytes(profile(temp2=[round(float(x), 2) for x in bt], version="2.6.0",
                                        computed={"AUC": 900, "AUCbegin": "TP", "AUCbase": 100})))
    with connect(tmp_path / "w.duckdb") as con:
        ingest.ingest(con, [path], tmp_path / "q", workers=1)
        query = "SELECT tp_s, auc_c_min, metrics_version FROM telemetry.roast_metrics"
        ((tp_s, fresh, version),) = con.execute(query).fetchall()
        running = metrics.auc_running(t - 20.0, bt, 100.0)
        drop = profile()["timeindex"][6]
        fallback = int(np.searchsorted(since, 150.0, side="right"))  # the first sample more than 150 s after CHARGE
        assert (tp_s, version) == (40.0, metrics.METRICS_VERSION)
        assert fresh == pytest.approx(metrics.auc_span(running, fallback, drop))
        # as version 9 stored it: begun at the profile's TP
        from_tp = metrics.auc_span(running, 10 + 20, drop)
        con.execute("UPDATE telemetry.roast_metrics SET metrics_version = 9, auc_c_min = ?", [from_tp])
        path.unlink()
        assert recompute.recompute_metrics(con) == 1
        assert con.execute(query).fetchall() == [(40.0, pytest.approx(fresh), metrics.METRICS_VERSION)]
        assert fresh < from_tp - 50
