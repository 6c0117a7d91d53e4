"""The NBMF benchmark: every codec on the same held-out records, in the same run.

Only test-split records are measured, and any record a dictionary was trained on is left out
even if its key falls in the test split. Every codec is timed from the Python record to bytes
(encode) and back (decode), so JSON serialisation is part of every codec's cost alike; times are
per call, in thread CPU time, repeated ``repetitions`` times over all records.
"""
from __future__ import annotations

import hashlib
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import orjson
import zstandard

from daena_pipelines.nbmf.classes import SERIES_STEPS, TEMPERATURE_CHANNELS, record_class
from daena_pipelines.nbmf.codec import LOSSLESS, SEMANTIC, NbmfCodec, canonical_json, read_meta
from daena_pipelines.nbmf.corpus import CorpusRecord

BASELINES = ("raw_json", "zlib_9", "zstd_3", "zstd_19")
CODECS = (*BASELINES, "nbmf_lossless", "nbmf_semantic")
DEFAULT_REPETITIONS = 7
LT4K = "lt4k"  # tiny + small: where general-purpose codecs struggle
ALL = "all"


@dataclass
class Codec:
    name: str
    encode: Callable[[object, str], bytes]
    decode: Callable[[bytes], object]
    signature: Callable[[bytes], str]  # the SHA-256 the encoded form claims (or the original's)


def codecs(nbmf: NbmfCodec) -> dict[str, Codec]:
    zstd3, zstd19 = zstandard.ZstdCompressor(level=3), zstandard.ZstdCompressor(level=19)
    unzstd = zstandard.ZstdDecompressor()

    def plain(name, compress, decompress) -> Codec:
        return Codec(
            name,
            lambda rec, _cls: compress(canonical_json(rec)),
            lambda data: orjson.loads(decompress(data)),
            lambda data: hashlib.sha256(decompress(data)).hexdigest(),
        )

    identity = lambda data: data  # noqa: E731 - raw JSON stores the canonical bytes as they are
    nbmf_signature = lambda env: read_meta(env).signature.hex()  # noqa: E731
    return {
        "raw_json": plain("raw_json", identity, identity),
        "zlib_9": plain("zlib_9", lambda b: zlib.compress(b, 9), zlib.decompress),
        "zstd_3": plain("zstd_3", zstd3.compress, unzstd.decompress),
        "zstd_19": plain("zstd_19", zstd19.compress, unzstd.decompress),
        "nbmf_lossless": Codec("nbmf_lossless", lambda r, c: nbmf.encode(r, c, LOSSLESS), nbmf.decode, nbmf_signature),
        "nbmf_semantic": Codec("nbmf_semantic", lambda r, c: nbmf.encode(r, c, SEMANTIC), nbmf.decode, nbmf_signature),
    }


def applicable(codec_name: str, class_name: str) -> bool:
    return codec_name != "nbmf_semantic" or record_class(class_name).semantic is not None


def series_errors(original: dict, decoded: dict) -> dict[str, np.ndarray]:
    """Absolute error per quantised channel; a null where the other side has a value is inf."""
    out = {}
    for channel in SERIES_STEPS:
        a = (original.get("points") or {}).get(channel)
        b = (decoded.get("points") or {}).get(channel)
        if a is None and b is None:
            continue
        if a is None or b is None or len(a) != len(b):
            out[channel] = np.array([np.inf])
            continue
        x = np.array([np.nan if v is None else v for v in a], dtype=float)
        y = np.array([np.nan if v is None else v for v in b], dtype=float)
        err = np.abs(x - y)
        err[np.isnan(x) & np.isnan(y)] = 0.0
        err[np.isnan(err)] = np.inf
        out[channel] = err
    return out


@dataclass
class Measured:
    record: CorpusRecord
    codec: str
    encoded_bytes: int
    exact: bool
    signature_ok: bool
    errors: dict[str, np.ndarray] = field(default_factory=dict)
    encode_ns: list[int] = field(default_factory=list)
    decode_ns: list[int] = field(default_factory=list)


@dataclass
class BenchmarkOutcome:
    rows: list[dict]  # record_class, size_bucket, codec, metric, value, unit
    samples: list[tuple]  # (record_class, size_bucket, codec, op, ns)
    test_records: int
    excluded_training_overlap: int


def held_out(records: list[CorpusRecord], nbmf: NbmfCodec) -> tuple[list[CorpusRecord], int]:
    training = {}
    test, overlap = [], 0
    for r in records:
        if r.split != "test":
            continue
        if r.record_class not in training:
            training[r.record_class] = nbmf.store.training_hashes(r.record_class)
        if r.sha256 in training[r.record_class]:
            overlap += 1
        else:
            test.append(r)
    return test, overlap


def run_benchmark(records: list[CorpusRecord], nbmf: NbmfCodec, repetitions: int = DEFAULT_REPETITIONS) -> BenchmarkOutcome:
    test, overlap = held_out(records, nbmf)
    available = codecs(nbmf)
    measured: list[Measured] = []
    for name, codec in available.items():
        for r in test:
            if not applicable(name, r.record_class):
                continue
            envelope = codec.encode(r.record, r.record_class)
            decoded = codec.decode(envelope)
            semantic = name == "nbmf_semantic"
            expected = canonical_json(nbmf.semantic_form(r.record, r.record_class)) if semantic else r.canonical
            got = canonical_json(decoded)
            claimed = codec.signature(envelope)
            m = Measured(
                record=r,
                codec=name,
                encoded_bytes=len(envelope),
                exact=got == expected,
                signature_ok=claimed == hashlib.sha256(got).hexdigest() == hashlib.sha256(expected).hexdigest(),
            )
            if r.record_class == "telemetry":
                m.errors = series_errors(r.record, decoded)
            measured.append(m)
    by_codec = defaultdict(list)
    for m in measured:
        by_codec[m.codec].append(m)
    # CPU time of this thread: on a shared machine, wall time would also count the slices the
    # OS gave to other processes, which says nothing about the codec
    clock = time.thread_time_ns
    for _ in range(repetitions):  # interleave codecs so machine noise spreads over all of them
        for name, items in by_codec.items():
            codec = available[name]
            for m in items:
                t0 = clock()
                envelope = codec.encode(m.record.record, m.record.record_class)
                t1 = clock()
                codec.decode(envelope)
                t2 = clock()
                m.encode_ns.append(t1 - t0)
                m.decode_ns.append(t2 - t1)
    return BenchmarkOutcome(aggregate(measured), latency_samples(measured), len(test), overlap)


def _groups(m: Measured) -> list[tuple[str, str]]:
    bucket = m.record.size_bucket
    buckets = [bucket, ALL] + ([LT4K] if bucket != "large" else [])
    classes = [m.record.record_class] + ([ALL] if m.codec != "nbmf_semantic" else [])
    return [(c, b) for c in classes for b in buckets]


def aggregate(measured: list[Measured]) -> list[dict]:
    groups: dict[tuple[str, str, str], list[Measured]] = defaultdict(list)
    for m in measured:
        for cls, bucket in _groups(m):
            groups[(cls, bucket, m.codec)].append(m)
    rows = []
    for (cls, bucket, codec), items in sorted(groups.items()):
        original = np.array([len(m.record.canonical) for m in items], dtype=float)
        encoded = np.array([m.encoded_bytes for m in items], dtype=float)
        enc = np.concatenate([m.encode_ns for m in items]).astype(float)
        dec = np.concatenate([m.decode_ns for m in items]).astype(float)
        reps = len(items[0].encode_ns)
        metrics = {
            "records": (len(items), "count"),
            "original_bytes": (original.sum(), "bytes"),
            "encoded_bytes": (encoded.sum(), "bytes"),
            "ratio_total": (original.sum() / encoded.sum(), "x"),
            "ratio_p50": (float(np.median(original / encoded)), "x"),
            "exact_match_rate": (np.mean([m.exact for m in items]), "fraction"),
            "signature_match_rate": (np.mean([m.signature_ok for m in items]), "fraction"),
            "encode_mb_s": (original.sum() * reps / enc.sum() * 1e3, "MB/s"),
            "decode_mb_s": (original.sum() * reps / dec.sum() * 1e3, "MB/s"),
        }
        for op, ns in (("encode", enc), ("decode", dec)):
            for q in (50, 95, 99):
                metrics[f"{op}_p{q}_us"] = (float(np.percentile(ns, q)) / 1e3, "µs")
        errors = defaultdict(list)
        for m in items:
            for channel, err in m.errors.items():
                errors["c" if channel in TEMPERATURE_CHANNELS else channel].append(err)
        for name, parts in errors.items():
            err = np.concatenate(parts)
            unit = "°C" if name == "c" else SERIES_STEPS[name][2]
            suffix = "c" if name == "c" else name
            metrics[f"max_abs_error_{suffix}"] = (float(err.max()), unit)
            metrics[f"p99_abs_error_{suffix}"] = (float(np.percentile(err, 99)), unit)
        rows += [
            {"record_class": cls, "size_bucket": bucket, "codec": codec, "metric": k, "value": float(v), "unit": u}
            for k, (v, u) in metrics.items()
        ]
    return rows


def latency_samples(measured: list[Measured]) -> list[tuple]:
    return [
        (m.record.record_class, m.record.size_bucket, m.codec, op, ns)
        for m in measured
        for op, samples in (("encode", m.encode_ns), ("decode", m.decode_ns))
        for ns in samples
    ]


def value(rows: list[dict], record_class: str, size_bucket: str, codec: str, metric: str) -> float | None:
    for row in rows:
        if (row["record_class"], row["size_bucket"], row["codec"], row["metric"]) == (record_class, size_bucket, codec, metric):
            return row["value"]
    return None


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets, each with what this run reached (None when the corpus lacks the class)."""

    def ratio_to(cls, bucket, codec, baseline="zstd_19"):
        a, b = value(rows, cls, bucket, codec, "ratio_total"), value(rows, cls, bucket, baseline, "ratio_total")
        return a / b if a and b else None

    reached = [
        ("NBMF lossless ratio / zstd-19 ratio, records < 4 KB", ratio_to(ALL, LT4K, "nbmf_lossless"), ">=", 1.5),
        ("NBMF semantic ratio / zstd-19 ratio, telemetry", ratio_to("telemetry", ALL, "nbmf_semantic"), ">=", 3.0),
        ("telemetry semantic max abs error °C", value(rows, "telemetry", ALL, "nbmf_semantic", "max_abs_error_c"), "<=", 0.05),
        ("NBMF lossless encode MB/s (all records)", value(rows, ALL, ALL, "nbmf_lossless", "encode_mb_s"), ">=", 100.0),
        ("NBMF lossless decode MB/s (all records)", value(rows, ALL, ALL, "nbmf_lossless", "decode_mb_s"), ">=", 300.0),
        ("NBMF semantic encode MB/s (telemetry)", value(rows, "telemetry", ALL, "nbmf_semantic", "encode_mb_s"), ">=", 100.0),
        ("NBMF semantic decode MB/s (telemetry)", value(rows, "telemetry", ALL, "nbmf_semantic", "decode_mb_s"), ">=", 300.0),
    ]
    return [
        {
            "target": name,
            "reached": got,
            "goal": f"{op} {goal}",
            "met": None if got is None else (got >= goal if op == ">=" else got <= goal),
        }
        for name, got, op, goal in reached
    ]
