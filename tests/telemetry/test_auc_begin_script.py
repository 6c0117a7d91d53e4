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
