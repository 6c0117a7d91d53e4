"""The whole shared folder of real Artisan profiles, against Artisan's own `computed` values."""
import ast
from pathlib import Path

import duckdb
import numpy as np
import pytest

from daena_pipelines.telemetry import ingest, quality
from daena_pipelines.telemetry.metrics import dry_end


@pytest.fixture(scope="module")
def real_warehouse(tmp_path_factory):
    from tests.conftest import require_artisan_dir

    artisan_dir = require_artisan_dir()
    tmp = tmp_path_factory.mktemp("real")
    con = duckdb.connect(str(tmp / "w.duckdb"))
    roasts, others = ingest.discover(artisan_dir)
    report = ingest.ingest(con, roasts, tmp / "quarantine", workers=1)
    yield con, report, roasts, tmp
    con.close()


def _shift_to_recording_zero(profile: dict) -> dict:
    """The same roast with its CHARGE mark removed, and the `computed` block Artisan gives such a
    profile: times count from the recording's zero (as the collection's own CHARGE-less files
    show: TP_time = timex[TP]), and values that depend on where CHARGE was are not written."""
    charge_t = profile["timex"][profile["timeindex"][0]]
    computed = dict(profile["computed"])
    for key in [k for k in computed if k.endswith("_time") or k in ("totaltime", "dryphasetime")]:
        if isinstance(computed[key], (int, float)):
            computed[key] = computed[key] + charge_t
    for key in ("CHARGE_BT", "CHARGE_ET", "dry_phase_AUC"):
        computed.pop(key, None)
    return dict(profile, timeindex=[-1, *profile["timeindex"][1:]], computed=computed)


def _without_dry_end(profile: dict) -> dict:
    """The same roast with its DRY END mark removed, and the `computed` block Artisan >= 2.4.4
    writes for it (read in its computedProfileInformation): no DRY time/BT and no dry or Maillard
    phase RoR or rise; the phase AUCs it still writes are bounded by the unset mark (the dry
    phase runs CHARGE to DROP, i.e. `total_ts_BT`; the Maillard phase from the AUC begin to FCs).
    Phase times come from the threshold rule, which lands on the marked sample in these copies."""
    index, computed = profile["timeindex"], dict(profile["computed"])
    for key in ("DRY_time", "DRY_BT", "DRY_ET", "dry_phase_ror", "mid_phase_ror", "dry_phase_delta_temp", "mid_phase_delta_temp"):
        computed.pop(key, None)
    computed["dry_phase_AUC"] = computed.get("total_ts_BT", 0)
    computed["mid_phase_AUC"] = computed.get("AUC", 0) - computed.get("finish_phase_AUC", 0)
    return dict(profile, timeindex=[index[0], 0, *index[2:]], computed=computed)


@pytest.fixture(scope="module")
def altered_warehouse(real_warehouse):
    """Altered copies of shared profiles (in a temp folder), ingested beside the originals:
    - without CHARGE: profiles whose beans before CHARGE never read below the turning point
      (so the turning point is the same sample with or without the mark);
    - without DRY END: profiles whose marked DRY END is the sample Artisan's rule for an
      unmarked DRY END picks (closest to the threshold in their `phases` list), with the
      computed block Artisan writes for such a profile (`_without_dry_end`);
    - in °F: the whole profile and its computed block converted (AUC stays °C·min)."""
    con, _report, roasts, tmp = real_warehouse
    folder = tmp / "altered"
    folder.mkdir()
    copies = {"no_charge": 0, "no_dry_end": 0, "fahrenheit": 0}
    duplicates = {p for (p,) in con.execute("SELECT source_path FROM telemetry.source_files WHERE status = 'duplicate'").fetchall()}
    for path in (p for p in roasts if str(p) not in duplicates):
        profile = ast.literal_eval(path.read_text(encoding="utf-8"))
        computed, index = profile.get("computed") or {}, profile.get("timeindex") or [-1]
        tp = computed.get("TP_idx")
        if index[0] <= 0 or not tp or not index[6]:
            continue
        bt = profile["temp2"]
        if min(bt[: index[0]]) > computed["TP_BT"] and copies["no_charge"] < 8:
            (folder / f"nocharge-{path.name}").write_text(repr(_shift_to_recording_zero(profile)), encoding="utf-8")
            copies["no_charge"] += 1
        marked = {"CHARGE": index[0], **{name: index[i] for name, i in (("FCs", 2), ("DROP", 6)) if index[i] > 0}}
        if index[1] and dry_end(np.array(bt, dtype=float), marked, tp, profile["phases"][1])[0] == index[1]:
            (folder / f"nodryend-{path.name}").write_text(repr(_without_dry_end(profile)), encoding="utf-8")
            copies["no_dry_end"] += 1
        if copies["fahrenheit"] < 8:
            (folder / f"fahrenheit-{path.name}").write_text(repr(_to_fahrenheit(profile)), encoding="utf-8")
            copies["fahrenheit"] += 1
    assert all(n >= 5 for n in copies.values()), copies
    # a warehouse of their own: a °F copy holds the same measurements as its original
    altered = duckdb.connect(str(tmp / "altered.duckdb"))
    report = ingest.ingest(altered, sorted(folder.iterdir()), tmp / "quarantine", workers=1)
    assert not report.rejected and not report.duplicates, (report.rejected, report.duplicates)
    yield altered, copies
    altered.close()


def test_every_file_agrees_with_artisan_on_every_value_it_carries(real_warehouse, altered_warehouse):
    """Per file (the shared profiles and the altered copies): every value Artisan's computed
    block carries (times, phase times, DTR, BT at CHARGE/TP/DRY/FCs/FCe/DROP, MET, phase and
    total RoR, phase rises, total and phase AUC, weight loss) within quality.ARTISAN_TOLERANCES."""
    altered, copies = altered_warehouse
    con = real_warehouse[0]
    files = [f for c in (con, altered) for f in quality.artisan_file_agreement(c) if f["compared"]]
    agreeing = [f for f in files if f["agreeing"] == f["compared"]]
    failing = [(Path(f["source_path"]).name, f["disagreeing"]) for f in files if f not in agreeing]
    assert len(files) == 66 + sum(copies.values())  # no shared profile or copy silently left out of the comparison
    assert not failing, failing  # every file: the shared ones and their altered copies all agree (docs/telemetry.md)
    # among the agreeing files: profiles without CHARGE (real and altered), without DRY END, and in °F
    assert sum(1 for f in agreeing if f["charge_inferred"]) >= 4 + copies["no_charge"]
    assert sum(1 for f in agreeing if f["dry_end_inferred"]) >= copies["no_dry_end"]
    assert sum(1 for f in agreeing if f["original_unit"] == "F") >= copies["fahrenheit"]
    # Artisan's phase AUCs of a profile without DRY END span other phases: not kept, not compared
    assert altered.execute("""SELECT count(*), count(artisan_dry_phase_auc_c_min), count(artisan_mid_phase_auc_c_min),
                                     count(artisan_drying_s) FROM telemetry.roast_metrics WHERE dry_end_inferred""").fetchone() == (
        copies["no_dry_end"], 0, 0, copies["no_dry_end"])
    per_metric = {r["metric"]: r for r in quality.artisan_agreement(altered)}
    assert len(per_metric) == len(quality.ARTISAN_TOLERANCES)  # every listed value is compared somewhere





def test_every_file_ingests_or_is_rejected_with_a_reason(real_warehouse):
    con, report, roasts, tmp = real_warehouse
    statuses = dict(con.execute("SELECT source_path, status FROM telemetry.source_files").fetchall())
    assert set(statuses) == {str(p) for p in roasts}  # nothing silently dropped
    errors = con.execute("SELECT source_path, error_kind, message, quarantined_path FROM telemetry.ingest_errors").fetchall()
    assert {e[0] for e in errors} == {p for p, s in statuses.items() if s == "rejected"}
    for path, kind, message, quarantined in errors:
        assert kind and len(message) > 10
        assert Path(quarantined).read_bytes() == Path(path).read_bytes()
        assert kind in Path(quarantined + ".reason.txt").read_text()
    assert len(report.loaded) >= 60


def test_the_duplicate_copies_are_recognised(real_warehouse):
    con, *_ = real_warehouse
    duplicates = dict(con.execute("SELECT source_path, detail FROM telemetry.source_files WHERE status = 'duplicate'").fetchall())
    names = {Path(p).name for p in duplicates}
    # dupe-coffee_* and roast_25-08-17_1612 hold the same roast and carry as much: the one that sorts second is the duplicate
    assert "roast_25-08-17_1612.alog" in names
    assert all("same roast" in d or "identical bytes" in d for d in duplicates.values())
    sessions = con.execute("SELECT count(*), count(DISTINCT session_id) FROM telemetry.sessions").fetchone()
    assert sessions[0] == sessions[1]


def test_reingesting_changes_nothing(real_warehouse):
    con, _report, roasts, tmp = real_warehouse
    before = con.execute("SELECT count(*) FROM telemetry.points").fetchone()[0]
    again = ingest.ingest(con, roasts, tmp / "quarantine", workers=1)
    assert again.loaded == [] and again.rejected == [] and again.unchanged == len(roasts)
    assert con.execute("SELECT count(*) FROM telemetry.points").fetchone()[0] == before


def _to_fahrenheit(profile: dict) -> dict:
    """The same roast as Artisan would have saved it in °F (AUC values stay °C·min, as Artisan's do)."""
    from daena_pipelines.telemetry.alog import _COMPUTED_DELTAS, _COMPUTED_TEMPS

    def f(x):
        return x if x == -1 else round(x * 9 / 5 + 32, 4)

    converted = dict(profile, mode="F", temp1=[f(x) for x in profile["temp1"]], temp2=[f(x) for x in profile["temp2"]])
    def computed(key, value):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return value
        return f(value) if key in _COMPUTED_TEMPS else value * 9 / 5 if key in _COMPUTED_DELTAS else value

    converted["computed"] = {k: computed(k, v) for k, v in profile["computed"].items()}
    return converted


def test_fahrenheit_copies_of_real_profiles_give_the_same_metrics(artisan_dir):
    import ast

    import numpy as np

    from daena_pipelines.telemetry.ingest import session_rows
    from daena_pipelines.telemetry.alog import profile_to_session

    names = ["roast_25-10-04_1600.alog", "roast_25-09-21_1408.alog", "roast_26-08-09_R68_caturra_26.alog"]
    for name in names:
        profile = ast.literal_eval((artisan_dir / name).read_text(encoding="utf-8"))
        celsius = session_rows(profile_to_session(profile), name, "c", None).metrics
        fahrenheit = session_rows(profile_to_session(_to_fahrenheit(profile)), name, "f", None).metrics
        for column, value in celsius.items():
            if isinstance(value, float):
                assert np.isclose(fahrenheit[column], value, atol=0.02, rtol=1e-4), (name, column, value, fahrenheit[column])
            else:
                assert fahrenheit[column] == value, (name, column)
