"""NBMF: a memory record (JSON-compatible value + record class) in a signed binary envelope.

Envelope v1, byte by byte::

    b"NB"                magic
    u8                   codec version (1)
    u8                   flags: bit 0 fidelity (0 lossless, 1 semantic), bits 1-3 JSON type,
                         bit 4 set when the payload body length differs from the original length
    u8                   record class code (classes.RECORD_CLASSES)
    varint               dictionary id (0 = no dictionary)
    varint               original length: bytes of the original record's canonical JSON
    [varint]             payload body length (only with flag bit 4; series-coded bodies)
    32 bytes             SHA-256 of the canonical form decoding returns
    rest                 payload: magic-less zstd frame (no checksum, no content size)

The signature covers the content, not the header: a damaged payload, signature, body length
or dictionary id fails decoding; the record class is cross-checked against the dictionary id;
the original length of a semantic envelope is informational.

The canonical form is compact UTF-8 JSON with sorted keys (orjson, NaN -> null). Lossless: it
is the original's canonical JSON. Semantic: it is the canonical JSON of the original after the
class's declared rule (classes.py), which is exactly what decoding returns, so every decode is
verified against the signature and a corrupt envelope raises ``SignatureMismatch``.
"""
from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

import numpy as np
import orjson
import zstandard

from daena_pipelines.nbmf.classes import CLASS_BY_CODE, SERIES_STEPS, normalize_text, record_class
from daena_pipelines.nbmf.dictionaries import DictionaryStore

MAGIC = b"NB"
CODEC_VERSION = 1
LOSSLESS, SEMANTIC = "lossless", "semantic"
JSON_TYPES = ("object", "array", "string", "number", "boolean", "null")
SIGNATURE_BYTES = 32
SERIES_CHANNELS = tuple(SERIES_STEPS)  # bit i of the channel mask = SERIES_CHANNELS[i]
MAX_GRID_VALUE = 2**52  # grid integers beyond this would not survive int64 deltas and float division


class EnvelopeError(ValueError):
    """Not a decodable NBMF envelope (bad magic, version, class or truncated header/payload)."""


class SignatureMismatch(EnvelopeError):
    """The decoded content does not hash to the envelope's SHA-256: corrupt or tampered."""


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

    Small bodies get a high level (per-call cost dominates their time anyway, and ratio is
    where small records lose); large bodies a fast one. ``DAENA_NBMF_ZSTD_LEVEL`` sets both,
    ``DAENA_NBMF_NO_DICT=1`` turns dictionaries off (both exist to show what they are worth).
    """

    level_small: int = 6
    level_large: int = 1
    use_dictionaries: bool = True

    @classmethod
    def from_env(cls) -> "CodecSettings":
        level = os.environ.get("DAENA_NBMF_ZSTD_LEVEL", "").strip()
        no_dict = os.environ.get("DAENA_NBMF_NO_DICT", "").strip().lower() in ("1", "true", "yes")
        levels = {"level_small": int(level), "level_large": int(level)} if level else {}
        return cls(**levels, use_dictionaries=not no_dict)

    def describe(self) -> dict:
        return {"level_small": self.level_small, "level_large": self.level_large, "use_dictionaries": self.use_dictionaries}


@dataclass(frozen=True)
class Meta:
    codec_version: int
    fidelity: str
    json_type: str
    record_class: str
    dict_id: int
    original_length: int
    body_length: int
    signature: bytes
    header_length: int


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data) or shift > 63:
            raise EnvelopeError("truncated or malformed varint in NBMF header")
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7


def read_meta(envelope: bytes) -> Meta:
    if envelope[:2] != MAGIC:
        raise EnvelopeError("not an NBMF envelope (bad magic)")
    if len(envelope) < 5:
        raise EnvelopeError("truncated NBMF header")
    version, flags, class_code = envelope[2], envelope[3], envelope[4]
    if version != CODEC_VERSION:
        raise EnvelopeError(f"NBMF codec version {version} is not supported (this codec reads {CODEC_VERSION})")
    if class_code not in CLASS_BY_CODE or (flags >> 1 & 7) >= len(JSON_TYPES) or flags >> 5:
        raise EnvelopeError(f"NBMF header has unknown class code {class_code} or flags {flags:#x}")
    dict_id, pos = _read_varint(envelope, 5)
    if dict_id and dict_id // 1000 != class_code:  # dictionary ids embed their class (dictionaries.py)
        raise EnvelopeError(f"NBMF header names dictionary {dict_id} for class code {class_code}: corrupt header")
    length, pos = _read_varint(envelope, pos)
    body_length, pos = _read_varint(envelope, pos) if flags & 16 else (length, pos)
    signature = envelope[pos : pos + SIGNATURE_BYTES]
    if len(signature) != SIGNATURE_BYTES:
        raise EnvelopeError("truncated NBMF signature")
    return Meta(
        codec_version=version,
        fidelity=SEMANTIC if flags & 1 else LOSSLESS,
        json_type=JSON_TYPES[flags >> 1 & 7],
        record_class=CLASS_BY_CODE[class_code].name,
        dict_id=dict_id,
        original_length=length,
        body_length=body_length,
        signature=signature,
        header_length=pos + SIGNATURE_BYTES,
    )


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
        self._compressors: dict[tuple[int, int], zstandard.ZstdCompressor] = {}
        self._decompressors: dict[int, zstandard.ZstdDecompressor] = {}

    def _dict(self, dict_id: int):
        return self.store.get(dict_id) if dict_id else None

    def _compressor(self, dict_id: int, body_length: int) -> zstandard.ZstdCompressor:
        level = self.settings.level_small if body_length < SMALL_BODY_BYTES else self.settings.level_large
        if (dict_id, level) not in self._compressors:
            params = zstandard.ZstdCompressionParameters.from_level(
                level,
                format=zstandard.FORMAT_ZSTD1_MAGICLESS,
                write_content_size=0,
                write_dict_id=0,
                write_checksum=0,
            )
            self._compressors[dict_id, level] = zstandard.ZstdCompressor(
                dict_data=self._dict(dict_id), compression_params=params
            )
        return self._compressors[dict_id, level]

    def _decompressor(self, dict_id: int) -> zstandard.ZstdDecompressor:
        if dict_id not in self._decompressors:
            self._decompressors[dict_id] = zstandard.ZstdDecompressor(
                dict_data=self._dict(dict_id), format=zstandard.FORMAT_ZSTD1_MAGICLESS
            )
        return self._decompressors[dict_id]

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
        if fidelity == LOSSLESS:
            body = canonical = original
        elif fidelity == SEMANTIC and rc.semantic == "text":
            body = canonical = canonical_json(normalize_strings(record))
        elif fidelity == SEMANTIC and rc.semantic == "series":
            body, semantic = _encode_series(record)
            canonical = canonical_json(semantic)
        else:
            raise ValueError(f"record class {class_name!r} does not allow fidelity {fidelity!r}")
        dict_id = self.store.current_id(class_name) if self.settings.use_dictionaries else 0
        flags = (fidelity == SEMANTIC) | JSON_TYPES.index(json_type(record)) << 1
        lengths = _varint(len(original))
        if len(body) != len(original):
            flags |= 16
            lengths += _varint(len(body))
        header = b"%b%c%c%c%b%b" % (MAGIC, CODEC_VERSION, flags, rc.code, _varint(dict_id), lengths)
        return header + hashlib.sha256(canonical).digest() + self._compressor(dict_id, len(body)).compress(body)

    def decode(self, envelope: bytes):
        meta = read_meta(envelope)
        try:
            body = self._decompressor(meta.dict_id).decompress(
                envelope[meta.header_length :], max_output_size=meta.body_length
            )
        except zstandard.ZstdError as exc:
            raise SignatureMismatch(f"NBMF payload does not decompress ({exc}); envelope is corrupt") from exc
        if len(body) != meta.body_length:
            raise SignatureMismatch("NBMF payload length differs from the envelope's; envelope is corrupt")
        if meta.fidelity == SEMANTIC and record_class(meta.record_class).semantic == "series":
            try:
                record = _decode_series(body)
            except (ValueError, IndexError, orjson.JSONDecodeError) as exc:
                raise SignatureMismatch(f"NBMF series payload is malformed ({exc})") from exc
            canonical = canonical_json(record)
        else:
            canonical = body
            record = None
        if hashlib.sha256(canonical).digest() != meta.signature:
            raise SignatureMismatch(
                f"NBMF signature mismatch for a {meta.fidelity} {meta.record_class} record: content is corrupt"
            )
        return orjson.loads(canonical) if record is None else record
