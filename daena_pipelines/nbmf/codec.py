"""NBMF: a memory record (JSON-compatible value + record class) in an authenticated binary envelope.

Envelope v2, byte by byte::

    b"N"                 magic
    u8                   codec version (high 4 bits, 2) | record class code (low 4 bits)
    u8                   flags: bit 0 fidelity (0 lossless, 1 semantic), bits 1-3 JSON type,
                         bit 4 body length follows, bit 5 columnar body; bits 6-7 zero
    varint               dictionary version (0 = no dictionary; id = class code * 1000 + version)
    varint               original length: bytes of the original record's canonical JSON
    [varint]             body length (flag bit 4: the stored body differs in length from the original)
    16 bytes             tag: SHA-256 (first 16 bytes) over header || varint(envelope length) || body
    rest                 payload: magic-less zstd frame of the body (no checksum, no content size)

The tag covers every header byte, the envelope's total length (so trailing or missing bytes
fail) and the body the payload decompresses to, so a flipped fidelity bit, class, dictionary,
length or JSON type, a spliced payload or appended bytes all raise ``SignatureMismatch``
(or another ``NbmfError``); decoding never returns unverified data and never raises anything
but ``NbmfError``.

Bodies: lossless = the record's canonical JSON (compact UTF-8, sorted keys, orjson), or with
flag bit 5 the same record with its top-level arrays of like objects stored column by column
(``_columnar``); semantic text = canonical JSON of the normalised record; semantic series =
the series body (grid integers). For a semantic series the tag covers the canonical JSON of
the semantic form (what decoding returns), built on both sides.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import orjson
import zstandard

from daena_pipelines.config import Settings
from daena_pipelines.nbmf.classes import CLASS_BY_CODE, SERIES_STEPS, normalize_text, record_class
from daena_pipelines.nbmf.dictionaries import DictionaryStore
from daena_pipelines.nbmf.errors import EnvelopeError, NbmfError, SignatureMismatch, UnknownDictionary

__all__ = ["EnvelopeError", "NbmfError", "SignatureMismatch", "UnknownDictionary"]

MAGIC = b"N"
CODEC_VERSION = 2
LOSSLESS, SEMANTIC = "lossless", "semantic"
JSON_TYPES = ("object", "array", "string", "number", "boolean", "null")
# first byte of canonical JSON per type: a decoded body must be of the type the header names
_FIRST_BYTES = {
    "object": b"{", "array": b"[", "string": b'"', "number": b"-0123456789", "boolean": b"tf", "null": b"n",
}
TAG_BYTES = 16
MAX_LENGTH = 1 << 30  # no record body beyond 1 GiB
DIRECT_DECOMPRESS_BYTES = 1 << 20  # claimed bodies up to this size are decompressed in one call
FLAG_SEMANTIC, FLAG_BODY_LENGTH, FLAG_COLUMNAR = 1, 16, 32
SERIES_CHANNELS = tuple(SERIES_STEPS)  # bit i of the channel mask = SERIES_CHANNELS[i]
MAX_GRID_VALUE = 2**52  # grid integers beyond this would not survive int64 deltas and float division
COLUMNS_KEY = "\u0000columnar"  # lists the top-level keys a columnar body transposed


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

    Small bodies get the highest level (they are where ratio is lost, and their time is mostly
    per-call cost anyway); large ones a fast level. ``DAENA_NBMF_ZSTD_LEVEL`` sets both,
    ``DAENA_NBMF_NO_DICT=1`` turns dictionaries off (both exist to show what they are worth).
    """

    level_small: int = 6
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
    body_length: int
    columnar: bool
    tag: bytes
    header_length: int  # bytes before the tag


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    if pos < len(data) and data[pos] < 0x80:  # one byte: most header fields
        return data[pos], pos + 1
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


def read_meta(envelope: bytes) -> Meta:
    """The header, checked for shape and bounds (not yet for authenticity: ``decode`` does that)."""
    if type(envelope) is not bytes:
        if not isinstance(envelope, (bytes, bytearray, memoryview)):
            raise EnvelopeError(f"an NBMF envelope is bytes, not {type(envelope).__name__}")
        envelope = bytes(envelope)
    if len(envelope) < 4 or envelope[0] != MAGIC[0]:
        raise EnvelopeError("not an NBMF envelope (bad magic or shorter than a header)")
    version, class_code, flags = envelope[1] >> 4, envelope[1] & 15, envelope[2]
    if version != CODEC_VERSION:
        raise EnvelopeError(f"NBMF codec version {version} is not supported (this codec reads {CODEC_VERSION})")
    if class_code not in _CLASS_NAMES or (flags >> 1 & 7) >= len(JSON_TYPES) or flags >> 6:
        raise EnvelopeError(f"NBMF header has unknown class code {class_code} or flags {flags:#x}")
    if flags & FLAG_COLUMNAR and flags & FLAG_SEMANTIC:
        raise EnvelopeError("NBMF header marks a semantic envelope columnar")
    dict_version, pos = _read_varint(envelope, 3)
    length, pos = _read_varint(envelope, pos)
    body_length, pos = _read_varint(envelope, pos) if flags & FLAG_BODY_LENGTH else (length, pos)
    if length > MAX_LENGTH or body_length > MAX_LENGTH or dict_version >= 1000:
        raise EnvelopeError(f"NBMF header lengths {length}/{body_length} or dictionary version {dict_version} out of bounds")
    tag = envelope[pos : pos + TAG_BYTES]
    if len(tag) != TAG_BYTES:
        raise EnvelopeError("truncated NBMF tag")
    return Meta(
        version, SEMANTIC if flags & FLAG_SEMANTIC else LOSSLESS, JSON_TYPES[flags >> 1 & 7], _CLASS_NAMES[class_code],
        class_code * 1000 + dict_version if dict_version else 0, length, body_length, bool(flags & FLAG_COLUMNAR), tag, pos,
    )


def _tag(header: bytes, envelope_length: int, body: bytes) -> bytes:
    h = hashlib.sha256(header)
    h.update(_varint(envelope_length))
    h.update(body)
    return h.digest()[:TAG_BYTES]


# --- columnar bodies ------------------------------------------------------------------------


def _columnar(record) -> dict | None:
    """The record with each top-level array of >= 2 objects sharing one key set stored as
    {key: [values...]}; None when nothing would change (or the record uses the marker key)."""
    if not isinstance(record, dict) or COLUMNS_KEY in record:
        return None
    transposed = {}
    for key, value in record.items():
        if isinstance(value, list) and len(value) > 1 and isinstance(value[0], dict) and value[0]:
            keys = value[0].keys()
            if all(isinstance(item, dict) and item.keys() == keys for item in value):
                transposed[key] = {k: [item[k] for item in value] for k in keys}
    if not transposed:
        return None
    return {**record, **transposed, COLUMNS_KEY: sorted(transposed)}


def lossless_body(record) -> bytes:
    """The bytes a lossless envelope compresses (what NBMF's dictionaries are trained on)."""
    original = canonical_json(record)
    columnar = _columnar(record) if len(original) < SMALL_BODY_BYTES else None
    return original if columnar is None else canonical_json(columnar)


def _rows(value: dict, columns: list) -> dict:
    for key in columns:
        table = value[key]
        names = list(table)
        value[key] = [dict(zip(names, row)) for row in zip(*table.values())]
    return value


# --- semantic rules -----------------------------------------------------------------------


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


def _grid_values(q: np.ndarray, missing: np.ndarray, scale: int) -> list:
    values = (q / scale).tolist()
    if missing.any():
        for i in np.flatnonzero(missing):
            values[i] = None
    return values


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


def _encode_series(record: dict) -> tuple[bytes, dict]:
    """Semantic body for a record with a ``points`` object of channel lists, and its semantic form."""
    points = record.get("points") if isinstance(record, dict) else None
    arrays = _series_arrays(points)
    channels = list(arrays)
    semantic_points = dict(points) if channels else points
    rest = dict(record)
    if channels:
        rest["points"] = {k: v for k, v in points.items() if k not in channels}
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
        scale = _scale(channel)
        filled = raw.copy()
        if missing.any():  # carry the previous value through gaps so deltas stay small
            idx = np.where(missing, 0, np.arange(n))
            np.maximum.accumulate(idx, out=idx)
            filled = raw[idx]
            filled[~np.isfinite(filled)] = 0.0
        q = np.rint(filled * scale).astype(np.int64)
        body.append(b"\x01" + np.packbits(missing).tobytes() if missing.any() else b"\x00")
        body.append(_pack_ints(q))
        semantic_points[channel] = _grid_values(q, missing, scale)
    semantic = dict(record)
    if channels:
        semantic["points"] = semantic_points
    return b"".join(body), semantic


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
        if body[pos]:
            missing = np.unpackbits(np.frombuffer(body, np.uint8, (n + 7) // 8, pos + 1), count=n).astype(bool)
            pos += 1 + (n + 7) // 8
        else:
            missing = np.zeros(n, dtype=bool)
            pos += 1
        q, pos = _unpack_ints(body, pos, n)
        record["points"][channel] = _grid_values(q, missing, _scale(channel))
    return record


# --- the codec ------------------------------------------------------------------------------


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
        # NBMF writes frames without content size, checksum or dictionary id (frame header
        # descriptor bits 7-5, 3-0 zero); a frame claiming a content size would make zstd size its
        # output by that claim instead of by the authenticated header
        if not payload or payload[0] & 0xEF:
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
            return _encode_series(record)[1]
        raise ValueError(f"record class {class_name!r} is lossless-only; semantic encoding is not allowed")

    def encode(self, record, class_name: str, fidelity: str = LOSSLESS) -> bytes:
        rc = record_class(class_name)
        original = canonical_json(record)
        flags = JSON_TYPES.index(json_type(record)) << 1
        if fidelity == LOSSLESS:
            columnar = _columnar(record) if len(original) < SMALL_BODY_BYTES else None
            body = signed = original if columnar is None else canonical_json(columnar)
            flags |= FLAG_COLUMNAR if columnar is not None else 0
        elif fidelity == SEMANTIC and rc.semantic == "text":
            body = signed = canonical_json(normalize_strings(record))
            flags |= FLAG_SEMANTIC
        elif fidelity == SEMANTIC and rc.semantic == "series":
            body, semantic = _encode_series(record)
            signed = canonical_json(semantic)
            flags |= FLAG_SEMANTIC
        else:
            raise ValueError(f"record class {class_name!r} does not allow fidelity {fidelity!r}")
        if len(original) > MAX_LENGTH or len(body) > MAX_LENGTH:
            raise ValueError(f"record of {len(original)} bytes is beyond NBMF's {MAX_LENGTH}-byte bound")
        dict_id = self.dict_id(class_name)
        lengths = _varint(len(original))
        if len(body) != len(original):
            flags |= FLAG_BODY_LENGTH
            lengths += _varint(len(body))
        header = b"%b%c%c%b%b" % (MAGIC, CODEC_VERSION << 4 | rc.code, flags, _varint(dict_id % 1000), lengths)
        payload = self.compress(dict_id, body)
        return header + _tag(header, len(header) + TAG_BYTES + len(payload), signed) + payload

    def decode(self, envelope: bytes):
        """The record; raises an ``NbmfError`` (and nothing else) unless every byte checks out."""
        meta = read_meta(envelope)
        start = meta.header_length + TAG_BYTES
        try:
            body = self._decompress(meta.dict_id, envelope[start:], meta.body_length)
        except zstandard.ZstdError as exc:
            raise SignatureMismatch(f"NBMF payload does not decompress ({exc}); envelope is corrupt") from exc
        if len(body) != meta.body_length:
            raise SignatureMismatch("NBMF payload length differs from the envelope's; envelope is corrupt")
        series = meta.fidelity == SEMANTIC and record_class(meta.record_class).semantic == "series"
        record = None
        if series:
            try:
                record = _decode_series(body)
                signed = canonical_json(record)
            except Exception as exc:  # noqa: BLE001 - any malformation of an unverified body is corruption
                raise SignatureMismatch(f"NBMF series payload is malformed ({type(exc).__name__}: {exc})") from exc
        else:
            signed = body
        if _tag(envelope[: meta.header_length], len(envelope), signed) != meta.tag:
            raise SignatureMismatch(
                f"NBMF tag mismatch for a {meta.fidelity} {meta.record_class} envelope: header or content is corrupt"
            )
        # the tag already vouches for the header; these catch an encoder that wrote a wrong one
        if not signed or signed[:1] not in _FIRST_BYTES[meta.json_type]:
            raise EnvelopeError(f"NBMF header says {meta.json_type} but the body is not")
        if meta.fidelity == LOSSLESS and not meta.columnar and len(signed) != meta.original_length:
            raise EnvelopeError("NBMF original length disagrees with the lossless body")
        if record is not None:
            return record
        try:
            value = orjson.loads(signed)
            return _rows(value, value.pop(COLUMNS_KEY)) if meta.columnar else value
        except Exception as exc:  # noqa: BLE001 - only reachable through a wrongly written envelope
            raise EnvelopeError(f"NBMF body is not the JSON its header describes ({type(exc).__name__}: {exc})") from exc
