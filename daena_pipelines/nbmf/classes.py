"""Record classes of NBMF and the fidelity each one allows.

Lossless-only classes (audit-grade records) refuse semantic encoding. Semantic rules:
- ``series``: the channels listed in ``SERIES_STEPS`` are quantised to a fixed step (max error =
  step / 2, below the declared bound); everything else in the record stays exact.
- ``text``: every string in the record is normalised by ``normalize_text``; exact after that.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class RecordClass:
    name: str
    code: int  # one byte in the envelope
    semantic: str | None  # None | 'series' | 'text'
    # (top-level list of rows, string members every row repeats from the top level): a command's
    # audit rows carry the proposal's id and source. An inherited-members body leaves them out of
    # the rows and decoding puts them back (codec.py); None: the class has no such rows
    inherited: tuple[str, tuple[str, ...]] | None = None


RECORD_CLASSES = {
    rc.name: rc
    for rc in (
        RecordClass("session", 1, None),
        RecordClass("telemetry", 2, "series"),
        RecordClass("roast_note", 3, "text"),
        RecordClass("command", 4, None, inherited=("audit_log", ("proposal_id", "source"))),
        RecordClass("eval_result", 5, None),
        RecordClass("judge_reasoning", 6, "text"),
    )
}
CLASS_BY_CODE = {rc.code: rc for rc in RECORD_CLASSES.values()}

# Telemetry channel -> (quantisation step, declared max abs error, unit). Step/2 < bound, so
# the bound holds with margin even after float rounding.
SERIES_STEPS: dict[str, tuple[float, float, str]] = {
    "t_s": (0.01, 0.01, "s"),
    "bt_c": (0.05, 0.05, "°C"),
    "et_c": (0.05, 0.05, "°C"),
    "ror_c_per_min": (0.05, 0.05, "°C/min"),
    "heater": (0.1, 0.1, "control unit"),
    "fan": (0.1, 0.1, "control unit"),
    "drum": (0.1, 0.1, "control unit"),
}
TEMPERATURE_CHANNELS = ("bt_c", "et_c")

_SPACE_RUN = re.compile(r"[ \t\f\v\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def normalize_text(text: str) -> str:
    """The documented text rule: NFC; CRLF/CR -> LF; runs of spaces/tabs -> one space; no
    whitespace at line ends; at most one blank line in a row; no leading/trailing whitespace."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACE_RUN.sub(" ", line).strip(" ") for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def record_class(name: str) -> RecordClass:
    try:
        return RECORD_CLASSES[name]
    except KeyError:
        raise ValueError(f"unknown NBMF record class {name!r}; known: {sorted(RECORD_CLASSES)}") from None
