"""Fast, safe reading of Python-literal text (the serialisation Artisan uses for `.alog`).

`ast.literal_eval` is safe but slow (~4 MB/s). Artisan files are almost JSON: they differ in
quoting and in True/False/None. We rewrite those tokens and hand the result to a C JSON parser,
which is an order of magnitude faster. Anything the rewrite cannot express as JSON (tuples,
sets, `\\x` escapes that JSON lacks, Python-only number forms) falls back to
`ast.literal_eval`, so the accepted language and the values are exactly those of Python
literals; nothing is ever evaluated. That exact parser takes about 100 bytes of memory per byte
of text, so it only reads texts up to ``MAX_EXACT_PARSE_CHARS`` (real profiles are < 100 kB).

Errors are ``LiteralError``s whose message names the byte offset and the offending token.
"""
from __future__ import annotations

import ast
import json
import re
from collections.abc import Mapping

import numpy as np
import orjson
import simdjson

# A quoted string (either quote, with escapes), one of Python's three literal keywords, or one of
# JSON's (not Python: the rewrite refuses it). Strings are matched first as the scan goes left to
# right, so keywords inside them are untouched.
_TOKEN = re.compile(
    r"'[^'\\]*(?:\\.[^'\\]*)*'" r'|"[^"\\]*(?:\\.[^"\\]*)*"' r"|True|False|None|true|false|null"
)
_KEYWORDS = {"True": "true", "False": "false", "None": "null"}
_ESCAPED_QUOTE_OR_SLASH = re.compile(r"""\\['"/]""")  # one regex scan: several times faster than `in` thrice
MAX_EXACT_PARSE_CHARS = 2_000_000
# What a non-literal node is, for messages (anything else is named by its class).
_NODE_NAMES = {ast.Call: "function call", ast.Attribute: "attribute access", ast.Lambda: "lambda",
               ast.Subscript: "subscript", ast.BinOp: "arithmetic", ast.Compare: "comparison"}


class LiteralError(ValueError):
    """Text that is not a plain Python literal (or too large to read); the message says where."""


def _to_json_token(match) -> str:
    token = match.group(0)
    quote = token[0]
    if quote == "'":
        if "\\" in token or '"' in token:
            return json.dumps(ast.literal_eval(token))
        return '"' + token[1:-1] + '"'
    if quote == '"':
        return _double_quoted(token)
    if token not in _KEYWORDS:  # JSON's keyword outside a string: Python reads no such name
        raise ValueError(f"{token} is not a Python literal")
    return _KEYWORDS[token]


def _double_quoted(token: str) -> str:
    """A double-quoted Python string token as a JSON string: itself unless it has escapes."""
    return json.dumps(ast.literal_eval(token)) if "\\" in token else token


def _quotes_swapped(text: str) -> bytes | None:
    """JSON text (UTF-8) without a per-token callback, when no `\\/` (which JSON would read
    differently) is in the text: with escaped quotes spelled as \\u escapes, strings end at the
    next quote of their own kind. Double-quoted strings (Python writes one when the text holds an
    apostrophe) are passed on as they are; the spans between them are converted by `_swapped_bytes`."""
    if _ESCAPED_QUOTE_OR_SLASH.search(text):
        if "\\/" in text or "\\\\'" in text or '\\\\"' in text:
            return None  # \\/, or a quote after an escaped backslash: the token rewrite decides
        # (Python escapes a quote when a string holds both kinds.) Each backslash before a quote
        # is now a lone one, so it escapes the quote: \\u0027 / \\u0022 say the same in both languages.
        text = text.replace("\\'", "\\u0027").replace('\\"', "\\u0022")
    if '"' not in text:
        return _swapped_bytes(text)
    pieces: list[bytes] = []
    start = search = 0  # outside any string at both
    while (opening := text.find('"', search)) != -1:
        if text.count("'", search, opening) % 2:  # inside a single-quoted string: a character
            search = text.find("'", opening) + 1
            if not search:
                return None
            continue
        closing = text.find('"', opening + 1)
        span = _swapped_bytes(text[start:opening])
        if closing == -1 or span is None:
            return None
        pieces += (span, _double_quoted(text[opening : closing + 1]).encode())
        start = search = closing + 1
    span = _swapped_bytes(text[start:])
    return None if span is None else b"".join(pieces) + span


_QUOTE, _N = ord("'"), ord("N")
_LOWER = 0x20  # ASCII: a letter's lowercase form sets this bit
_ONE, _ULL = np.frombuffer(b"one", np.uint8), np.frombuffer(b"ull", np.uint8)
# bytes.translate table: 1 for a quote and for the letters Python's and JSON's keywords start
# with, 0 for every other byte (UTF-8 continuation bytes included); read as booleans
_MARKED = bytes(byte in b"'TFNtfn" for byte in range(256))


def _swapped_bytes(text: str) -> bytes | None:
    """JSON (UTF-8) for text that starts and ends outside strings and whose strings are all
    single-quoted, without escaped quotes, in a few passes over its bytes rather than one string
    object per part. A byte is outside strings where an even number of single quotes precede it.
    Outside strings, True and False become JSON by their first letter alone (T and F start nothing
    else JSON reads) and None by its last three letters; an N followed by anything else leaves
    the text to the general path, as does a t, f or n outside strings (JSON's true/false/null,
    which Python does not read). A double quote can only be a character of a string: escaped.
    One `translate` finds the quotes and those letters; the rest works on their few positions
    (a numpy call per step costs about as much as a pass over a few kB, so passes were merged)."""
    data = bytearray(text, "utf-8")  # writable: T/F/N and None's tail are rewritten in place
    positions = np.frombuffer(data.translate(_MARKED), np.bool_).nonzero()[0]
    data = np.frombuffer(data, dtype=np.uint8)
    found = data[positions]
    quote = found == _QUOTE
    inside = np.logical_xor.accumulate(quote)  # after an odd number of quotes (a quote's own included)
    if inside.size and inside[-1]:
        return None  # a string left open
    outside = ~(inside | quote)  # the letters outside strings
    letters, found = positions[outside], found[outside]
    nones = letters[found == _N]
    lower = (found & _LOWER) != 0
    # the only lowercase ones allowed are the n of each None ("None"[2]) (compared without
    # np.array_equal, whose Python-level checks cost more than the comparison)
    lowercase = letters[lower]
    if lowercase.size != nones.size or np.count_nonzero(lowercase - nones != 2):
        return None
    if nones.size:
        tails = nones[:, None] + np.arange(1, 4)
        if tails[-1, -1] >= data.size or not (data[tails] == _ONE).all():
            return None
        data[tails] = _ULL
    data[letters[~lower]] += 32  # T -> t, F -> f, N -> n
    converted = data.tobytes()
    if b'"' in converted:
        converted = converted.replace(b'"', b'\\"')
    return converted.replace(b"'", b'"')


def loads(text: str, number_lists: Mapping[str, bool] | None = None) -> object:
    """Parse Python-literal text; raise ``LiteralError`` for text that is not a plain literal.

    ``number_lists``: keys of a top-level dict whose values, where they are non-empty lists of
    numbers (True: lists of such lists), come back as float64 arrays (or lists of them)."""
    if number_lists:
        found = _with_number_lists(text, number_lists)
        if found is not None:
            return found
    try:
        fast = _quotes_swapped(text)
        if fast is not None:
            try:
                return orjson.loads(fast)
            except orjson.JSONDecodeError:
                pass  # e.g. a Python-only escape inside a string: try the token rewrite
        return orjson.loads(_TOKEN.sub(_to_json_token, text))
    except (orjson.JSONDecodeError, SyntaxError, ValueError, RecursionError):
        pass  # not expressible as JSON after the rewrite: Python's own literal parser decides
    if not text.strip():
        raise LiteralError("empty text: no literal at all")
    if len(text) > MAX_EXACT_PARSE_CHARS:
        raise LiteralError(
            f"{len(text.encode())} bytes that are not JSON-like (tuples, sets, Python-only escapes or numbers) "
            f"are too large for the exact parser (limit {MAX_EXACT_PARSE_CHARS} characters)"
        )
    try:
        return ast.literal_eval(text)
    except SyntaxError as exc:
        raise LiteralError(_syntax_message(text, exc)) from None
    except ValueError as exc:  # a well-formed expression that is not a literal, e.g. a call
        raise LiteralError(_not_literal_message(text) or str(exc)) from None
    except RecursionError:
        raise LiteralError("literal nested too deeply") from None
    except MemoryError:
        raise LiteralError("literal too large to parse in memory") from None


# stands in for a list cut out of the text; DEL is a character no Artisan file holds, and one
# character is searched for fast
_PLACEHOLDER = "\x7fpyliteral-number-list:"
# a list whose first item is a list (JSON whitespace between, as simdjson reads it)
_LIST_OF_LISTS = re.compile(r"\[[ \t\n\r]*\[")


def _with_number_lists(text: str, keys: Mapping[str, bool]) -> dict | None:
    """The top-level dict of `text`, with the number lists of `keys` read on their own: each is
    found by its key as Python writes a dict (`'key': [`), parsed as JSON and replaced in the text
    by a placeholder string before the rest is parsed, so the rewrite to JSON never passes over
    the bulk of an Artisan file (its sample lists). A cut only stands when the parsed dict holds
    exactly its placeholder under its key: a match inside a string or a nested dict, or a later
    duplicate key, gives another value there. None when the shortcut does not apply."""
    if _PLACEHOLDER[0] in text:
        return None
    cuts = []  # (start, end, key, value)
    after = 0  # keys in the order Artisan writes them are found in one pass
    for key, nested in keys.items():
        start = text.find(f"'{key}': [", after)
        if start == -1 and after:
            start = text.find(f"'{key}': [")
        if start == -1:
            continue
        start += len(key) + 4  # at the list's opening bracket
        if nested and not _LIST_OF_LISTS.match(text, start):
            # `[]` (no extra device) or a first item that is no list: `_number_list` would
            # refuse it, after a search for "]]" that can run to the end of the text
            continue
        end = text.find("]]" if nested else "]", start)
        if end == -1:
            continue
        end += 2 if nested else 1
        value = _number_list(text[start:end], nested)
        if value is not None:
            cuts.append((start, end, key, value))
            after = end
    if not cuts:
        return None
    cuts.sort(key=lambda cut: cut[0])
    pieces, position = [], 0
    for start, end, key, _ in cuts:
        if start < position:
            return None
        pieces += (text[position:start], f"'{_PLACEHOLDER}{key}'")
        position = end
    pieces.append(text[position:])
    try:
        result = loads("".join(pieces))
    except LiteralError:
        return None  # the whole text decides what the error says
    if not isinstance(result, dict):
        return None
    for _, _, key, value in cuts:
        if result.get(key) != _PLACEHOLDER + key:
            return None
        result[key] = value
    return result


def _number_list(text: str, nested: bool) -> np.ndarray | list[np.ndarray] | None:
    """`text`, a non-empty list of numbers (or of such lists, when `nested`), as float64 array(s)
    holding what Python reads, or None when it is anything else.

    simdjson parses it and copies the numbers out as doubles, with no Python object per number
    (a third of the CPU of orjson + np.fromiter). Its numbers are Python's: decimals correctly
    rounded, integers converted as float() does; it refuses an integer beyond 64 bits, and
    ``as_buffer`` refuses anything but numbers. It flattens a deeper list: the text ends at the
    first "]" or "]]", so a deeper list is either cut unbalanced (no JSON) or, as ``[[1, [2]]``
    of ``[[1, [2]]]``, cut short, and then the text left around the cut does not parse and
    `_with_number_lists` drops every cut."""
    document = None
    try:
        document = simdjson.Parser().parse(text)  # a parser per call: cheap, and nothing shared
        items = document if nested else [document]
        if not (isinstance(document, simdjson.Array) and len(document)
                and all(isinstance(item, simdjson.Array) and len(item) for item in items)):
            return None
        arrays = [np.frombuffer(item.as_buffer(of_type="d"), dtype=float) for item in items]
    except (ValueError, TypeError, RuntimeError):  # not JSON, not numbers, or integers too large
        return None
    finally:
        del document  # before the parser goes: its arrays refer to it
    return arrays if nested else arrays[0]


def _byte_offset(text: str, lineno: int, char_in_line: int) -> int:
    """Byte offset in the UTF-8 text of character `char_in_line` (0-based) of line `lineno` (1-based)."""
    lines = text.splitlines(keepends=True)
    before = "".join(lines[: max(lineno - 1, 0)])
    line = lines[lineno - 1] if 0 < lineno <= len(lines) else ""
    return len(before.encode()) + len(line[:char_in_line].encode())


def _token_at(data: bytes, offset: int) -> str:
    token = data[offset : offset + 24].decode("utf-8", "replace")
    return repr(token) + ("..." if offset + 24 < len(data) else "")


def _syntax_message(text: str, exc: SyntaxError) -> str:
    data = text.encode()
    if "Exceeds the limit" in exc.msg:  # an integer with more digits than Python converts
        digits = exc.msg.split("value has ")[-1].split(" digits")[0]
        return f"an integer literal of {digits} digits: too large to be a number"
    offset = _byte_offset(text, exc.lineno or 1, max((exc.offset or 1) - 1, 0))
    if "was never closed" in exc.msg or "unexpected EOF" in exc.msg:
        return f"text ends early (after {len(data)} bytes): {exc.msg} (opened at byte {offset})"
    return f"{exc.msg} at byte {offset}, near {_token_at(data, offset)}"


def _not_literal_message(text: str) -> str | None:
    """Where the first non-literal expression is (ast column offsets are UTF-8 byte offsets)."""
    tree = ast.parse(text, mode="eval")
    allowed = (ast.Expression, ast.Constant, ast.Dict, ast.List, ast.Tuple, ast.Set, ast.Load,
               ast.UnaryOp, ast.USub, ast.UAdd)
    for node in ast.walk(tree):
        if isinstance(node, allowed):
            continue
        kind = _NODE_NAMES.get(type(node)) or ("name" if isinstance(node, ast.Name) else type(node).__name__)
        lines = text.splitlines(keepends=True)
        offset = len("".join(lines[: node.lineno - 1]).encode()) + node.col_offset
        segment = ast.get_source_segment(text, node) or ""
        shown = segment if len(segment) <= 40 else segment[:37] + "..."
        return f"{kind} {shown!r} at byte {offset}"
    return None
