"""Small checks on values read from files, shared by every reader (plain Python)."""
from __future__ import annotations

import math
import re

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
