"""The timing gate: is this run's codec slower than its own history? (docs/regressions.md)

Input per key (e.g. ``command/nbmf_lossless/encode`` on the ``cpu`` or ``wall`` clock): the new
run's samples (one per record: the codec's fastest time divided by the reference codec's, measured
interleaved in the same run) and the samples of earlier accepted runs, oldest first.

Two tests, either one flags a regression:
- **window**: the new samples against the pooled samples of the last ``window`` accepted runs,
  one-sided Mann-Whitney U (new larger) with p < ``alpha``, AND median growth above the key's
  threshold: ``min_ratio``, or wider where this key's runs scatter more (a one-sided Student's
  t prediction bound, as Bencher's t-test thresholds: exp(t(1 - 1 %, n - 1) x standard
  deviation of the log medians of the last ``history`` accepted runs x sqrt(1 + 1/n)), once
  ``spread_runs`` runs exist; the spread is estimated over more runs than the U test's window
  because a standard deviation of 10 values is itself uncertain by ~25 % and t(9) is 15 % above
  t(29): with 30 runs the bound is as sure (1 % one-sided) and lower). Samples within a run are not independent
  of that run's machine load, so the U test alone would flag harmless run-to-run scatter; the
  threshold is what keeps false alarms per key near 1 %.
- **step**: the per-run medians of up to ``history`` accepted runs plus the new run, split at
  the one point that most reduces the summed absolute deviation from each side's median
  (an L1 step fit, as asv does with its penalised piecewise-constant fit); flagged when the
  later side holds the new run and at least ``step_min_runs`` runs, its median is more than
  ``min_ratio`` times the earlier side's, and the split reduces the deviation by more than
  ``step_gain`` robust noise units. This catches a slowdown that crept in below the window
  test's floor run by run, and that the window has absorbed.

Only runs the gate judged and passed (or that were accepted) form the baseline, so a slow
run never raises the bar for the next one, nor does a run whose gate crashed (no verdict; it
may have timed a broken build). An accepted run is a new level: the baseline starts at it
(``history.gate_run``). A recovery run is never "slower": the tests are one-sided. With fewer than ``min_runs`` accepted runs (a fresh clone without the history
artifact) the run is recorded and passes here, saying ``no_history``; the blocking golden check
still holds each key's median ratio to the promoted one within x1.5 (``at_most_factor``), so a
fresh clone is gated too, only more loosely (another machine's ratios).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from daena_pipelines.regressions.stats import mann_whitney_greater

REGRESSION, OK, NO_HISTORY = "regression", "ok", "no_history"
ACCEPTED = "accepted"  # a flagged run someone decided to keep (history.accept): its key's baseline starts there


@dataclass(frozen=True)
class GateRule:
    """Thresholds of the decision rule (module docstring); their measured power: docs/regressions.md."""

    window: int = 10
    min_runs: int = 3
    alpha: float = 0.01
    min_ratio: float = 1.10
    z: float = 2.326  # one-sided 1 % of a normal, turned into Student's t by t_quantile
    spread_runs: int = 5
    history: int = 30  # runs for the step fit and for the threshold's spread
    step_min_runs: int = 2
    step_gain: float = 4.0

    def describe(self) -> dict:
        return asdict(self)


@dataclass
class Verdict:
    verdict: str  # regression | ok | no_history
    median: float
    baseline_median: float | None = None
    growth: float | None = None
    p_value: float | None = None
    step: float | None = None
    threshold: float | None = None
    baseline_runs: int = 0
    test: str = ""  # which test decided: window, step, none
    note: str = ""

    @property
    def regression(self) -> bool:
        return self.verdict == REGRESSION

    def as_dict(self) -> dict:
        return asdict(self)


def _l1(values: np.ndarray) -> float:
    return float(np.abs(values - np.median(values)).sum()) if len(values) else 0.0


def step_fit(medians: np.ndarray) -> tuple[int, float]:
    """(split index k, reduction of the summed absolute deviation) of the best single step."""
    whole = _l1(medians)
    best_k, best_cost = 0, whole
    for k in range(1, len(medians)):
        cost = _l1(medians[:k]) + _l1(medians[k:])
        if cost < best_cost:
            best_k, best_cost = k, cost
    return best_k, whole - best_cost


def noise_scale(medians: np.ndarray) -> float:
    """Robust run-to-run noise of per-run medians: MAD of successive differences / sqrt(2)."""
    if len(medians) < 3:
        return float("inf")
    diffs = np.diff(medians)
    return max(1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / np.sqrt(2), 1e-3 * float(np.median(medians)))


def t_quantile(z: float, df: int) -> float:
    """Student's t quantile from the normal one (Cornish-Fisher expansion: within 1 % of the exact
    value for df >= 8, 4 % low at df = 4)."""
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def threshold(run_medians: np.ndarray, rule: GateRule) -> float:
    """The growth a new run's median must exceed: ``min_ratio``, or the key's own one-sided
    prediction bound (Student's t, as Bencher uses below 30 results) when its runs scatter
    more than that allows."""
    n = len(run_medians)
    if n < rule.spread_runs:
        return rule.min_ratio
    spread = float(np.std(np.log(run_medians), ddof=1))
    return max(rule.min_ratio, float(np.exp(t_quantile(rule.z, n - 1) * spread * np.sqrt(1 + 1 / n))))


def decide(new, accepted_runs: list, rule: GateRule = GateRule()) -> Verdict:
    """The verdict for one key: ``new`` samples vs the accepted runs' samples (oldest first)."""
    new = np.asarray(new, dtype=float)
    median = float(np.median(new))
    runs = [np.asarray(r, dtype=float) for r in accepted_runs if len(r)]
    if len(runs) < rule.min_runs:
        return Verdict(NO_HISTORY, median, baseline_runs=len(runs), test="none",
                       note=f"{len(runs)} accepted runs (< {rule.min_runs}): recorded as history; the golden x1.5 rule still applies")
    recent = runs[-rule.window :]
    window = np.concatenate(recent)
    baseline = float(np.median(window))
    growth = median / baseline
    _, p = mann_whitney_greater(new, window)
    out = Verdict(OK, median, baseline, growth, p, baseline_runs=len(recent), test="window")
    history = np.array([np.median(r) for r in runs[-rule.history :]])  # per-run medians: threshold and step
    out.threshold = threshold(history, rule)
    if p < rule.alpha and growth > out.threshold:
        out.verdict = REGRESSION
        out.note = f"median x{growth:.3f} of the last {out.baseline_runs} accepted runs (threshold x{out.threshold:.3f}), p={p:.2g}"
        return out
    medians = np.append(history, median)
    k, gain = step_fit(medians)
    if k:
        before, after = medians[:k], medians[k:]
        out.step = float(np.median(after) / np.median(before))
        if (
            len(after) >= rule.step_min_runs
            and out.step > rule.min_ratio
            and gain > rule.step_gain * noise_scale(medians[:k])
        ):
            out.verdict, out.test = REGRESSION, "step"
            out.note = f"step x{out.step:.3f} over the last {len(after)} runs (L1 gain {gain:.3g})"
    return out
