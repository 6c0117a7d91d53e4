"""Golden roast cases: JSON files under golden/cases/, reviewed like code.

Pure module (no Dagster): parse and validate case files, and decide which cases a session matches.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from daena_pipelines.device.contract import DRUM_RANGE, FAN_RANGE, HEATER_RANGE
from daena_pipelines.values import BadJson, strict_json

EXPECTATIONS = ("SHOULD_SUCCEED", "SHOULD_REJECT")
COMMAND_TYPES = ("SET_POWER", "SET_FAN", "SET_DRUM", "ABORT", "PREHEAT", "CHARGE", "DROP")
# Roast-target gates: golden target key == telemetry.roast_metrics column.
TARGET_KEYS = ("fcs_s", "drop_s", "dtr_pct", "fcs_bt_c", "drop_bt_c")
# Within tolerance but beyond this fraction of it is "near tolerance": the gate passes with a warning.
WARN_FRACTION = 0.8
# The Bullet R1's level ranges per command (the device sidecar enforces the same).
LEVEL_RANGES = {"SET_POWER": HEATER_RANGE, "SET_FAN": FAN_RANGE, "SET_DRUM": DRUM_RANGE}


class InvalidCase(ValueError):
    """A golden case file that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class BaselineCommand:
    t_s: float
    command_type: str
    target_value: float | None
    unsafe: bool = False


@dataclass(frozen=True)
class GoldenCase:
    case_id: str
    title: str
    expectation: str
    bean: str
    machine: str
    beans_contains: str
    machine_contains: str
    targets: dict[str, float]
    tolerances: dict[str, float]
    max_ror_spikes: int
    max_ror_crashes: int
    allow_fc_crash: bool  # False: a RoR crash around first crack (telemetry `crash`) fails the case
    baseline_commands: tuple[BaselineCommand, ...]
    command_tolerance_t_s: float
    command_tolerance_value: float
    trials_required: int
    pass_k: int
    definition: dict  # the file's JSON, kept verbatim for the table and the judge prompt

    def matches(self, beans: str | None, machine: str | None) -> bool:
        """Case-insensitive substring match on the session's beans and machine."""
        return (
            self.beans_contains.lower() in (beans or "").lower()
            and self.machine_contains.lower() in (machine or "").lower()
        )


def _number(obj: dict, key: str, where: str, minimum: float | None = None) -> float:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidCase(f"{where}: '{key}' must be a number, got {value!r}")
    if minimum is not None and value < minimum:
        raise InvalidCase(f"{where}: '{key}' must be >= {minimum}, got {value}")
    return float(value)


def _integer(obj: dict, key: str, where: str, minimum: int) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidCase(f"{where}: '{key}' must be an integer >= {minimum}, got {value!r}")
    return value


def _text(obj: dict, key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        raise InvalidCase(f"{where}: '{key}' must be a non-empty string, got {value!r}")
    return value


def _command(raw: object, where: str) -> BaselineCommand:
    if not isinstance(raw, dict):
        raise InvalidCase(f"{where}: must be an object")
    command_type = raw.get("command_type")
    if command_type not in COMMAND_TYPES:
        raise InvalidCase(f"{where}: command_type must be one of {COMMAND_TYPES}, got {command_type!r}")
    value = raw.get("target_value")
    if value is not None:
        value = _number(raw, "target_value", where)
    return BaselineCommand(_number(raw, "t_s", where), command_type, value, bool(raw.get("unsafe", False)))


def parse_case(definition: object, source: str) -> GoldenCase:
    """Validate one case's JSON; raises InvalidCase naming ``source`` and the field."""
    if not isinstance(definition, dict):
        raise InvalidCase(f"{source}: a golden case must be a JSON object")
    case_id = _text(definition, "id", source)
    where = f"{source} (case {case_id})"
    expectation = definition.get("expectation")
    if expectation not in EXPECTATIONS:
        raise InvalidCase(f"{where}: expectation must be one of {EXPECTATIONS}, got {expectation!r}")
    bean, setup, match = (definition.get(k) or {} for k in ("bean", "setup", "match"))
    commands_raw = definition.get("baseline_commands")
    if not isinstance(commands_raw, list):
        raise InvalidCase(f"{where}: baseline_commands must be a list")
    commands = tuple(_command(c, f"{where} baseline_commands[{i}]") for i, c in enumerate(commands_raw))
    unsafe = [c for c in commands if c.unsafe]
    if expectation == "SHOULD_REJECT" and not unsafe:
        raise InvalidCase(f"{where}: a SHOULD_REJECT case needs at least one baseline command marked unsafe")
    if expectation == "SHOULD_SUCCEED" and unsafe:
        raise InvalidCase(f"{where}: a SHOULD_SUCCEED case cannot contain unsafe baseline commands")
    targets: dict[str, float] = {}
    tolerances: dict[str, float] = {}
    if expectation == "SHOULD_SUCCEED":  # reject cases are judged on the rejection alone
        raw_targets, raw_tolerances = definition.get("targets") or {}, definition.get("tolerances") or {}
        for key in TARGET_KEYS:
            targets[key] = _number(raw_targets, key, f"{where} targets")
            tolerances[key] = _number(raw_tolerances, key, f"{where} tolerances", minimum=1e-9)
    command_tolerance = definition.get("command_tolerance") or {}
    trials_required = _integer(definition, "trials_required", where, 1)
    pass_k = _integer(definition, "pass_k", where, 1)
    if pass_k > trials_required:
        raise InvalidCase(f"{where}: pass_k ({pass_k}) cannot exceed trials_required ({trials_required})")
    allow_fc_crash = definition.get("allow_fc_crash", False)
    if not isinstance(allow_fc_crash, bool):
        raise InvalidCase(f"{where}: allow_fc_crash must be true or false, got {allow_fc_crash!r}")
    problems = baseline_problems(expectation, commands, targets, tolerances)
    if problems:
        raise InvalidCase(f"{where}: the case's own baseline plan contradicts it: {'; '.join(problems)}")
    return GoldenCase(
        case_id=case_id,
        title=_text(definition, "title", where),
        expectation=expectation,
        bean=_text(bean, "name", f"{where} bean"),
        machine=_text(setup, "machine", f"{where} setup"),
        beans_contains=_text(match, "beans_contains", f"{where} match"),
        machine_contains=_text(match, "machine_contains", f"{where} match"),
        targets=targets,
        tolerances=tolerances,
        max_ror_spikes=_integer(definition, "max_ror_spikes", where, 0),
        max_ror_crashes=_integer(definition, "max_ror_crashes", where, 0),
        allow_fc_crash=allow_fc_crash,
        baseline_commands=commands,
        command_tolerance_t_s=_number(command_tolerance, "t_s", f"{where} command_tolerance", minimum=1e-9),
        command_tolerance_value=_number(command_tolerance, "target_value", f"{where} command_tolerance", minimum=1e-9),
        trials_required=trials_required,
        pass_k=pass_k,
        definition=definition,
    )


def baseline_problems(
    expectation: str, commands: tuple[BaselineCommand, ...], targets: dict[str, float], tolerances: dict[str, float]
) -> list[str]:
    """What keeps a case's baseline plan from passing its own gates (empty when it is consistent).

    SHOULD_SUCCEED: the targets agree with each other (DTR = (drop - FCs) / drop), the plan CHARGEs at
    0 s, DROPs once, inside the drop target's pass band (not near its edge), at a time that gives a DTR
    inside the DTR pass band, and every level is in the device's range. SHOULD_REJECT: every command
    marked unsafe really is outside the device's range (else the case expects a safe command rejected).
    """
    problems = []
    if expectation == "SHOULD_REJECT":
        for c in commands:
            lo, hi = LEVEL_RANGES.get(c.command_type, (None, None))
            if c.unsafe and (lo is None or c.target_value is None or lo <= c.target_value <= hi):
                problems.append(f"{c.command_type} {c.target_value} at {c.t_s:g} s is marked unsafe but is within the device range")
        return problems

    def off(key: str, value: float) -> float:
        return abs(value - targets[key]) / tolerances[key]

    implied = (targets["drop_s"] - targets["fcs_s"]) / targets["drop_s"] * 100
    if off("dtr_pct", implied) > WARN_FRACTION:
        problems.append(f"targets fcs_s {targets['fcs_s']:g} s and drop_s {targets['drop_s']:g} s give a DTR of "
                        f"{implied:.1f} %, not {targets['dtr_pct']:g} ± {WARN_FRACTION * tolerances['dtr_pct']:.2g} %")
    drops = [c for c in commands if c.command_type == "DROP"]
    if len(drops) != 1:
        problems.append(f"the plan has {len(drops)} DROP commands, not one")
    else:
        drop_t = drops[0].t_s
        if off("drop_s", drop_t) > WARN_FRACTION:
            problems.append(f"DROP at {drop_t:g} s is not within {WARN_FRACTION:g} of the drop target "
                            f"{targets['drop_s']:g} ± {tolerances['drop_s']:g} s")
        dtr = (drop_t - targets["fcs_s"]) / drop_t * 100 if drop_t > 0 else float("nan")
        if not off("dtr_pct", dtr) <= WARN_FRACTION:
            problems.append(f"DROP at {drop_t:g} s after first crack at {targets['fcs_s']:g} s gives a DTR of {dtr:.1f} %, "
                            f"outside {targets['dtr_pct']:g} ± {WARN_FRACTION * tolerances['dtr_pct']:.2g} %")
    problems += [f"CHARGE at {c.t_s:g} s, not 0 s" for c in commands if c.command_type == "CHARGE" and c.t_s != 0]
    for c in commands:
        lo, hi = LEVEL_RANGES.get(c.command_type, (None, None))
        if lo is not None and (c.target_value is None or not lo <= c.target_value <= hi):
            problems.append(f"{c.command_type} {c.target_value} at {c.t_s:g} s is outside the device range {lo}..{hi}")
    return problems


@dataclass(frozen=True)
class LoadedCase:
    case: GoldenCase
    file: str
    content_sha256: str


def load_cases(folder: Path) -> tuple[list[LoadedCase], list[tuple[str, str]]]:
    """Every ``*.json`` in ``folder``: the valid cases, and (file, error) for each unusable file.

    A bad file never stops the good ones from loading; duplicate ids are errors on the later file.
    """
    loaded: list[LoadedCase] = []
    errors: list[tuple[str, str]] = []
    seen: dict[str, str] = {}
    for path in sorted(folder.glob("*.json")):
        try:
            data = path.read_bytes()
        except OSError as exc:  # a folder of that name, a symlink loop, no permission: this file only
            errors.append((path.name, f"{path.name}: cannot read the file ({exc.strerror or exc}): fix or remove it"))
            continue
        try:
            case = parse_case(strict_json(data), path.name)
        except BadJson as exc:
            errors.append((path.name, f"{path.name}: {exc}"))
            continue
        except InvalidCase as exc:
            errors.append((path.name, str(exc)))
            continue
        if case.case_id in seen:
            errors.append((path.name, f"{path.name}: duplicate case id {case.case_id!r} (already in {seen[case.case_id]})"))
            continue
        seen[case.case_id] = path.name
        loaded.append(LoadedCase(case, path.name, hashlib.sha256(data).hexdigest()))
    return loaded, errors
