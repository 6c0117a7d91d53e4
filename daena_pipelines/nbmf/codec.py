"""NBMF: a memory record (JSON-compatible value + record class) in an authenticated binary envelope.

Envelope v6, byte by byte::

    u8                   codec version (high 4 bits, 6) | record class code (low 4 bits)
    u8                   flags: bit 0 fidelity (0 lossless, 1 semantic), bits 1-3 JSON type,
                         bit 4 body length follows, bit 5 inherited-members body,
                         bit 6 series body, bit 7 bare payload
    varint               dictionary version (0 = no dictionary; id = class code * 1000 + version)
    varint               original length: bytes of the original record's canonical JSON
    [varint]             body length (flag bit 4: only when the body is longer than the original)
    8 bytes              tag: SHA-256 (first 8 bytes) over body || header || envelope length (u64 LE)
    rest                 payload: magic-less zstd frame of the body (no checksum, no content size);
                         bare (flag bit 7): only the block of a frame that is one compressed
                         block with a window of at most 16 KiB, the 5 bytes before it (frame
                         header, window, block header) rebuilt on decode from the payload length

The tag covers the body the payload decompresses to, every header byte and the envelope's
total length (so trailing or missing bytes fail: zstd ignores bytes after its frame), so a
flipped fidelity bit, class, dictionary, length or JSON type, a spliced payload or appended
bytes all raise ``SignatureMismatch`` (or another ``NbmfError``); decoding never returns unverified data and never raises anything
but ``NbmfError``. The body is a deterministic function of the record (and of the fidelity), so
a tag over the body vouches for what decoding returns. Tag length and miss probability: docs/nbmf.md.

Bodies:
- lossless JSON: the record's canonical JSON (compact UTF-8, sorted keys, orjson);
- inherited-members lossless JSON (flag bit 5): the canonical JSON of the record with the
  members its rows repeat from it (``RecordClass.inherited``: a command's audit rows repeat its
  ``proposal_id`` and ``source``) left out of the rows (``_Inherited``);
- semantic series (flag bit 6; classes with the ``series`` rule): the record without its
  channel lists as canonical JSON, then each channel rounded to its declared grid, as
  delta-coded integers in byte planes;
- semantic text: canonical JSON of the normalised record.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass, replace
from hashlib import sha256
from collections.abc import Callable
from operator import itemgetter

import numpy as np
import orjson
import zstandard

from daena_pipelines.config import Settings
from daena_pipelines.nbmf.classes import CLASS_BY_CODE, SERIES_STEPS, normalize_text, record_class
from daena_pipelines.nbmf.dictionaries import DictionaryStore
from daena_pipelines.nbmf.errors import EnvelopeError, NbmfError, SignatureMismatch, UnknownDictionary

__all__ = ["EnvelopeError", "NbmfError", "SignatureMismatch", "UnknownDictionary"]

CODEC_VERSION = 6
LOSSLESS, SEMANTIC = "lossless", "semantic"
JSON_TYPES = ("object", "array", "string", "number", "boolean", "null")
# first byte of canonical JSON per type: a decoded JSON body must be of the type the header names
# the Python types a decoded JSON value of each type has: a decoded body must be of the type the header names
_PY_TYPES = ((dict,), (list,), (str,), (int, float), (bool,), (type(None),))  # in JSON_TYPES order
TAG_BYTES = 8  # 64 bits: why this is enough for an integrity check, docs/nbmf.md
MAX_LENGTH = 1 << 30  # no record body beyond 1 GiB
DIRECT_DECOMPRESS_BYTES = 1 << 20  # claimed bodies up to this size are decompressed in one call
FLAG_SEMANTIC, FLAG_BODY_LENGTH, FLAG_INHERITED, FLAG_SERIES, FLAG_BARE = 1, 16, 32, 64, 128
SERIES_CHANNELS = tuple(SERIES_STEPS)  # bit i of the channel mask = SERIES_CHANNELS[i]
MAX_GRID_VALUE = 2**52  # grid integers beyond this would not survive int64 deltas and float division


def canonical_json(value) -> bytes:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def json_type(value) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, str):
        return "string"
    if isinstance(value, bool):
        return "boolean"
    if value is None:
        return "null"
    return "number"


SMALL_BODY_BYTES = 4096
# flags bits 1-3 by exact type (bool before int: True is an int in Python, not in JSON)
_TYPE_FLAGS = {dict: 0, list: 2, str: 4, int: 6, float: 6, bool: 8, type(None): 10}
# zstd parameters that replace the level's own for small / large bodies (measured, docs/nbmf.md):
# small bodies search their 16 KiB dictionary greedily, 64 candidates deep (level 9's tables
# otherwise): 2.3x as fast as level 9's btlazy2 for 3.7 % more payload; large ones keep
# level 1 with a 4,096-entry hash table, which zstd copies from the digested dictionary on
# every call (level 1's 8,192 entries cost ~20 us more per telemetry record, same size), and
# matches of at least 7 bytes (8 % faster than 6 for 0.4 % more payload)
SMALL_TUNING = (("strategy", zstandard.STRATEGY_GREEDY), ("search_log", 6))
LARGE_TUNING = (("hash_log", 12), ("min_match", 7))


@dataclass(frozen=True)
class CodecSettings:
    """zstd levels, parameters replacing the levels' own, and whether trained dictionaries are used.

    Small bodies get level 9's tables with a greedy search (``SMALL_TUNING``), large ones level 1
    with a small hash table (``LARGE_TUNING``). ``DAENA_NBMF_ZSTD_LEVEL`` sets both levels (plain,
    without the tuning), ``DAENA_NBMF_NO_DICT=1`` turns dictionaries off (both exist to show what
    they are worth).
    """

    level_small: int = 9
    level_large: int = 1
    use_dictionaries: bool = True
    tuning_small: tuple = SMALL_TUNING
    tuning_large: tuple = LARGE_TUNING

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> "CodecSettings":
        """From the project's settings (read now when not given)."""
        settings = settings or Settings.from_env()
        return cls(use_dictionaries=not settings.nbmf_no_dict).with_levels(settings.nbmf_zstd_level)

    def with_levels(self, small: int | None, large: int | None = None) -> "CodecSettings":
        """These plain zstd levels (one for both when ``large`` is None), without the tuning;
        unchanged when ``small`` is None."""
        if small is None:
            return self
        return replace(self, level_small=small, level_large=small if large is None else large, tuning_small=(), tuning_large=())

    def describe(self) -> dict:
        return {
            "level_small": self.level_small, "level_large": self.level_large, "use_dictionaries": self.use_dictionaries,
            "tuning_small": dict(self.tuning_small), "tuning_large": dict(self.tuning_large),
        }


@dataclass(slots=True)
class Meta:
    codec_version: int
    fidelity: str
    json_type: str
    record_class: str
    dict_id: int
    original_length: int
    body_length: int  # the most the payload may decompress to: the body length, or the original's
    inherited: bool
    series: bool
    tag: bytes
    header_length: int  # bytes before the tag


def _varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n < 0x4000:  # every length of a record < 16 KiB
        return bytes((n & 0x7F | 0x80, n >> 7))
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    if pos + 1 < len(data):  # one or two bytes: every header field of a record < 16 KiB
        if data[pos] < 0x80:
            return data[pos], pos + 1
        if data[pos + 1] < 0x80:
            return data[pos] & 0x7F | data[pos + 1] << 7, pos + 2
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 35:  # 5 bytes hold every length below MAX_LENGTH
            raise EnvelopeError("truncated or malformed varint in NBMF header")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


_CLASS_NAMES = {code: rc.name for code, rc in CLASS_BY_CODE.items()}
_SERIES_CLASSES = {code for code, rc in CLASS_BY_CODE.items() if rc.semantic == "series"}


def _head_problem(first: int, flags: int) -> str | None:
    """What is wrong with an envelope's first two bytes (version|class, flags), or None."""
    class_code = first & 15
    if first >> 4 != CODEC_VERSION:
        return f"not an NBMF v{CODEC_VERSION} envelope (version field {first >> 4})"
    if class_code not in _CLASS_NAMES or (flags >> 1 & 7) >= len(JSON_TYPES):
        return f"NBMF header has unknown class code {class_code} or flags {flags:#x}"
    if flags & FLAG_INHERITED and (flags & (FLAG_SERIES | FLAG_SEMANTIC) or flags >> 1 & 7 or CLASS_BY_CODE[class_code].inherited is None):
        return "NBMF header names an inherited-members body for what is not a lossless object of a class with inherited members"
    if bool(flags & FLAG_SERIES) != bool(flags & FLAG_SEMANTIC and class_code in _SERIES_CLASSES):
        return "NBMF header: a series body is exactly what a semantic record of a series class has"
    return None


# every valid (version|class, flags) pair, so decoding checks the first two bytes with one lookup
_VALID_HEADS = frozenset(
    bytes((first, flags))
    for first in range(CODEC_VERSION << 4, (CODEC_VERSION + 1) << 4)
    for flags in range(256)
    if _head_problem(first, flags) is None
)


def _head(envelope: bytes) -> tuple[int, int, int, int]:
    """(class code, flags, dictionary id, where the original length starts) from the first bytes,
    checked; remembered in ``_HEADS`` when the dictionary version is one byte."""
    if type(envelope) is not bytes:
        raise EnvelopeError(f"an NBMF envelope is bytes, not {type(envelope).__name__}")
    if len(envelope) < 4:
        raise EnvelopeError("not an NBMF envelope (shorter than a header)")
    if envelope[:2] not in _VALID_HEADS:
        raise EnvelopeError(_head_problem(envelope[0], envelope[1]))
    dict_version, pos = _read_varint(envelope, 2)
    if dict_version >= 1000:
        raise EnvelopeError(f"NBMF dictionary version {dict_version} out of bounds")
    class_code = envelope[0] & 15
    head = class_code, envelope[1], class_code * 1000 + dict_version if dict_version else 0, pos
    if pos == 3:
        _HEADS[envelope[:3]] = head
    return head


_HEADS: dict[bytes, tuple[int, int, int, int]] = {}  # at most every valid first three bytes: 156 heads x 128 versions


def _header(envelope: bytes) -> tuple[int, int, int, int, int, int]:
    """(class code, flags, dictionary id, original length, most bytes the body may have, header
    length), checked for shape and bounds, not yet for authenticity (``decode`` does that)."""
    head = _HEADS.get(envelope[:3]) if type(envelope) is bytes else None
    class_code, flags, dict_id, pos = head or _head(envelope)
    length, pos = _read_varint(envelope, pos)
    body_length, pos = _read_varint(envelope, pos) if flags & FLAG_BODY_LENGTH else (length, pos)
    if length > MAX_LENGTH or body_length > MAX_LENGTH:
        raise EnvelopeError(f"NBMF header lengths {length}/{body_length} out of bounds")
    if len(envelope) < pos + TAG_BYTES:
        raise EnvelopeError("truncated NBMF tag")
    return class_code, flags, dict_id, length, body_length, pos


def read_meta(envelope) -> Meta:
    """The header, checked for shape and bounds (not yet for authenticity: ``decode`` does that)."""
    if isinstance(envelope, (bytearray, memoryview)):
        envelope = bytes(envelope)
    class_code, flags, dict_id, length, body_length, pos = _header(envelope)
    return Meta(
        envelope[0] >> 4, SEMANTIC if flags & FLAG_SEMANTIC else LOSSLESS, JSON_TYPES[flags >> 1 & 7], _CLASS_NAMES[class_code],
        dict_id, length, body_length, bool(flags & FLAG_INHERITED), bool(flags & FLAG_SERIES), envelope[pos : pos + TAG_BYTES], pos,
    )


_U64 = struct.Struct("<Q").pack
# the tag's input after the body on decode's straight path: the envelope's 5 header bytes ("5s"
# packs the first 5 bytes of the whole envelope) and its length, in one call instead of a slice,
# a pack and a concatenation
_HEADER5_U64 = struct.Struct("<5sQ").pack
_HEADER5 = struct.Struct("<5B").pack  # encode: version|class, flags, dictionary version, two-byte original length
_HEADER6_U64 = struct.Struct("<6sQ").pack  # the same for a three-byte original length (16 KiB - 1 MiB)
_sha256 = sha256


def _tag_mismatch(class_code: int) -> SignatureMismatch:
    return SignatureMismatch(f"NBMF tag mismatch for a {_CLASS_NAMES[class_code]} envelope: header or content is corrupt")


def _tag(body: bytes, header: bytes, envelope_length: int) -> bytes:
    """SHA-256 over body || header || envelope length (u64 LE), first ``TAG_BYTES``. The body
    first: a large one is hashed straight from its buffer (behind a prefix, OpenSSL copies it
    block by block: 3 % of a telemetry decode); a small one in a single call."""
    if len(body) < SMALL_BODY_BYTES:
        return sha256(body + header + _U64(envelope_length)).digest()[:TAG_BYTES]
    h = sha256(body)
    h.update(header + _U64(envelope_length))
    return h.digest()[:TAG_BYTES]


# --- inherited members ----------------------------------------------------------------------
#
# A class may declare a top-level list of rows that repeat some of the record's own members
# (``RecordClass.inherited``: every audit row of a command carries the proposal's id and source).
# When every row is an object holding each of them with the record's value, the body is the
# canonical JSON of the record with those members left out of the rows, and decoding sets them
# again. Only string values (equal strings have equal JSON; the one immutable object decoding
# gives every row is what a parse would give) and only rows that keep a member of their own (so
# each member put back adds exactly ``"key":"value"`` and one comma to the canonical JSON, and
# the encoder gets the original's length by arithmetic instead of serialising the record twice).


@dataclass(frozen=True, slots=True)
class _Inherited:
    rows: str  # the top-level list of rows
    members: tuple[str, ...]  # the string members every row repeats from the record
    get: Callable  # the members' values of an object, as a tuple (KeyError if one is missing)
    key_bytes: int  # what each row's members add to the canonical JSON beside their values: "key": and a comma each

    @classmethod
    def of(cls, spec: tuple[str, tuple[str, ...]] | None) -> "_Inherited | None":
        if spec is None:
            return None
        rows, members = spec
        get = itemgetter(*members) if len(members) > 1 else lambda value, key=members[0]: (value[key],)
        return cls(rows, members, get, sum(len(canonical_json(k)) + 2 for k in members))

    def body(self, record: dict) -> tuple[bytes, int] | None:
        """(the inherited-members body, the original's length), or None when the record does not
        qualify: no rows, a row that is not an object, lacks a member, holds another value or has
        nothing else, a member that is not a string."""
        rows = record.get(self.rows)
        if type(rows) is not list or not rows:
            return None
        members, get = self.members, self.get  # locals: read once per row and member otherwise
        try:
            values = get(record)
            kept = []
            for row in rows:  # plain loops: in 3.11 a generator or comprehension is a frame more per call
                if type(row) is not dict or len(row) <= len(members) or get(row) != values:
                    return None
                row = row.copy()
                for key in members:
                    if type(row.pop(key)) is not str:  # equal to the record's string, but not one (a str subclass's __eq__ can lie)
                        return None
                kept.append(row)
        except KeyError:  # a member missing at the top level or in a row
            return None
        added = self.key_bytes
        for value in values:
            if type(value) is not str:
                return None
            added += len(orjson.dumps(value))
        body = orjson.dumps({**record, self.rows: kept}, option=orjson.OPT_SORT_KEYS)
        return body, len(body) + len(rows) * added

    def put_back(self, body: bytes, length: int) -> dict:
        """The record of an inherited-members body, each row given the record's members (after
        its own: a JSON object's members have no order, canonical JSON sorts them). Checked for
        what the header and the encoder promise: rows that are objects, string members, a body
        shorter than the original (the exact length would take an ``orjson.dumps`` of each
        member: cold code inside the benchmark's interleaving; measured, docs/nbmf.md)."""
        try:
            record = orjson.loads(body)
            rows = record[self.rows]
            shared = {}
            for key in self.members:  # a plain loop: in 3.11 a comprehension or zip is a frame or an object more per call
                shared[key] = value = record[key]
                if type(value) is not str:
                    raise TypeError(f"member {key!r} is not a string")
            if type(rows) is not list:  # an empty object or string has no row to fail on below
                raise TypeError(f"rows are a {type(rows).__name__}, not a list")
            for row in rows:
                row |= shared  # in place for an object, TypeError for any other JSON value; no method call per row
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise EnvelopeError(f"NBMF inherited-members body is not what the encoder writes ({type(exc).__name__}: {exc})") from exc
        if len(body) >= length:
            raise EnvelopeError("NBMF inherited-members body is not shorter than the original length its header names")
        return record


_INHERITED = {code: _Inherited.of(rc.inherited) for code, rc in CLASS_BY_CODE.items()}


# --- series bodies --------------------------------------------------------------------------


def normalize_strings(value):
    """The text rule applied to every string in a JSON value (keys included)."""
    if isinstance(value, str):
        return normalize_text(value)
    if isinstance(value, list):
        return [normalize_strings(v) for v in value]
    if isinstance(value, dict):
        return {normalize_text(k): normalize_strings(v) for k, v in value.items()}
    return value


_SERIES_ITEM_TYPES = {int, float, type(None)}  # exact types: bool is not a number here


def _is_numeric_series(values) -> bool:
    return isinstance(values, list) and set(map(type, values)) <= _SERIES_ITEM_TYPES


def _scale(channel: str) -> int:
    return round(1 / SERIES_STEPS[channel][0])


def _pack_ints(q: np.ndarray) -> bytes:
    """Delta-code (order 1 or 2, whichever leaves smaller residuals), zigzag, split into byte
    planes (all low bytes, then all next bytes...) so zstd sees long runs of zero high bytes."""
    residuals = [np.diff(q, n=order, prepend=np.zeros(order, dtype=np.int64)) for order in (1, 2)]
    order = 1 + int(np.abs(residuals[1]).sum() < np.abs(residuals[0]).sum())
    residual = residuals[order - 1]
    zigzag = ((residual << 1) ^ (residual >> 63)).astype(np.uint64)
    peak = int(zigzag.max()) if zigzag.size else 0
    width = 1 if peak < 1 << 8 else 2 if peak < 1 << 16 else 4 if peak < 1 << 32 else 8
    return bytes([order, width]) + zigzag.astype(f"<u{width}").view(np.uint8).reshape(-1, width).T.tobytes()


def _unpack_ints(data: bytes, pos: int, n: int) -> tuple[np.ndarray, int]:
    order, width = data[pos], data[pos + 1]
    pos += 2
    planes = np.frombuffer(data, dtype=np.uint8, count=n * width, offset=pos).reshape(width, n).T
    zigzag = np.ascontiguousarray(planes).view(f"<u{width}").reshape(n).astype(np.int64)
    q = (zigzag >> 1) ^ -(zigzag & 1)
    for _ in range(order):
        q = np.cumsum(q)
    return q, pos + n * width


def _series_arrays(points) -> dict[str, np.ndarray]:
    """The channels that can go on their grid: numeric lists small enough for exact int64 grid
    values (anything else stays in the exact JSON part)."""
    arrays = {}
    for channel in SERIES_CHANNELS:
        values = points.get(channel) if isinstance(points, dict) else None
        if _is_numeric_series(values):
            raw = np.array(values, dtype=np.float64)  # None -> NaN
            finite = raw[np.isfinite(raw)]
            if not finite.size or np.abs(finite).max() * _scale(channel) < MAX_GRID_VALUE:
                arrays[channel] = raw
    return arrays


def _encode_series(record) -> bytes:
    """Semantic body of a record with a ``points`` object of channel lists (any other record:
    its JSON with an empty channel mask)."""
    points = record.get("points") if isinstance(record, dict) else None
    arrays = _series_arrays(points)
    channels = list(arrays)
    rest = record
    if channels:
        rest = {**record, "points": {k: v for k, v in points.items() if k not in channels}}
    rest_json = canonical_json(rest)
    mask = sum(1 << SERIES_CHANNELS.index(c) for c in channels)
    n = len(points[channels[0]]) if channels else 0
    body = [_varint(len(rest_json)), rest_json, bytes([mask])]
    if channels:
        if any(len(points[c]) != n for c in channels):
            raise ValueError("telemetry channels have different lengths")
        body.append(_varint(n))
    for channel in channels:
        raw = arrays[channel]
        missing = ~np.isfinite(raw)
        filled = raw
        if missing.any():  # carry the previous value through gaps so deltas stay small
            idx = np.where(missing, 0, np.arange(n))
            np.maximum.accumulate(idx, out=idx)
            filled = raw[idx]
            filled[~np.isfinite(filled)] = 0.0
        body.append(b"\x01" + np.packbits(missing).tobytes() if missing.any() else b"\x00")
        body.append(_pack_ints(np.rint(filled * _scale(channel)).astype(np.int64)))
    return b"".join(body)


def _decode_series(body: bytes) -> dict:
    rest_len, pos = _read_varint(body, 0)
    record = orjson.loads(body[pos : pos + rest_len])
    pos += rest_len
    mask = body[pos]
    pos += 1
    channels = [c for i, c in enumerate(SERIES_CHANNELS) if mask >> i & 1]
    if not channels:
        return record
    n, pos = _read_varint(body, pos)
    for channel in channels:
        has_missing = body[pos]
        pos += 1
        if has_missing:
            missing = np.unpackbits(np.frombuffer(body, np.uint8, (n + 7) // 8, pos), count=n)
            pos += (n + 7) // 8
        q, pos = _unpack_ints(body, pos, n)
        values = (q / _scale(channel)).tolist()
        if has_missing:
            for i in np.flatnonzero(missing).tolist():
                values[i] = None
        record["points"][channel] = values
    return record


# --- the codec ------------------------------------------------------------------------------


def lossless_body(record, class_name: str) -> tuple[bytes, bool, bytes]:
    """(the bytes a lossless envelope compresses, whether they are an inherited-members body, the
    original's canonical JSON). The body is what NBMF's dictionaries are trained on."""
    original = canonical_json(record)
    inherited = _INHERITED[record_class(class_name).code]
    found = inherited.body(record) if inherited is not None and type(record) is dict else None
    return (original, False, original) if found is None else (found[0], True, original)


def _body_rule(flags: int) -> tuple:
    """(whether the body's length is the original's, its decoder, the types the decoded value may
    have), by flags (an inherited-members body has its own, ``_Inherited.put_back``). The type is checked
    on the value: checking the body's first byte instead touched more objects, which in a call
    with cold caches cost more than the check itself (measured, docs/nbmf.md)."""
    if flags & FLAG_SERIES:
        return (False, _decode_series, _PY_TYPES[flags >> 1 & 7])  # any JSON type: one without points keeps its JSON
    return (not flags & FLAG_SEMANTIC, orjson.loads, _PY_TYPES[flags >> 1 & 7])


_BODY_RULES = {flags: _body_rule(flags) for flags in range(256) if flags >> 1 & 7 < len(JSON_TYPES)}
# parameters sized for >= 16 KiB (size log 14): the window must also reach into the dictionary; so every small body has the same
_SMALL_SIZE_LOG = 14
_SEARCH_PARAMETERS = ("window_log", "chain_log", "hash_log", "search_log", "min_match", "target_length", "strategy")


# NBMF writes frames without content size, checksum or dictionary id: frame header descriptor
# bits 7-5 and 3-0 zero (bit 4 is the single-segment flag)
_NBMF_FRAME_STARTS = frozenset((0, 0x10))
# A bare payload is the block of a frame with that descriptor (0), a window of at most 16 KiB
# (window descriptor <= 0x20: exponent 4, mantissa 0) and one compressed last block (block
# header: last 1, type 2, size = the rest). Decoding rebuilds the frame with a 16 KiB window:
# a larger window than the encoder's only allows longer offsets, it decodes the same block.
_BARE_WINDOW = 0x20
_BARE_BLOCK = 1 | 2 << 1  # last block, compressed
_MAX_BLOCK = 1 << 17  # zstd's largest block
_BARE_FRAME = _BARE_WINDOW << 8 | _BARE_BLOCK << 16  # the 5 bytes before the block, but the block size (bits 19-39)


class NbmfCodec:
    def __init__(self, store: DictionaryStore | None = None, settings: CodecSettings | None = None):
        self.store = store or DictionaryStore()
        self.settings = settings or CodecSettings.from_env()
        self._compressors: dict[tuple[int, int, int], zstandard.ZstdCompressor] = {}
        self._decompressors: dict[int, zstandard.ZstdDecompressor] = {}
        self._class_heads: dict[str, tuple] = {}
        self._decode_heads: dict[bytes, tuple] = {}  # first three bytes -> straight-path head, bare payloads
        self._large_heads: dict[bytes, tuple] = {}  # the same for full frames (telemetry)

    def _dict(self, dict_id: int):
        return self.store.get(dict_id) if dict_id else None

    def compress(self, dict_id: int, body: bytes) -> bytes:
        key = (dict_id, True, _SMALL_SIZE_LOG) if len(body) < SMALL_BODY_BYTES else (dict_id, False, max(_SMALL_SIZE_LOG, (len(body) - 1).bit_length()))
        return (self._compressors.get(key) or self.compressor(*key)).compress(body)

    def compressor(self, dict_id: int, small: bool, size_log: int) -> zstandard.ZstdCompressor:
        """Magic-less zstd frames without checksum, content size or dictionary id (the envelope
        has them); parameters sized for the body (the next power of two, ``size_log``), as plain
        zstd does: tables sized for large inputs cost more to reset than a small body costs to
        compress; then the settings' tuning for the body's size class."""
        key = dict_id, small, size_log
        if key not in self._compressors:
            s = self.settings
            level, tuning = (s.level_small, s.tuning_small) if small else (s.level_large, s.tuning_large)
            base = zstandard.ZstdCompressionParameters.from_level(level, source_size=1 << size_log)
            chosen = {name: getattr(base, name) for name in _SEARCH_PARAMETERS} | dict(tuning)
            params = zstandard.ZstdCompressionParameters(
                **chosen, format=zstandard.FORMAT_ZSTD1_MAGICLESS, write_content_size=0, write_dict_id=0, write_checksum=0
            )
            dictionary = None
            if dict_id:  # a private copy digested once for these parameters, else zstd reloads it per call
                dictionary = zstandard.ZstdCompressionDict(self.store.get(dict_id).as_bytes(), dict_type=zstandard.DICT_TYPE_FULLDICT)
                dictionary.precompute_compress(compression_params=params)
            self._compressors[key] = zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params)
        return self._compressors[key]

    def small_compressor(self, dict_id: int) -> zstandard.ZstdCompressor:
        """The compressor ``compress`` uses for every body under ``SMALL_BODY_BYTES``."""
        return self.compressor(dict_id, True, _SMALL_SIZE_LOG)

    def _decompressor(self, dict_id: int) -> zstandard.ZstdDecompressor:
        if dict_id not in self._decompressors:
            self._decompressors[dict_id] = zstandard.ZstdDecompressor(
                dict_data=self._dict(dict_id), format=zstandard.FORMAT_ZSTD1_MAGICLESS
            )
        return self._decompressors[dict_id]

    def _decompress(self, dict_id: int, payload: bytes, body_length: int) -> bytes:
        """At most ``body_length`` + 1 bytes: a large claimed length is read in chunks, so a
        corrupt length never becomes one huge allocation (zstd sizes its output buffer by it)."""
        # a frame claiming a content size would make zstd size its output by that claim instead
        # of by the header's length
        if not payload or payload[0] not in _NBMF_FRAME_STARTS:
            raise EnvelopeError("NBMF payload frame header is not the one NBMF writes")
        decompressor = self._decompressor(dict_id)
        if body_length <= DIRECT_DECOMPRESS_BYTES:
            return decompressor.decompress(payload, body_length)  # max_output_size, by position: a keyword costs the call a dict
        chunks, total = [], 0
        with decompressor.stream_reader(payload) as reader:
            while total <= body_length and (chunk := reader.read(DIRECT_DECOMPRESS_BYTES)):
                chunks.append(chunk)
                total += len(chunk)
        return b"".join(chunks)

    def dict_id(self, class_name: str) -> int:
        return self.store.current_id(class_name) if self.settings.use_dictionaries else 0

    def semantic_form(self, record, class_name: str):
        """What a semantic round trip of ``record`` returns (the declared rule applied)."""
        rule = record_class(class_name).semantic
        if rule == "text":
            return normalize_strings(record)
        if rule == "series":
            return _decode_series(_encode_series(record))
        raise ValueError(f"record class {class_name!r} is lossless-only; semantic encoding is not allowed")

    def _class_head(self, class_name: str) -> tuple:
        """(first header byte, dictionary id, its version, semantic rule, its inherited
        members or None, the small bodies' compress) of a class, kept: the codec encodes with the dictionary current at
        its first encode of the class and does not follow a later ``store.publish`` (train_dicts
        publishes; a new codec encodes with the new dictionary)."""
        if class_name not in self._class_heads:
            rc, dict_id = record_class(class_name), self.dict_id(class_name)
            small = self.small_compressor(dict_id).compress  # compress(), inline: no key tuple per call
            head = CODEC_VERSION << 4 | rc.code, dict_id, dict_id % 1000, rc.semantic, _INHERITED[rc.code], small
            self._class_heads[class_name] = head
        return self._class_heads[class_name]

    def encode(self, record, class_name: str, fidelity: str = LOSSLESS) -> bytes:
        first, dict_id, version, semantic, inherited, compress_small = self._class_heads.get(class_name) or self._class_head(class_name)
        flags = _TYPE_FLAGS.get(type(record))
        if flags is None:  # a subclass of a JSON type
            flags = JSON_TYPES.index(json_type(record)) << 1
        if fidelity == LOSSLESS:  # lossless_body, inline: most of a small record's time is per-call Python
            # a dict, not a subclass: itemgetter would call a defaultdict's __missing__ (a member added to the caller's record)
            if inherited is not None and type(record) is dict and (found := inherited.body(record)) is not None:
                body, n = found
                flags |= FLAG_INHERITED
            else:
                body = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
                n = len(body)
        elif fidelity == SEMANTIC and semantic == "text":
            n = len(canonical_json(record))
            body = canonical_json(normalize_strings(record))
            flags |= FLAG_SEMANTIC
        elif fidelity == SEMANTIC and semantic == "series":
            n = len(canonical_json(record))
            body = _encode_series(record)
            flags |= FLAG_SEMANTIC | FLAG_SERIES
        else:
            raise ValueError(f"record class {class_name!r} does not allow fidelity {fidelity!r}")
        if len(body) > n or n > MAX_LENGTH:  # a body longer than the original (a normalised text can be) has its own length
            if n > MAX_LENGTH or len(body) > MAX_LENGTH:
                raise ValueError(f"record of {n} bytes is beyond NBMF's {MAX_LENGTH}-byte bound")
            lengths = _varint(n) + _varint(len(body))
            flags |= FLAG_BODY_LENGTH
        elif 0x80 <= n < 0x4000 and version < 0x80:
            lengths = None  # the common five-byte header (two-byte length, as decode's straight path reads it): one pack below
        else:
            lengths = _varint(n)
        payload = compress_small(body) if len(body) < SMALL_BODY_BYTES else self.compress(dict_id, body)
        # the first block is the last one and compressed, in a window <= 16 KiB: the frame is that
        # block and nothing after it (no checksum), so its size is the rest; the block alone
        if payload[0] == 0 and payload[1] <= _BARE_WINDOW and payload[2] & 7 == _BARE_BLOCK:
            payload = payload[5:]
            flags |= FLAG_BARE
        if lengths is None:
            header = _HEADER5(first, flags, version, n & 0x7F | 0x80, n >> 7)
            if len(body) < SMALL_BODY_BYTES:  # _tag, inline, its suffix in one pack
                return header + _sha256(body + _HEADER5_U64(header, 5 + TAG_BYTES + len(payload))).digest()[:TAG_BYTES] + payload
        else:
            header = b"%c%c%b%b" % (first, flags, _varint(version), lengths)
        return header + _tag(body, header, len(header) + TAG_BYTES + len(payload)) + payload

    def decode(self, envelope: bytes):
        """The record; raises an ``NbmfError`` (and nothing else) unless every byte checks out."""
        head = self._decode_heads.get(envelope[:3]) if type(envelope) is bytes else None
        if head is not None and 15 < (size := len(envelope)) < _MAX_BLOCK and envelope[4] < 0x80 <= envelope[3]:
            # the common case in a straight line: a bare payload behind a known head (one-byte
            # dictionary version, no body length) and a two-byte original length (128 B - 16 KiB)
            inherited, decompress, exact_length, body_decoder, types, class_code = head
            length = envelope[3] & 0x7F | envelope[4] << 7
            try:  # the frame the block came from, with a 16 KiB window
                body = decompress((_BARE_FRAME | size - 13 << 19).to_bytes(5, "little") + envelope[13:], length)  # max_output_size
            except zstandard.ZstdError as exc:
                raise SignatureMismatch(f"NBMF payload does not decompress ({exc}); envelope is corrupt") from exc
            if _sha256(body + _HEADER5_U64(envelope, size)).digest()[:TAG_BYTES] != envelope[5:13]:  # _tag, inline
                raise _tag_mismatch(class_code)
        elif (
            (head := self._large_heads.get(envelope[:3]) if type(envelope) is bytes else None) is not None
            and len(envelope) > 14 and envelope[5] < 0x80 <= envelope[4] and 0x80 <= envelope[3] and envelope[14] in _NBMF_FRAME_STARTS
            and (length := envelope[3] & 0x7F | envelope[4] << 7 & 0x3F80 | envelope[5] << 14) <= DIRECT_DECOMPRESS_BYTES
        ):  # a full frame behind a known head and a three-byte original length (16 KiB - 1 MiB): telemetry
            inherited, decompress, exact_length, body_decoder, types, class_code = head
            try:
                body = decompress(envelope[14:], length)  # max_output_size
            except zstandard.ZstdError as exc:
                raise SignatureMismatch(f"NBMF payload does not decompress ({exc}); envelope is corrupt") from exc
            tag = _sha256(body)  # not behind a prefix: a large body is hashed from its own buffer (_tag)
            tag.update(_HEADER6_U64(envelope, len(envelope)))
            if tag.digest()[:TAG_BYTES] != envelope[6:14]:
                raise _tag_mismatch(class_code)
        else:
            class_code, flags, body, length = self._verified_body(envelope)
            inherited = _INHERITED[class_code] if flags & FLAG_INHERITED else None
            exact_length, body_decoder, types = _BODY_RULES[flags]
        if inherited is not None:  # a lossless object (the header says so), with its own checks
            return inherited.put_back(body, length)
        # the tag already vouches for header and body; these catch an encoder that wrote a wrong one
        if exact_length and len(body) != length:
            raise EnvelopeError("NBMF body does not have the original length its header names")
        try:
            value = body_decoder(body)
        except Exception as exc:  # noqa: BLE001 - only reachable through a wrongly written envelope
            raise EnvelopeError(f"NBMF body is not what its header describes ({type(exc).__name__}: {exc})") from exc
        if type(value) not in types:
            raise EnvelopeError(f"NBMF body is a JSON {type(value).__name__}, not the type its header names")
        return value

    def _verified_body(self, envelope) -> tuple[int, int, bytes, int]:
        """(class code, flags, body, original length) of any envelope, the header checked for shape
        and bounds and the body against the tag."""
        if type(envelope) is not bytes and isinstance(envelope, (bytearray, memoryview)):
            envelope = bytes(envelope)
        class_code, flags, dict_id, length, body_length, pos = _header(envelope)
        if flags & FLAG_BARE:  # the frame the block came from, with a 16 KiB window
            if len(envelope) - pos - TAG_BYTES >= _MAX_BLOCK:
                raise EnvelopeError("NBMF bare payload is longer than a zstd block")
            payload = (_BARE_FRAME | len(envelope) - pos - TAG_BYTES << 19).to_bytes(5, "little") + envelope[pos + TAG_BYTES :]
        else:
            payload = envelope[pos + TAG_BYTES :]
        try:
            body = self._decompress(dict_id, payload, body_length)
        except zstandard.ZstdError as exc:
            raise SignatureMismatch(f"NBMF payload does not decompress ({exc}); envelope is corrupt") from exc
        if _tag(body, envelope[:pos], len(envelope)) != envelope[pos : pos + TAG_BYTES]:
            raise _tag_mismatch(class_code)
        # straight next time: a one-byte dictionary version, no body length, and a bare payload
        # behind a two-byte original length or a full frame behind a three-byte one
        if envelope[2] < 0x80 and not flags & FLAG_BODY_LENGTH and pos == (5 if flags & FLAG_BARE else 6):
            heads = self._decode_heads if flags & FLAG_BARE else self._large_heads
            inherited = _INHERITED[class_code] if flags & FLAG_INHERITED else None
            heads[envelope[:3]] = (inherited, self._decompressor(dict_id).decompress, *_BODY_RULES[flags], class_code)
        return class_code, flags, body, length
