"""Validating the judge itself: agreement with human labels and with the gates (no Dagster here).

Labels: golden/judge/calibration.json, scores 0..100 per dimension for (session, case) pairs, written
and reviewed by the engineering team (not a panel of roasters). Each judged pair's samples are reduced
to their median, then per dimension: Spearman's rank correlation (ties get average ranks) and Cohen's
kappa on banded scores (BANDS). Judge versus gates: the judge's constraintRespect read as acceptable
(>= ACCEPTABLE_FROM) against the eval outcome PASS/WARN (acceptable) or FAIL (not). Below the
THRESHOLDS with at least MIN_PAIRS pairs, the agreement is flagged (a WARN check).
"""
from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from daena_pipelines.evals.judge import SCORE_COLUMNS, SCORE_FIELDS
from daena_pipelines.values import BadJson, strict_json

# Score bands for kappa: the four verdicts a reviewer gives (poor / fair / good / excellent).
BANDS = ((0, 39, "poor"), (40, 69, "fair"), (70, 84, "good"), (85, 100, "excellent"))
ACCEPTABLE_FROM = 70  # constraintRespect at or above: the judge calls the roast acceptable
MIN_PAIRS = 5  # fewer pairs say nothing: reported, not flagged
# Spearman >= 0.5 (a clear monotone relation) and kappa >= 0.4 ("moderate" on the Landis-Koch scale);
# judge and gates agree on at least 75 % of the pairs.
THRESHOLDS = {"spearman": 0.5, "kappa": 0.4, "gate_agreement": 0.75}


class InvalidLabels(ValueError):
    """The calibration file is unusable; the message names the entry and the problem."""


@dataclass(frozen=True)
class Label:
    session_id: str
    case_id: str
    scores: dict[str, int]  # keyed by SCORE_FIELDS
    justification: str


def load_labels(path: Path) -> tuple[dict, list[Label]]:
    """The file's header (who labelled, when, how) and its labels, validated."""
    try:
        data = strict_json(path.read_bytes())  # a score written twice is refused, not its last value taken
    except BadJson as exc:
        raise InvalidLabels(f"{path.name}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("labels", []), list):
        raise InvalidLabels(f"{path.name}: expected a JSON object with a 'labels' list")
    labels = []
    for i, entry in enumerate(data.get("labels", [])):
        where = f"{path.name} labels[{i}]"
        if not isinstance(entry, dict):
            raise InvalidLabels(f"{where}: must be an object, got {entry!r:.60}")
        for key in ("session_id", "case_id"):
            if not isinstance(entry.get(key), str) or not entry[key].strip():
                raise InvalidLabels(f"{where}: '{key}' must be a non-empty string, got {entry.get(key)!r:.60}")
        scores = {}
        for name in SCORE_FIELDS:
            value = entry.get(name)
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 100:
                raise InvalidLabels(f"{where}: {name} must be an integer 0..100, got {value!r}")
            scores[name] = value
        if not str(entry.get("justification", "")).strip():
            raise InvalidLabels(f"{where}: every label needs a justification")
        labels.append(Label(entry["session_id"], entry["case_id"], scores, entry["justification"]))
    if not str(data.get("labelled_by", "")).strip():
        raise InvalidLabels(f"{path.name}: say who labelled the set (labelled_by)")
    return {k: v for k, v in data.items() if k != "labels"}, labels


def band(score: float) -> str:
    return next(name for lo, hi, name in BANDS if score <= hi or hi == 100)


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Pearson correlation of the ranks; None when either side is constant (undefined) or n < 2."""
    if len(x) < 2:
        return None
    rx, ry = _ranks(x), _ranks(y)
    mx, my = statistics.fmean(rx), statistics.fmean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return None if sxx == 0 or syy == 0 else sxy / math.sqrt(sxx * syy)


def cohens_kappa(a: Sequence[str], b: Sequence[str]) -> float | None:
    """(observed - chance agreement) / (1 - chance); None when chance agreement is 1 (one category only)."""
    n = len(a)
    if n == 0:
        return None
    observed = sum(x == y for x, y in zip(a, b)) / n
    chance = sum((a.count(c) / n) * (b.count(c) / n) for c in set(a) | set(b))
    return None if chance == 1 else (observed - chance) / (1 - chance)


def _status(n: int, values: dict[str, float | None]) -> str:
    if n < MIN_PAIRS:
        return "too_few_pairs"
    low = [k for k, v in values.items() if v is None or v < THRESHOLDS[k]]
    return "below_threshold" if low else "ok"


def agreement(judged: Sequence[dict], labels: Sequence[Label], outcomes: dict[tuple[str, str], str]) -> list[dict]:
    """Rows of evals.judge_agreement for one (source, endpoint, model, session source): per dimension vs the labels, and
    judge vs gates. ``judged`` are judged rows of judge_scores; ``outcomes`` maps (session, case) to the eval outcome."""
    samples: dict[tuple[str, str], list[dict]] = {}
    for r in judged:
        samples.setdefault((r["session_id"], r["case_id"]), []).append(r)
    medians = {key: {n: statistics.median(r[SCORE_COLUMNS[n]] for r in rows) for n in SCORE_FIELDS}
               for key, rows in samples.items()}
    by_key = {(lb.session_id, lb.case_id): lb for lb in labels}
    paired = sorted(k for k in medians if k in by_key)
    out = []
    for name in SCORE_FIELDS:
        judge_scores = [medians[k][name] for k in paired]
        human = [by_key[k].scores[name] for k in paired]
        rho = spearman(judge_scores, human)
        kappa = cohens_kappa([band(s) for s in judge_scores], [band(s) for s in human])
        out.append({"comparison": "judge_vs_human", "dimension": name, "n_pairs": len(paired), "spearman": rho,
                    "kappa": kappa, "agreement_rate": None,
                    "status": _status(len(paired), {"spearman": rho, "kappa": kappa})})
    gated = sorted(k for k in medians if outcomes.get(k) in ("PASS", "WARN", "FAIL"))
    judge_ok = ["acceptable" if medians[k]["constraintRespect"] >= ACCEPTABLE_FROM else "not" for k in gated]
    gates_ok = ["acceptable" if outcomes[k] in ("PASS", "WARN") else "not" for k in gated]
    rate = sum(a == b for a, b in zip(judge_ok, gates_ok)) / len(gated) if gated else None
    kappa = cohens_kappa(judge_ok, gates_ok)
    out.append({"comparison": "judge_vs_gates", "dimension": "constraintRespect", "n_pairs": len(gated),
                "spearman": None, "kappa": kappa, "agreement_rate": rate,
                "status": _status(len(gated), {"gate_agreement": rate})})
    return out
