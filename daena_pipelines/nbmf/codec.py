"""NBMF: a memory record (JSON-compatible value + record class) in an authenticated binary envelope.

Envelope v4, byte by byte::

    u8                   codec version (high 4 bits, 4) | record class code (low 4 bits)
    u8                   flags: bit 0 fidelity (0 lossless, 1 semantic), bits 1-3 JSON type,
                         bit 4 body length follows, bit 5 JSON body with marker keys,
                         bit 6 series body; bit 7 zero
    varint               dictionary version (0 = no dictionary; id = class code * 1000 + version)
    varint               original length: bytes of the original record's canonical JSON
    [varint]             body length (flag bit 4: only when the body is longer than the original)
    8 bytes              tag: SHA-256 (first 8 bytes) over body || header || envelope length (u64 LE)
    rest                 payload: magic-less zstd frame of the body (no checksum, no content size)

The tag covers the body the payload decompresses to, every header byte and the envelope's
total length (so trailing or missing bytes fail: zstd ignores bytes after its frame), so a
flipped fidelity bit, class, dictionary, length or JSON type, a spliced payload or appended
bytes all raise ``SignatureMismatch`` (or another ``NbmfError``); decoding never returns unverified data and never raises anything
but ``NbmfError``. The body is a deterministic function of the record (and of the fidelity), so
a tag over the body vouches for what decoding returns. Tag length and miss probability: docs/nbmf.md.

Bodies:
- lossless JSON: the record's canonical JSON (compact UTF-8, sorted keys, orjson);
- lossless JSON with marker keys (flag bit 5; records < 4 KiB): in top-level arrays of like
  objects the fields every row shares stored once (under ``CONSTANTS_KEY``, or named under
  ``SAME_KEY`` when the top level has the same field and value), and top-level
  strings that hold a quote taken out of the JSON and appended as raw UTF-8 segments, each
  after a 0xFF byte (listed under ``SEGMENTS_KEY``); used only when no longer than the original;
- semantic series (flag bit 6; classes with the ``series`` rule): the record without its
  channel lists as canonical JSON, then each channel rounded to its declared grid, as
  delta-coded integers in byte planes;
- semantic text: canonical JSON of the normalised record.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from hashlib import sha256

import numpy as np
import orjson
import zstandard

from daena_pipelines.config import Settings
from daena_pipelines.nbmf.classes import CLASS_BY_CODE, SERIES_STEPS, normalize_text, record_class
from daena_pipelines.nbmf.dictionaries import DictionaryStore
from daena_pipelines.nbmf.errors import EnvelopeError, NbmfError, SignatureMismatch, UnknownDictionary

__all__ = ["EnvelopeError", "NbmfError", "SignatureMismatch", "UnknownDictionary"]

CODEC_VERSION = 4
LOSSLESS, SEMANTIC = "lossless", "semantic"
JSON_TYPES = ("object", "array", "string", "number", "boolean", "null")
# first byte of canonical JSON per type: a decoded JSON body must be of the type the header names
_FIRST_BYTES = (b"{", b"[", b'"', b"-0123456789", b"tf", b"n")  # in JSON_TYPES order
TAG_BYTES = 8  # 64 bits: why this is enough for an integrity check, docs/nbmf.md
MAX_LENGTH = 1 << 30  # no record body beyond 1 GiB
DIRECT_DECOMPRESS_BYTES = 1 << 20  # claimed bodies up to this size are decompressed in one call
FLAG_SEMANTIC, FLAG_BODY_LENGTH, FLAG_MARKED, FLAG_SERIES = 1, 16, 32, 64
SERIES_CHANNELS = tuple(SERIES_STEPS)  # bit i of the channel mask = SERIES_CHANNELS[i]
MAX_GRID_VALUE = 2**52  # grid integers beyond this would not survive int64 deltas and float division
CONSTANTS_KEY = "\u0000const"  # per top-level array, the fields a marked body stores once for all its rows
SAME_KEY = "\u0000same"  # per top-level array, the fields all its rows share with the record's top level
SEGMENTS_KEY = "\u0000raw"  # lists the top-level keys whose strings follow a marked body's JSON as raw UTF-8
_MARKER_KEYS = frozenset((CONSTANTS_KEY, SAME_KEY, SEGMENTS_KEY))


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


@dataclass(frozen=True)
class CodecSettings:
    """zstd levels and whether trained dictionaries are used.

    Small bodies get level 9: with NBMF's dictionaries and body-sized parameters it is as small
    as level 6 and twice as fast on them (measured, docs/nbmf.md); large ones a fast level.
    ``DAENA_NBMF_ZSTD_LEVEL`` sets both, ``DAENA_NBMF_NO_DICT=1`` turns dictionaries off (both
    exist to show what they are worth).
    """

    level_small: int = 9
    level_large: int = 1
    use_dictionaries: bool = True

    @classmethod
    def from_env(cls, settings: Settings | None = None) -> "CodecSettings":
        """From the project's settings (read now when not given)."""
        settings = settings or Settings.from_env()
        level = settings.nbmf_zstd_level
        levels = {"level_small": level, "level_large": level} if level is not None else {}
        return cls(**levels, use_dictionaries=not settings.nbmf_no_dict)

    def describe(self) -> dict:
        return {"level_small": self.level_small, "level_large": self.level_large, "use_dictionaries": self.use_dictionaries}


@dataclass(slots=True)
class Meta:
    codec_version: int
    fidelity: str
    json_type: str
    record_class: str
    dict_id: int
    original_length: int
    body_length: int  # the most the payload may decompress to: the body length, or the original's
    marked: bool
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
    if class_code not in _CLASS_NAMES or (flags >> 1 & 7) >= len(JSON_TYPES) or flags >> 7:
        return f"NBMF header has unknown class code {class_code} or flags {flags:#x}"
    if flags & FLAG_MARKED and flags & (FLAG_SERIES | FLAG_SEMANTIC | 14):  # marker keys: lossless, an object
        return "NBMF header marks a body that cannot have marker keys"
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
        dict_id, length, body_length, bool(flags & FLAG_MARKED), bool(flags & FLAG_SERIES), envelope[pos : pos + TAG_BYTES], pos,
    )


_U64 = struct.Struct("<Q").pack


def _tag(body: bytes, header: bytes, envelope_length: int) -> bytes:
    """SHA-256 over body || header || envelope length (u64 LE), first ``TAG_BYTES``. The body
    first: a large one is hashed straight from its buffer (behind a prefix, OpenSSL copies it
    block by block: 3 % of a telemetry decode); a small one in a single call."""
    if len(body) < SMALL_BODY_BYTES:
        return sha256(body + header + _U64(envelope_length)).digest()[:TAG_BYTES]
    h = sha256(body)
    h.update(header + _U64(envelope_length))
    return h.digest()[:TAG_BYTES]


# --- lossless JSON bodies with marker keys --------------------------------------------------


_ONLY_DICT = {dict}


def _hoisted(rows: list) -> tuple[dict, list] | None:
    """(the fields every row of a list of like objects has with one and the same string or null
    value, the rows without them), or None when there are none or ``rows`` is no such list.
    Only strings and null: 1, 1.0 and True, or 0.0 and -0.0, are equal in Python but not in
    JSON. Column by column in C-level loops (zip, count): a Python loop per value would cost
    more than the smaller body saves in compression."""
    if len(rows) < 2 or set(map(type, rows)) != _ONLY_DICT or len(set(map(tuple, rows))) != 1:  # same keys, same order
        return None
    constants = {
        name: column[0]
        for name, column in zip(rows[0], zip(*map(dict.values, rows)))
        if (type(column[0]) is str or column[0] is None) and column.count(column[0]) == len(column)
    }
    if not constants:
        return None
    rest = []
    for row in rows:
        row = row.copy()
        for name in constants:
            del row[name]
        rest.append(row)
    return constants, rest


def _marked(record, original_length: int) -> bytes | None:
    """The marked body of a record: in each top-level array of >= 2 objects with the same keys,
    the fields with one value in every row taken out of the rows and stored once under
    ``CONSTANTS_KEY``, or only named under ``SAME_KEY`` when the record's top level has the
    field with that value; each top-level string holding a ``"`` taken out of the JSON and appended
    as its raw UTF-8 after a 0xFF byte (UTF-8 never holds one), in the order of the sorted keys
    listed under ``SEGMENTS_KEY``. None when nothing would change, a marker key is in use, or the
    body would be longer than the original."""
    if type(record) is not dict or not _MARKER_KEYS.isdisjoint(record):
        return None
    main, hoisted, same, segments = dict(record), {}, {}, []
    for key, value in record.items():
        if type(value) is str:
            if '"' in value:  # escaped inside a JSON string: every quote would cost a backslash
                segments.append(key)
        elif type(value) is list and (split := _hoisted(value)):
            constants, main[key] = split
            # a field the record has at its top level too (an audit row's proposal_id): named, not repeated
            if names := [name for name, v in constants.items() if name in record and type(record[name]) is type(v) and record[name] == v]:
                same[key] = names
                constants = {name: v for name, v in constants.items() if name not in names}
            if constants:
                hoisted[key] = constants
    if not hoisted and not same and not segments:
        return None
    if hoisted:
        main[CONSTANTS_KEY] = hoisted
    if same:
        main[SAME_KEY] = same
    if segments:
        segments.sort()
        for key in segments:
            del main[key]
        main[SEGMENTS_KEY] = segments
    body = b"\xff".join([canonical_json(main), *(record[key].encode() for key in segments)])
    return body if len(body) <= original_length else None


def _unmarked(body: bytes) -> dict:
    end = body.find(b"\xff")
    value = orjson.loads(body if end < 0 else body[:end])
    if end >= 0:
        keys, segments = value.pop(SEGMENTS_KEY), body[end + 1 :].split(b"\xff")
        if len(keys) != len(segments):
            raise ValueError(f"{len(segments)} raw segments for {len(keys)} keys")
        for key, segment in zip(keys, segments):
            value[key] = segment.decode()
    hoisted = value.pop(CONSTANTS_KEY, None) or {}
    for key, names in value.pop(SAME_KEY, {}).items():
        hoisted[key] = {**hoisted.get(key, {}), **{name: value[name] for name in names}}
    for key, constants in hoisted.items():
        for row in value[key]:  # rows as orjson built them: cheaper than building them here
            row.update(constants)
    return value


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


def lossless_body(record) -> tuple[bytes, bool, bytes]:
    """(the bytes a lossless envelope compresses, whether they carry marker keys, the original's
    canonical JSON). The body is what NBMF's dictionaries are trained on."""
    original = canonical_json(record)
    marked = _marked(record, len(original)) if len(original) < SMALL_BODY_BYTES else None
    return (original, False, original) if marked is None else (marked, True, original)


def _body_rule(flags: int) -> tuple:
    """(first bytes the body may start with, whether its length is the original's, its decoder), by flags."""
    if flags & FLAG_SERIES:
        return (bytes(range(256)), False, _decode_series)  # a series body starts with a varint
    first = tuple(bytes((b,)) for b in _FIRST_BYTES[flags >> 1 & 7])
    return (first, not flags & (FLAG_SEMANTIC | FLAG_MARKED), _unmarked if flags & FLAG_MARKED else orjson.loads)


_BODY_RULES = {flags: _body_rule(flags) for flags in range(256) if flags >> 1 & 7 < len(JSON_TYPES)}


# NBMF writes frames without content size, checksum or dictionary id: frame header descriptor
# bits 7-5 and 3-0 zero (bit 4 is the single-segment flag)
_NBMF_FRAME_STARTS = (b"\x00", b"\x10")


class NbmfCodec:
    def __init__(self, store: DictionaryStore | None = None, settings: CodecSettings | None = None):
        self.store = store or DictionaryStore()
        self.settings = settings or CodecSettings.from_env()
        self._compressors: dict[tuple[int, int, int], zstandard.ZstdCompressor] = {}
        self._decompressors: dict[int, zstandard.ZstdDecompressor] = {}

    def _dict(self, dict_id: int):
        return self.store.get(dict_id) if dict_id else None

    def level(self, body_length: int) -> int:
        return self.settings.level_small if body_length < SMALL_BODY_BYTES else self.settings.level_large

    def compress(self, dict_id: int, body: bytes) -> bytes:
        return self.compressor(dict_id, self.level(len(body)), len(body)).compress(body)

    def compressor(self, dict_id: int, level: int, size: int) -> zstandard.ZstdCompressor:
        """Magic-less zstd frames without checksum, content size or dictionary id (the envelope
        has them); parameters sized for the body (next power of two), as plain zstd does: tables
        sized for large inputs cost more to reset than a small body costs to compress."""
        size_log = max(14, (size - 1).bit_length())  # >= 16 KiB: the window must also reach into the dictionary
        if (dict_id, level, size_log) not in self._compressors:
            params = zstandard.ZstdCompressionParameters.from_level(
                level,
                source_size=1 << size_log,
                format=zstandard.FORMAT_ZSTD1_MAGICLESS,
                write_content_size=0,
                write_dict_id=0,
                write_checksum=0,
            )
            dictionary = None
            if dict_id:  # a private copy digested once for these parameters, else zstd reloads it per call
                dictionary = zstandard.ZstdCompressionDict(self.store.get(dict_id).as_bytes(), dict_type=zstandard.DICT_TYPE_FULLDICT)
                dictionary.precompute_compress(compression_params=params)
            self._compressors[dict_id, level, size_log] = zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params)
        return self._compressors[dict_id, level, size_log]

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
        if payload[:1] not in _NBMF_FRAME_STARTS:
            raise EnvelopeError("NBMF payload frame header is not the one NBMF writes")
        decompressor = self._decompressor(dict_id)
        if body_length <= DIRECT_DECOMPRESS_BYTES:
            return decompressor.decompress(payload, max_output_size=body_length)
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

    def encode(self, record, class_name: str, fidelity: str = LOSSLESS) -> bytes:
        rc = record_class(class_name)
        flags = JSON_TYPES.index(json_type(record)) << 1
        if fidelity == LOSSLESS:
            body, marked, original = lossless_body(record)
            flags |= FLAG_MARKED if marked else 0
        elif fidelity == SEMANTIC and rc.semantic == "text":
            original = canonical_json(record)
            body = canonical_json(normalize_strings(record))
            flags |= FLAG_SEMANTIC
        elif fidelity == SEMANTIC and rc.semantic == "series":
            original = canonical_json(record)
            body = _encode_series(record)
            flags |= FLAG_SEMANTIC | FLAG_SERIES
        else:
            raise ValueError(f"record class {class_name!r} does not allow fidelity {fidelity!r}")
        if len(original) > MAX_LENGTH or len(body) > MAX_LENGTH:
            raise ValueError(f"record of {len(original)} bytes is beyond NBMF's {MAX_LENGTH}-byte bound")
        dict_id = self.dict_id(class_name)
        lengths = _varint(len(original))
        if len(body) > len(original):
            flags |= FLAG_BODY_LENGTH
            lengths += _varint(len(body))
        header = b"%c%c%b%b" % (CODEC_VERSION << 4 | rc.code, flags, _varint(dict_id % 1000), lengths)
        payload = self.compress(dict_id, body)
        return header + _tag(body, header, len(header) + TAG_BYTES + len(payload)) + payload

    def decode(self, envelope: bytes):
        """The record; raises an ``NbmfError`` (and nothing else) unless every byte checks out."""
        if type(envelope) is not bytes and isinstance(envelope, (bytearray, memoryview)):
            envelope = bytes(envelope)
        class_code, flags, dict_id, length, body_length, pos = _header(envelope)
        payload = envelope[pos + TAG_BYTES :]
        try:
            if body_length <= DIRECT_DECOMPRESS_BYTES and payload[:1] in _NBMF_FRAME_STARTS:  # the common case, inline
                body = (self._decompressors.get(dict_id) or self._decompressor(dict_id)).decompress(payload, max_output_size=body_length)
            else:
                body = self._decompress(dict_id, payload, body_length)
        except zstandard.ZstdError as exc:
            raise SignatureMismatch(f"NBMF payload does not decompress ({exc}); envelope is corrupt") from exc
        if _tag(body, envelope[:pos], len(envelope)) != envelope[pos : pos + TAG_BYTES]:
            raise SignatureMismatch(f"NBMF tag mismatch for a {_CLASS_NAMES[class_code]} envelope: header or content is corrupt")
        # the tag already vouches for header and body; these catch an encoder that wrote a wrong one
        first_bytes, exact_length, body_decoder = _BODY_RULES[flags]
        if body[:1] not in first_bytes or exact_length and len(body) != length:
            raise EnvelopeError("NBMF body does not have the JSON type or the original length its header names")
        try:
            return body_decoder(body)
        except Exception as exc:  # noqa: BLE001 - only reachable through a wrongly written envelope
            raise EnvelopeError(f"NBMF body is not what its header describes ({type(exc).__name__}: {exc})") from exc
