"""Golden values: expected results, each with the rule it is checked by, against a warehouse table.

A golden file (JSON) names a table, its key columns, its value column and how to pick the run
to check (``latest_by``: rows whose column equals its maximum). ``entries`` hold one key, the
expected value and the rule; ``rules`` are templates ``promote`` uses to (re)write entries.

Rules (``kind``):
- ``exact``: actual == expected.
- ``abs`` / ``rel``: |actual - expected| <= tolerance (relative to |expected| for ``rel``).
- ``at_most`` / ``at_least``: a declared bound (e.g. max error <= 0.05 °C); promotion keeps it.
- ``at_most_factor``: actual <= expected x ``factor`` (one-sided: lower is never a failure).
- ``ratio_to_baseline``: actual / value of the same key with ``baseline`` substituted (e.g.
  codec zstd_19) in the same run; worse than expected by more than ``tolerance`` (relative) in
  ``direction`` fails. Makes timings and ratios machine-independent.
- ``mann_whitney_u``: for a suite over a table of samples (``latest_by`` = the run column,
  ``value_column`` = one sample), the key's samples in the checked run vs the previous run;
  fails when new samples are larger with p < ``alpha`` AND the median grew by more than
  ``min_ratio``. No previous run: passes, saying so.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np

from daena_pipelines.db import table_exists
from daena_pipelines.regressions.stats import mann_whitney_greater
from daena_pipelines.values import strict_json


@dataclass
class GoldenSuite:
    name: str
    table: str
    key_columns: list[str]
    value_column: str
    latest_by: str | None
    rules: list[dict]
    entries: list[dict]
    description: str = ""
    path: Path | None = field(default=None, compare=False)

    @classmethod
    def load(cls, path: Path | str) -> "GoldenSuite":
        path = Path(path)
        raw = strict_json(path.read_bytes())  # NaN, Infinity, 1e400 or a key twice: refused, never a gate that cannot fail
        return cls(**{k: raw[k] for k in raw if k in cls.__dataclass_fields__ and k != "path"}, path=path)

    def to_json(self) -> str:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "path"}
        return json.dumps(data, indent=1, ensure_ascii=False, sort_keys=False) + "\n"


@dataclass
class Outcome:
    metric: str  # the key values joined with "/"
    key: dict
    golden: object
    actual: object
    change: str
    rule: dict
    passed: bool
    note: str = ""

    def describe(self) -> str:
        verdict = "ok" if self.passed else "FAIL"
        return f"{verdict} {self.metric}: golden {self.golden!r}, actual {self.actual!r}, change {self.change}, rule {rule_text(self.rule)}{'; ' + self.note if self.note else ''}"

    def as_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("metric", "key", "golden", "actual", "change", "rule", "passed", "note")}


def rule_text(rule: dict) -> str:
    kind = rule["kind"]
    if kind in ("abs", "rel"):
        return f"{kind} tolerance {rule['tolerance']}"
    if kind == "at_most_factor":
        return f"at most x{rule['factor']} the golden value"
    if kind == "timing_gate":
        return f"timing gate: U test p < {rule['alpha']} and growth over the key's threshold (>= x{rule['min_ratio']}) vs the last {rule['window']} accepted runs, or a step"
    if kind == "ratio_to_baseline":
        return f"ratio to {rule['baseline']} in the same run, {rule['direction']}, tolerance {rule['tolerance']:.0%}"
    if kind == "mann_whitney_u":
        return f"Mann-Whitney U vs previous run, alpha {rule['alpha']}, median growth > {rule['min_ratio']}x"
    return kind


def metric_name(key: dict) -> str:
    return "/".join(str(v) for v in key.values())


def _key_tuple(suite: GoldenSuite, key: dict) -> tuple:
    return tuple(str(key.get(c)) for c in suite.key_columns)


def scope_sql(suite: GoldenSuite) -> str:
    if not suite.latest_by:
        return ""
    return f" WHERE {suite.latest_by} = (SELECT max({suite.latest_by}) FROM {suite.table})"


def current_values(con: duckdb.DuckDBPyConnection, suite: GoldenSuite) -> dict[tuple, object]:
    """{key tuple: value} of the rows the suite checks (the latest run, when ``latest_by``)."""
    cols = ", ".join(suite.key_columns)
    rows = con.execute(f"SELECT {cols}, {suite.value_column} FROM {suite.table}{scope_sql(suite)}").fetchall()
    return {tuple(str(v) for v in row[:-1]): row[-1] for row in rows}


def checked_run(con: duckdb.DuckDBPyConnection, suite: GoldenSuite):
    if not suite.latest_by:
        return None
    return con.execute(f"SELECT max({suite.latest_by}) FROM {suite.table}").fetchone()[0]


def _change(golden, actual) -> str:
    if isinstance(golden, (int, float)) and isinstance(actual, (int, float)) and not isinstance(golden, bool):
        diff = actual - golden
        rel = f" ({diff / golden:+.1%})" if golden else ""
        return f"{diff:+.6g}{rel}"
    return "same" if golden == actual else f"{golden!r} -> {actual!r}"


def measure(con, suite: GoldenSuite, values: dict[tuple, object], key: dict, rule: dict) -> tuple[object, str]:
    """The actual quantity a rule compares (a ratio for ratio_to_baseline, a p-value summary for
    Mann-Whitney) and a note; None when it cannot be measured in this run."""
    kind = rule["kind"]
    if kind == "mann_whitney_u":
        return _mann_whitney(con, suite, key, rule)
    actual = values.get(_key_tuple(suite, key))
    if kind != "ratio_to_baseline" or actual is None:
        return actual, ""
    baseline = values.get(_key_tuple(suite, {**key, **rule["baseline"]}))
    if not baseline:
        return None, f"baseline {rule['baseline']} missing in this run"
    return actual / baseline, f"{actual:.6g} / baseline {baseline:.6g}"


def _mann_whitney(con, suite: GoldenSuite, key: dict, rule: dict) -> tuple[object, str]:
    table, run_col, value_col = suite.table, suite.latest_by, suite.value_column
    runs = [r[0] for r in con.execute(f"SELECT DISTINCT {run_col} FROM {table} ORDER BY 1 DESC LIMIT 2").fetchall()]
    where = " AND ".join(f"{c} = ?" for c in key)

    def samples(run):
        sql = f"SELECT {value_col} FROM {table} WHERE {run_col} = ?" + (f" AND {where}" if where else "")
        return np.array([r[0] for r in con.execute(sql, [run, *key.values()]).fetchall()], dtype=float)

    untested = {"p_value": None, "median_ratio": None}
    if len(runs) < 2:
        return untested, "no previous run to compare with"
    new, old = samples(runs[0]), samples(runs[1])
    if not len(new) or not len(old):
        return untested, "no samples for this key in one of the two runs"
    _, p = mann_whitney_greater(new, old)
    growth = float(np.median(new) / np.median(old))
    return {"p_value": p, "median_ratio": growth}, f"run {runs[0]} vs {runs[1]}, n={len(new)}/{len(old)}"


def passes(golden, actual, rule: dict) -> bool:
    kind = rule["kind"]
    if actual is None:
        return False
    if kind == "exact":
        return actual == golden
    if kind == "mann_whitney_u":
        if actual["p_value"] is None:
            return True  # nothing to compare with; the note says why
        return not (actual["p_value"] < rule["alpha"] and actual["median_ratio"] > rule["min_ratio"])
    if isinstance(actual, float) and math.isnan(actual):
        return False
    if kind == "abs":
        return abs(actual - golden) <= rule["tolerance"]
    if kind == "rel":
        return abs(actual - golden) <= rule["tolerance"] * abs(golden)
    if kind == "at_most":
        return actual <= golden
    if kind == "at_least":
        return actual >= golden
    if kind == "at_most_factor":
        return actual <= golden * rule["factor"]
    if kind == "ratio_to_baseline":
        if rule["direction"] == "higher_is_better":
            return actual >= golden * (1 - rule["tolerance"])
        return actual <= golden * (1 + rule["tolerance"])
    raise ValueError(f"unknown golden rule kind {kind!r}")


def unreadable(path: Path, exc: BaseException) -> Outcome:
    """The failing outcome for a golden file that cannot be read or checked (truncated JSON,
    missing fields, a rule that raises): named, so findings and the CI output say which file."""
    return Outcome(f"golden_file:{path.name}", {"golden_file": str(path)}, "a readable golden file", None,
                   "unreadable", {"kind": "exact"}, False, f"{path}: {type(exc).__name__}: {exc}")


def evaluate_file(con: duckdb.DuckDBPyConnection, path: Path) -> tuple[list[Outcome], object]:
    """(outcomes, checked run) of one golden file; a file that cannot be loaded or evaluated is
    one failing outcome naming it, never an exception that would leave no finding behind."""
    try:
        suite = GoldenSuite.load(path)
        return evaluate(con, suite), checked_run(con, suite)
    except Exception as exc:  # noqa: BLE001 - any failure here is a failed check, recorded as such
        return [unreadable(path, exc)], None


def evaluate(con: duckdb.DuckDBPyConnection, suite: GoldenSuite) -> list[Outcome]:
    if not table_exists(con, suite.table):
        return [Outcome(suite.table, {}, "table exists", None, "table missing", {"kind": "exact"}, False, "nothing to check")]
    if not suite.entries:
        return [Outcome(suite.name, {}, "golden entries", None, "none", {"kind": "exact"}, False, "no golden values: run promote")]
    values = current_values(con, suite)
    outcomes = []
    for entry in suite.entries:
        key, rule, golden = entry["key"], entry["rule"], entry.get("expected")
        actual, note = measure(con, suite, values, key, rule)
        if actual is None and not note:
            note = "no such row in the checked run"
        change = (
            f"median x{actual['median_ratio']:.3g}, p={actual['p_value']:.2g}"
            if isinstance(actual, dict) and actual["p_value"] is not None
            else "not compared"
            if isinstance(actual, dict)
            else _change(golden, actual)
            if actual is not None
            else "missing"
        )
        outcomes.append(Outcome(metric_name(key), key, golden, actual, change, rule, passes(golden, actual, rule), note))
    return outcomes + unguarded(suite, values)


def unguarded(suite: GoldenSuite, values: dict[tuple, object]) -> list[Outcome]:
    """A failing outcome for every key of the checked run that a rule template covers but no
    entry holds: a deleted golden entry must not turn into a value nobody checks."""
    guarded = {_key_tuple(suite, e["key"]) for e in suite.entries}
    out = []
    for key_values in sorted(values.keys() - guarded):
        key = dict(zip(suite.key_columns, key_values))
        template = next((t for t in suite.rules if _matches(t, key)), None)
        if template is not None:
            out.append(Outcome(metric_name(key), key, None, values[key_values], "no golden value", template["rule"], False,
                               "measured in this run but missing from the golden file (deleted or never promoted): promote and review"))
    return out


# --- promotion --------------------------------------------------------------------------------


def _matches(template: dict, key: dict) -> bool:
    for column, wanted in template.get("match", {}).items():
        options = wanted if isinstance(wanted, list) else [wanted]
        if key.get(column) not in [str(o) for o in options]:
            return False
    return True


def proposed_entries(con: duckdb.DuckDBPyConnection, suite: GoldenSuite) -> list[dict]:
    """Entries as the checked run would set them: every key a rule template matches, with the
    measured value (declared bounds and Mann-Whitney rules keep their template values)."""
    values = current_values(con, suite)
    entries = []
    for key_values in sorted(values):
        key = dict(zip(suite.key_columns, key_values))
        template = next((t for t in suite.rules if _matches(t, key)), None)
        if template is None:
            continue
        rule = template["rule"]
        if "expected" in template:
            expected = template["expected"]
        else:
            expected, _ = measure(con, suite, values, key, rule)
            if expected is None:
                continue
            if isinstance(expected, float):
                expected = round(expected, 9)
        entries.append({"key": key, "expected": expected, "rule": rule})
    return entries


def diff_entries(old: list[dict], new: list[dict]) -> list[str]:
    """Human-readable differences between two entry lists (added, removed, changed)."""
    before = {json.dumps(e["key"], sort_keys=True): e for e in old}
    after = {json.dumps(e["key"], sort_keys=True): e for e in new}
    lines = []
    for k in sorted(before.keys() | after.keys()):
        a, b = before.get(k), after.get(k)
        name = metric_name((a or b)["key"])
        if a is None:
            lines.append(f"+ {name}: {b['expected']!r} ({rule_text(b['rule'])})")
        elif b is None:
            lines.append(f"- {name}: {a['expected']!r}")
        elif (a["expected"], a["rule"]) != (b["expected"], b["rule"]):
            lines.append(f"~ {name}: {a['expected']!r} -> {b['expected']!r} ({rule_text(b['rule'])})")
    return lines
