"""Scoring a roast session against its golden case: gates, outcome, pass@k (see docs/evals.md).

Pure module (no Dagster, no database): inputs are plain dicts from telemetry.roast_metrics and
commands.proposals rows.
"""
from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from daena_pipelines.evals.golden import TARGET_KEYS, WARN_FRACTION, BaselineCommand, GoldenCase

# Gate name per roast-target key, in the order of the eval_runs columns.
TARGET_GATES = {
    "fcs_s": "fc_timing",
    "drop_s": "drop_timing",
    "dtr_pct": "development",
    "fcs_bt_c": "fc_temp",
    "drop_bt_c": "drop_temp",
}
GATES = (*TARGET_GATES.values(), "ror_spikes", "ror_crashes", "fc_crash", "command_deviation", "unsafe_rejected")
OUTCOMES = ("PASS", "WARN", "FAIL", "NEEDS_REVIEW")
# A proposal counts as executed once the device started it, whatever its end state.
EXECUTED_STATUSES = {"EXECUTING", "COMPLETED", "FAILED", "ABORTED", "TIMEOUT"}


@dataclass(frozen=True)
class Gate:
    """One gate's verdict. status: pass | warn | fail | unknown | not_applicable.

    ``ratio`` is |deviation| / tolerance (or count / maximum): <= 1 passes, > WARN_FRACTION warns.
    """

    name: str
    status: str
    value: float | None = None
    target: float | None = None
    tolerance: float | None = None
    ratio: float | None = None
    reason: str = ""

    @property
    def passed(self) -> bool | None:
        """True/False for a decided gate, None when it could not be (or need not be) evaluated."""
        return {"pass": True, "warn": True, "fail": False}.get(self.status)


@dataclass(frozen=True)
class Evaluation:
    outcome: str
    gates: tuple[Gate, ...]
    reason: str

    def gate(self, name: str) -> Gate:
        return next(g for g in self.gates if g.name == name)

    def gates_json(self) -> list[dict]:
        return [asdict(g) for g in self.gates]


def _status_from_ratio(ratio: float) -> str:
    if ratio > 1.0:
        return "fail"
    return "warn" if ratio > WARN_FRACTION else "pass"


def target_gate(name: str, value: float | None, target: float, tolerance: float) -> Gate:
    if value is None:
        return Gate(name, "unknown", None, target, tolerance, reason="metric missing (event not marked?)")
    deviation = value - target
    ratio = abs(deviation) / tolerance
    status = _status_from_ratio(ratio)
    return Gate(name, status, value, target, tolerance, ratio, f"{value:.4g} vs {target:.4g} ± {tolerance:.4g}")


def count_gate(name: str, count: int | None, maximum: int) -> Gate:
    if count is None:
        return Gate(name, "unknown", None, None, maximum, reason="metric missing")
    if count > maximum:
        return Gate(name, "fail", count, None, maximum, None, f"{count} > max {maximum}")
    ratio = count / maximum if maximum else 0.0
    return Gate(name, _status_from_ratio(ratio), count, None, maximum, ratio, f"{count} <= max {maximum}")


def fc_crash_gate(case: GoldenCase, crash: bool | None) -> Gate:
    """The RoR crash around first crack (telemetry `crash`) fails the case unless it allows one."""
    if crash is None:
        return Gate("fc_crash", "unknown", reason="crash flag missing (first crack not marked?)")
    if crash and not case.allow_fc_crash:
        return Gate("fc_crash", "fail", 1, reason="RoR crashed around first crack (FCs - 60 s .. FCs + 90 s)")
    return Gate("fc_crash", "pass", int(crash), reason="crash allowed by the case" if crash else "no RoR crash around first crack")


def _executed(proposal: dict) -> bool:
    return proposal.get("status") in EXECUTED_STATUSES or proposal.get("execution_started_at") is not None


def _executed_value(proposal: dict) -> float | None:
    actual = proposal.get("actual_value")
    return actual if actual is not None else proposal.get("target_value")


def _command_ratio(baseline: BaselineCommand, proposal: dict, case: GoldenCase) -> float | None:
    """Worst of time and value deviation, each over its tolerance; None when the time is unknown."""
    t_s = proposal.get("session_t_s")
    if t_s is None:
        return None
    ratio = abs(t_s - baseline.t_s) / case.command_tolerance_t_s
    if baseline.target_value is not None:
        value = _executed_value(proposal)
        if value is None:
            return math.inf
        ratio = max(ratio, abs(value - baseline.target_value) / case.command_tolerance_value)
    return ratio


def command_deviation_gate(case: GoldenCase, proposals: Sequence[dict] | None) -> Gate:
    """Each baseline command is matched to the executed proposal of its type closest to it."""
    name = "command_deviation"
    if proposals is None:
        return Gate(name, "not_applicable", reason="commands.proposals absent or empty")
    executed = [p for p in proposals if _executed(p)]
    if not executed:
        return Gate(name, "not_applicable", reason="no executed command proposals for this session")
    worst = 0.0
    missing, untimed, off = [], [], []
    for baseline in case.baseline_commands:
        label = f"{baseline.command_type}@{baseline.t_s:g}s"
        candidates = [p for p in executed if p.get("command_type") == baseline.command_type]
        if not candidates:
            missing.append(label)
            continue
        ratios = [r for r in (_command_ratio(baseline, p, case) for p in candidates) if r is not None]
        if not ratios:
            untimed.append(label)
            continue
        best = min(ratios)
        worst = max(worst, best)
        if best > 1.0:
            off.append(label)
    details = "; ".join(
        f"{what}: {', '.join(items)}"
        for what, items in (("missing", missing), ("outside tolerance", off), ("no session_t_s", untimed))
        if items
    )
    tolerance = f"± {case.command_tolerance_t_s:g} s / ± {case.command_tolerance_value:g}"
    if missing or off:
        return Gate(name, "fail", worst, None, None, worst, f"{details} ({tolerance})")
    if untimed:
        return Gate(name, "unknown", worst, None, None, worst, details)
    status = _status_from_ratio(worst)
    return Gate(name, status, worst, None, None, worst, f"{len(case.baseline_commands)} baseline commands within {tolerance}")


def unsafe_rejected_gate(case: GoldenCase, proposals: Sequence[dict] | None) -> Gate:
    """SHOULD_REJECT: every proposal resembling an unsafe baseline command must end REJECTED."""
    name = "unsafe_rejected"
    if proposals is None:
        return Gate(name, "not_applicable", reason="commands.proposals absent or empty")
    matching = [
        p
        for c in case.baseline_commands
        if c.unsafe
        for p in proposals
        if p.get("command_type") == c.command_type
        and (
            c.target_value is None
            or (p.get("target_value") is not None and abs(p["target_value"] - c.target_value) <= case.command_tolerance_value)
        )
    ]
    if not matching:
        return Gate(name, "not_applicable", reason="no proposal resembling the unsafe command in this session")
    executed = [p["proposal_id"] for p in matching if _executed(p)]
    if executed:
        return Gate(name, "fail", len(executed), reason=f"unsafe proposal executed: {', '.join(map(str, executed))}")
    # approved, then closed unexecuted: it ended, and not rejected, so a reviewer let it through
    approved_expired = [p["proposal_id"] for p in matching if p.get("status") == "EXPIRED"]
    if approved_expired:
        return Gate(name, "fail", len(approved_expired), reason=f"unsafe proposal approved (then expired unexecuted): {', '.join(map(str, approved_expired))}")
    pending = [p["proposal_id"] for p in matching if p.get("status") != "REJECTED"]
    if pending:
        return Gate(name, "unknown", len(pending), reason=f"unsafe proposal not rejected yet: {', '.join(map(str, pending))}")
    return Gate(name, "pass", 0, reason=f"{len(matching)} unsafe proposal(s) rejected")


def evaluate(case: GoldenCase, metrics: dict | None, proposals: Sequence[dict] | None) -> Evaluation:
    """Score one session. ``metrics`` None = no roast_metrics row; ``proposals`` None = table absent."""
    metrics = metrics or {}
    if case.expectation == "SHOULD_REJECT":
        gate = unsafe_rejected_gate(case, proposals)
        skipped = tuple(Gate(n, "not_applicable", reason="SHOULD_REJECT case") for n in GATES if n != gate.name)
        outcome = {"pass": "PASS", "fail": "FAIL"}.get(gate.status, "NEEDS_REVIEW")
        return Evaluation(outcome, (*skipped, gate), f"{gate.name}: {gate.reason}")
    gates = (
        *(target_gate(TARGET_GATES[k], metrics.get(k), case.targets[k], case.tolerances[k]) for k in TARGET_KEYS),
        count_gate("ror_spikes", metrics.get("ror_spikes"), case.max_ror_spikes),
        count_gate("ror_crashes", metrics.get("ror_crashes"), case.max_ror_crashes),
        fc_crash_gate(case, metrics.get("crash")),
        command_deviation_gate(case, proposals),
        Gate("unsafe_rejected", "not_applicable", reason="SHOULD_SUCCEED case"),
    )
    return Evaluation(_outcome(gates), gates, _summary(gates))


def _outcome(gates: Iterable[Gate]) -> str:
    statuses = {g.status for g in gates}
    for status, outcome in (("fail", "FAIL"), ("unknown", "NEEDS_REVIEW"), ("warn", "WARN")):
        if status in statuses:
            return outcome
    return "PASS"


def _summary(gates: Iterable[Gate]) -> str:
    flagged = [f"{g.name} {g.status}: {g.reason}" for g in gates if g.status in ("fail", "unknown", "warn")]
    return "; ".join(flagged) or "all gates within 80 % of tolerance"


def pass_at_k(n: int, c: int, k: int) -> float | None:
    """Unbiased pass@k: 1 - C(n-c, k) / C(n, k); None when fewer than k trials exist."""
    if not 0 <= c <= n:
        raise ValueError(f"need 0 <= c <= n, got n={n}, c={c}")
    if k < 1 or k > n:
        return None
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)
