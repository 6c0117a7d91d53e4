"""scripts/artisan_auc_begin.py: the replay of Artisan's live TP recognition, on hand-made BT
curves (not real profiles) whose answers follow from Artisan's rules by hand
(docs/telemetry.md, "Why AUC from TP disagrees")."""
import importlib.util
from pathlib import Path

_SPEC = importlib.util.spec_from_file_location(
    "artisan_auc_begin", Path(__file__).resolve().parents[2] / "scripts" / "artisan_auc_begin.py"
)
script = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(script)

TIMEX = [float(i) for i in range(200)]  # one sample a second, CHARGE at sample 10


def _curve(low: float, low_at: int = 70) -> list[float]:
    """200 °C until CHARGE (10), falling linearly to `low` at `low_at`, then rising 0.5 °C/s."""
    bt = []
    for i in range(200):
        if i <= 10:
            bt.append(200.0)
        elif i <= low_at:
            bt.append(200.0 - (200.0 - low) * (i - 10) / (low_at - 10))
        else:
            bt.append(low + 0.5 * (i - low_at))
    return bt


def test_recognised_four_samples_after_the_lowest_reading() -> None:
    # the rise check needs the reading four samples back to be the lowest of the five
    assert script.recognised_tp(TIMEX, _curve(95.0), 10, None, "C") == (74, 70)


def test_a_lowest_reading_outside_the_plausible_range_is_never_accepted() -> None:
    assert script.recognised_tp(TIMEX, _curve(40.0), 10, None, "C") is None  # 50-150 °C
    assert script.recognised_tp(TIMEX, _curve(95.0), 10, None, "F") is None  # 100-300 °F
    assert script.recognised_tp(TIMEX, _curve(103.0), 10, None, "F") == (74, 70)


def test_no_recognition_once_dry_end_is_marked() -> None:
    assert script.recognised_tp(TIMEX, _curve(95.0), 10, 60, "C") is None


def test_an_early_bump_makes_the_falling_reading_the_tp() -> None:
    # BT rises 21-26 s after CHARGE, then falls on: the rise check stays met, so from then on the
    # lowest reading so far (the current one) is accepted as soon as it is below 150 °C
    bt = [200.0] * 11 + [199.0 - i for i in range(20)] + [181.0 + i for i in range(6)] + [185.0 - 2 * i for i in range(163)]
    assert script.recognised_tp(TIMEX, bt, 10, None, "C") == (55, 55)  # 149 °C; 151 °C at 54


def test_a_begin_at_charge_itself_is_listed(tmp_path, monkeypatch, capsys) -> None:
    """A live TP can be CHARGE itself (BT rising right after CHARGE: the lowest reading since
    CHARGE is CHARGE's); the begins that reproduce Artisan's AUC include it. Hand-made profile
    (tests/telemetry/profiles.py): CHARGE at sample 10 (20 s), BT 140 °C rising to 155 °C 30 s
    later, falling to the profile's TP of 100 °C at 120 s, then +0.3 °C/s; saved after being
    reopened (`flavors_total_correction` 0.0), so our AUC begins at the profile's TP."""
    import numpy as np

    from daena_pipelines.telemetry import metrics
    from tests.telemetry.profiles import alog_bytes, profile

    t = np.asarray(profile()["timex"])
    since = np.clip(t - 20.0, 0.0, None)
    bt = np.interp(since, [0, 30, 120, 700], [140.0, 155.0, 100.0, 274.0])
    drop = profile()["timeindex"][6]
    theirs = round(metrics.auc_span(metrics.auc_running(t, bt, 100.0), 10, drop))
    (tmp_path / "charge.alog").write_bytes(alog_bytes(profile(
        temp2=[round(float(x), 2) for x in bt], version="4.0.2", flavors_total_correction=0.0,
        computed={"AUC": theirs, "AUCbegin": "TP", "AUCbase": 100})))
    monkeypatch.setattr("sys.argv", ["artisan_auc_begin.py", str(tmp_path)])
    assert script.main() == 0
    out = capsys.readouterr().out
    assert f"Artisan {theirs}" in out and "recognition TP 0 s" in out
    assert "reproducing begins 0 s " in out  # before: "none"
