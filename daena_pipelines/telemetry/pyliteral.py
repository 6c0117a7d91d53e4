"""Fast, safe reading of Python-literal text (the serialisation Artisan uses for `.alog`).

`ast.literal_eval` is safe but slow (~4 MB/s). Artisan files are almost JSON: they differ in
quoting and in True/False/None. We rewrite those tokens and hand the result to a C JSON parser,
which is an order of magnitude faster. Anything the rewrite cannot express as JSON (tuples,
sets, `\\x` escapes that JSON lacks, Python-only number forms) falls back to
`ast.literal_eval`, so the accepted language and the values are exactly those of Python
literals; nothing is ever evaluated.
"""
from __future__ import annotations

import ast
import json
import re

import orjson

# A quoted string (either quote, with escapes) or one of Python's three literal keywords.
# Strings are matched first as the scan goes left to right, so keywords inside them are untouched.
_TOKEN = re.compile(
    r"'[^'\\]*(?:\\.[^'\\]*)*'" r'|"[^"\\]*(?:\\.[^"\\]*)*"' r"|True|False|None"
)
_KEYWORDS = {"True": "true", "False": "false", "None": "null"}
_ESCAPED_QUOTE_OR_SLASH = re.compile(r"""\\['"/]""")  # one regex scan: several times faster than `in` thrice


def _to_json_token(match) -> str:
    token = match.group(0)
    quote = token[0]
    if quote == "'":
        if "\\" in token or '"' in token:
            return json.dumps(ast.literal_eval(token))
        return '"' + token[1:-1] + '"'
    if quote == '"':
        return json.dumps(ast.literal_eval(token)) if "\\" in token else token
    return _KEYWORDS[token]


def _quotes_swapped(text: str) -> str | None:
    """JSON text for the common case, without a per-token callback: when no string is
    double-quoted and the text has no escaped quote and no `\\/` (which JSON would read
    differently), splitting on single quotes alternates exactly between outside and inside of
    strings."""
    if _ESCAPED_QUOTE_OR_SLASH.search(text):
        return None
    parts = text.split("'")
    if len(parts) % 2 == 0:
        return None
    strings = parts[1::2]
    inside = "".join(strings)
    if '"' in text:
        # The split is exact up to the first double-quoted string, whose opening quote then
        # lies outside: if none does, every double quote is a character inside a string.
        if '"' in "".join(parts[0::2]):
            return None
        strings = [s.replace('"', '\\"') for s in strings]
    elif not any(keyword in inside for keyword in _KEYWORDS):
        return _json_keywords(text).replace("'", '"')  # no string changes: one pass suffices
    # Strings need escaping or hold keywords the rewrite must not touch: put them back in.
    # The rewrite adds and removes no quote, so its text splits into the same parts.
    converted_parts = _json_keywords(text).split("'")
    converted_parts[1::2] = strings
    return '"'.join(converted_parts)


def _json_keywords(text: str) -> str:
    return text.replace("True", "true").replace("False", "false").replace("None", "null")


def loads(text: str) -> object:
    """Parse Python-literal text. Raises SyntaxError/ValueError/MemoryError/RecursionError
    (from `ast.literal_eval`) for text that is not a valid literal."""
    try:
        fast = _quotes_swapped(text)
        if fast is not None:
            try:
                return orjson.loads(fast)
            except orjson.JSONDecodeError:
                pass  # e.g. a Python-only escape inside a string: try the token rewrite
        return orjson.loads(_TOKEN.sub(_to_json_token, text))
    except (orjson.JSONDecodeError, SyntaxError, ValueError, RecursionError):
        # Not expressible as JSON after the rewrite: let Python's own literal parser decide.
        return ast.literal_eval(text)
