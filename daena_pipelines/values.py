"""Small checks on values read from files, shared by every reader (plain Python)."""
from __future__ import annotations

import json
import math
import re
import sys

import orjson

_SURROGATE = re.compile("[\ud800-\udfff]")


def short(value) -> str:
    """repr() of a value, cut to a length that fits an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def surrogate_problem(text: str, name: str) -> str | None:
    """Why `text` cannot be stored (a lone surrogate: Python allows it, UTF-8 cannot encode it), or None."""
    found = None if text.isascii() else _SURROGATE.search(text)
    if found is None:
        return None
    index = found.start()
    return f"{name} holds a lone surrogate U+{ord(text[index]):04X} at character {index}: not valid Unicode text"


def as_text(value, name: str, error: type[ValueError]) -> str:
    """`value` if it is text that can be stored; else raise `error(kind, message)`."""
    if not isinstance(value, str):
        raise error("bad_value", f"{name} is {short(value)} ({type(value).__name__}), expected text")
    problem = surrogate_problem(value, name)
    if problem:
        raise error("bad_text", problem)
    return value


def as_number(value, name: str, error: type[ValueError]) -> float:
    """`value` as a finite float if it is an int or float (not a bool, not numeric text); else
    raise `error(kind, message)`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise error("bad_value", f"{name}={short(value)} is not a number ({type(value).__name__} given)")
    try:
        number = float(value)
    except OverflowError:
        raise error("bad_value", f"{name} is an integer of {len(str(abs(value)))} digits, beyond any float") from None
    if not math.isfinite(number):
        raise error("bad_value", f"{name}={value!r} is not a finite number")
    return number


class BadJson(ValueError):
    """A JSON file a reviewed input (golden cases, golden values) must not be read from."""


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """``object_pairs_hook`` for json.loads: an object with a key twice is BadJson, not its last value."""
    found = {}
    for key, value in pairs:
        if key in found:
            raise BadJson(f"key {short(key)} appears twice in one object (readers disagree on which one counts)")
        found[key] = value
    return found


def check_unique_keys(text: str | bytes, parsed: object) -> None:
    """BadJson when `text`, already read into `parsed` by orjson (which keeps the last of a key written
    twice), has a key twice. Each key brings one colon: when the text holds as many as orjson writes back
    for `parsed` (no spaces, ':' never escaped), no key was dropped; else (or with an escaped colon,
    which hides one) it is read again with unique_keys."""
    colon, escaped = (":", "\\u003") if isinstance(text, str) else (b":", b"\\u003")
    try:
        if text.count(colon) == orjson.dumps(parsed).count(b":") and escaped not in text:
            return
    except orjson.JSONEncodeError:  # nested deeper or an integer wider than orjson writes: let json judge
        pass
    try:
        json.loads(text, object_pairs_hook=unique_keys)
    except RecursionError:
        raise BadJson("objects and lists nested too deep to read") from None


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise BadJson(f"number {short(text)} is beyond the range of a float")
    return number


def _bounded(text: str) -> int:
    number = int(text)
    if abs(number) > _FLOAT_MAX:  # a tolerance of 10**400 passes everything as surely as Infinity
        raise BadJson(f"integer {short(text)} is beyond the range of a float")
    return number


_FLOAT_MAX = sys.float_info.max


def _constant(name: str) -> None:
    raise BadJson(f"{name} is not a JSON number (only finite numbers are)")


def strict_json(data: bytes) -> object:
    """JSON as RFC 8259 defines it, for files a person edits and reviews: UTF-8 (a leading byte
    order mark allowed); numbers within a float's range only (Python's reader takes NaN, Infinity
    and 1e400 as floats and 10**400 as an integer, and a tolerance of Infinity is a gate that
    cannot fail); each key once per object (Python keeps the last of two silently). Raises
    ``BadJson`` saying what is wrong and where."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BadJson(f"not UTF-8 text: byte {exc.start} ({exc.reason})") from None
    try:
        return json.loads(text, object_pairs_hook=unique_keys, parse_float=_finite, parse_int=_bounded, parse_constant=_constant)
    except BadJson:
        raise
    except json.JSONDecodeError as exc:
        raise BadJson(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise BadJson("JSON nested too deeply to read") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise BadJson(f"not valid JSON: {str(exc).split(';')[0]}") from None
