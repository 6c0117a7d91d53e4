"""The NBMF benchmark: every codec on the same held-out records, in the same run.

Only test-split records are measured, and any record a dictionary was trained on is left out
even if its key falls in the test split. Every codec is timed from the Python record to bytes
(encode) and back (decode), so JSON serialisation is part of every codec's cost alike; times are
per warm call (each after an untimed call of the same codec on the same record), in thread CPU
time and in wall time (a wait shows only in the latter), repeated ``repetitions`` times, codecs
interleaved record by record (the order rotates each repetition).

Besides the codecs, ``bound`` is what any codec returning Python objects must at least do:
encode = orjson.dumps + zstd (NBMF's dictionary, NBMF's default level for that record size) +
SHA-256, decode = zstd + SHA-256 + orjson.loads. NBMF's speed is reported as a fraction of it,
and it is the reference the regression gate divides NBMF's times by (``reference``; for NBMF's
semantic text encoding ``TEXT_BOUND``: the text rule + the bound).

``timing_ratios`` turns the samples into what the regression gate compares: per key (class,
codec, op, clock) one sample per record from the codec's time divided by the reference's time
on the same record in the same repetition (the two calls run back to back, so a load change falls
on both), leaving out repetitions in which either call was preempted (``paired_sample``).
"""
from __future__ import annotations

import gc
import hashlib
import resource
import struct
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from hashlib import sha256

import numpy as np
import orjson
import zstandard

from daena_pipelines.nbmf.classes import SERIES_STEPS, TEMPERATURE_CHANNELS, record_class
from daena_pipelines.nbmf.codec import (
    LARGE_TUNING, LOSSLESS, SEMANTIC, SMALL_BODY_BYTES, SMALL_TUNING, CodecSettings, NbmfCodec, canonical_json, normalize_strings,
)
from daena_pipelines.nbmf.corpus import CorpusRecord

BASELINES = ("raw_json", "zlib_9", "zstd_3", "zstd_19", "zstd_dict_1", "zstd_dict_3", "zstd_dict_19")
BOUND = "bound"  # orjson + zstd + SHA-256: not a format, the floor of NBMF's time
# the text rule (normalize_strings) + the bound: the floor of a semantic text codec, whose
# output is the normalised record
TEXT_BOUND = "bound_text"
# the series rule's rounding (numpy, none of NBMF's code) + the bound: the floor of a semantic
# series codec, whose output is the record with its channels on their grids
SERIES_BOUND = "bound_series"
CODECS = (*BASELINES, BOUND, TEXT_BOUND, SERIES_BOUND, "nbmf_lossless", "nbmf_semantic")
SEMANTIC_CODECS = (TEXT_BOUND, SERIES_BOUND, "nbmf_semantic")  # their round trip returns the semantic form
REFERENCES = (BOUND, TEXT_BOUND, SERIES_BOUND)  # what gated timings are divided by, measured interleaved in the same run
SEMANTIC_REFERENCES = {"text": TEXT_BOUND, "series": SERIES_BOUND}  # NBMF semantic's reference per rule
# The bound's zstd settings, fixed here rather than taken from NBMF's (environment-dependent)
# settings: a slower NBMF level or a lost dictionary must move NBMF's time, not the reference's.
# They are NBMF's defaults, so the reference does the same kind of work on the same working set
# (dictionary tables, level): measured, that keeps a load change from moving the ratio.
BOUND_SETTINGS = CodecSettings(level_small=9, level_large=1, use_dictionaries=True, tuning_small=SMALL_TUNING, tuning_large=LARGE_TUNING)
GATED_CODECS = ("nbmf_lossless", "nbmf_semantic")
CLOCKS = ("cpu", "wall")
# a key needs this many records for its median to be steady enough to gate (measured: 4 eval
# results gave 42 % false alarms); smaller classes are not gated
MIN_GATED_RECORDS = 10
DEFAULT_REPETITIONS = 7
# a call the scheduler preempted is timed again, up to this many times: with one extra busy
# process on the 2 cores, 39 % of ~1 ms telemetry calls were preempted (measured), so of 3-4
# repetitions per order often none was clean; 4 attempts leave ~2 % preempted
PREEMPTED_RETRIES = 3
LT4K = "lt4k"  # tiny + small: where general-purpose codecs struggle
ALL = "all"
# A result row over records of several origins names them all, sorted and joined by this
# ('reference+simulator'); each origin also gets its own row, so no number measured partly on
# simulated or generated records reads as one of real records.
POOLED = "+"


def origin_label(origins) -> str:
    """The origin column of a row measured on records of ``origins``: one origin, or the pooled set."""
    return POOLED.join(sorted(set(origins)))


@dataclass
class Codec:
    name: str
    encode: Callable[[object, str], bytes]
    decode: Callable[[bytes], object]
    signature: Callable[[bytes], str]  # the SHA-256 the encoded form claims (or the original's)


class _PerClassDict:
    """zstd+dict baseline: standard zstd frames with the class's baseline dictionary (the one
    trained on canonical JSON from NBMF's training records; dictionaries.py)."""

    def __init__(self, nbmf: NbmfCodec, level: int):
        self.store, self.level = nbmf.store, level
        self.compressors: dict[int, zstandard.ZstdCompressor] = {}
        self.decompressors: dict[int, zstandard.ZstdDecompressor] = {}

    def _dict(self, dict_id):
        return self.store.get(dict_id) if dict_id else None

    def encode(self, record, class_name: str) -> bytes:
        dict_id = self.store.baseline_id(class_name)
        if dict_id not in self.compressors:
            self.compressors[dict_id] = zstandard.ZstdCompressor(level=self.level, dict_data=self._dict(dict_id))
        return self.compressors[dict_id].compress(canonical_json(record))

    def raw(self, frame: bytes) -> bytes:
        dict_id = zstandard.get_frame_parameters(frame).dict_id
        if dict_id not in self.decompressors:
            self.decompressors[dict_id] = zstandard.ZstdDecompressor(dict_data=self._dict(dict_id))
        return self.decompressors[dict_id].decompress(frame)


class _Bound:
    """The floor: canonical JSON + NBMF's zstd (NBMF's dictionary, ``BOUND_SETTINGS`` levels) +
    SHA-256, and back. Framed as dictionary byte, SHA-256, body length, zstd frame (the least a
    decoder must be told). Its own zstd objects: nothing NBMF's codec does touches them. Each call
    is one line of C calls, with per-class objects looked up once: a reference that carried
    Python overhead NBMF does not (a store lookup, a keyword argument, a format string) would
    flatter every fraction of it and hide that much of a slowdown from the gate."""

    def __init__(self, nbmf: NbmfCodec, settings: CodecSettings = BOUND_SETTINGS):
        self.nbmf = NbmfCodec(nbmf.store, settings)
        self._heads: dict[str, tuple[int, int, Callable[[bytes], bytes]]] = {}  # class -> (byte, dictionary id, small-body compress)
        self._decompress: dict[int, Callable] = {}  # first byte -> the decompressor's decompress (it decodes what it encoded)

    def _head(self, class_name: str) -> tuple[int, int, Callable[[bytes], bytes]]:
        dict_id = self.nbmf.dict_id(class_name)
        byte = dict_id // 1000  # the class's code (dictionary ids are code * 1000 + version), 0 without one
        small = self.nbmf.small_compressor(dict_id).compress
        self._decompress[byte] = self.nbmf._decompressor(dict_id).decompress
        self._heads[class_name] = byte, dict_id, small
        return self._heads[class_name]

    def encode(self, record, class_name: str) -> bytes:
        canonical = canonical_json(record)
        byte, dict_id, small = self._heads.get(class_name) or self._head(class_name)
        frame = small(canonical) if len(canonical) < SMALL_BODY_BYTES else self.nbmf.compress(dict_id, canonical)
        return _BOUND_HEAD(byte, sha256(canonical).digest(), len(canonical)) + frame

    def raw(self, data: bytes) -> bytes:
        return self._decompress[data[0]](data[37:], _U32_AT_33(data)[0])

    def decode(self, data: bytes):
        raw = self._decompress[data[0]](data[37:], _U32_AT_33(data)[0])  # raw(), inline: a call is part of what is measured
        if sha256(raw).digest() != data[1:33]:
            raise ValueError("bound: hash mismatch")
        return orjson.loads(raw)


_BOUND_HEAD = struct.Struct("<B32sI").pack
_U32_AT_33 = struct.Struct("<33xI").unpack_from


def codecs(nbmf: NbmfCodec, bound_settings: CodecSettings = BOUND_SETTINGS) -> dict[str, Codec]:
    zstd3, zstd19 = zstandard.ZstdCompressor(level=3), zstandard.ZstdCompressor(level=19)
    unzstd = zstandard.ZstdDecompressor()
    with_dict = {level: _PerClassDict(nbmf, level) for level in (1, 3, 19)}
    bound = _Bound(nbmf, bound_settings)

    def plain(name, compress, decompress) -> Codec:
        return Codec(
            name,
            lambda rec, _cls: compress(canonical_json(rec)),
            lambda data: orjson.loads(decompress(data)),
            lambda data: hashlib.sha256(decompress(data)).hexdigest(),
        )

    identity = lambda data: data  # noqa: E731 - raw JSON stores the canonical bytes as they are
    bound_signature = lambda data: hashlib.sha256(bound.raw(data)).hexdigest()  # noqa: E731 - the hash it stores is checked by decode
    nbmf_signature = lambda env: hashlib.sha256(canonical_json(nbmf.decode(env))).hexdigest()  # noqa: E731 - verified by decode
    return {
        "raw_json": plain("raw_json", identity, identity),
        "zlib_9": plain("zlib_9", lambda b: zlib.compress(b, 9), zlib.decompress),
        "zstd_3": plain("zstd_3", zstd3.compress, unzstd.decompress),
        "zstd_19": plain("zstd_19", zstd19.compress, unzstd.decompress),
        **{
            f"zstd_dict_{level}": Codec(
                f"zstd_dict_{level}",
                z.encode,
                lambda data, z=z: orjson.loads(z.raw(data)),
                lambda data, z=z: hashlib.sha256(z.raw(data)).hexdigest(),
            )
            for level, z in with_dict.items()
        },
        BOUND: Codec(BOUND, bound.encode, bound.decode, bound_signature),
        TEXT_BOUND: Codec(TEXT_BOUND, lambda r, c: bound.encode(normalize_strings(r), c), bound.decode, bound_signature),
        SERIES_BOUND: Codec(SERIES_BOUND, lambda r, c: bound.encode(on_grid(r), c), bound.decode, bound_signature),
        "nbmf_lossless": Codec("nbmf_lossless", lambda r, c: nbmf.encode(r, c, LOSSLESS), nbmf.decode, nbmf_signature),
        "nbmf_semantic": Codec("nbmf_semantic", lambda r, c: nbmf.encode(r, c, SEMANTIC), nbmf.decode, nbmf_signature),
    }


def applicable(codec_name: str, class_name: str) -> bool:
    rule = record_class(class_name).semantic
    if codec_name in (TEXT_BOUND, SERIES_BOUND):
        return SEMANTIC_REFERENCES.get(rule) == codec_name
    return codec_name != "nbmf_semantic" or rule is not None


def reference(codec_name: str, class_name: str) -> str:
    """The codec a gated codec's timings on a class are divided by. NBMF's semantic text encode
    is mostly Python (the text rule, a second canonical JSON), the bound mostly C: on roast
    notes NBMF's side was ~4x the bound's and their ratio stepped by 14 % inside one process
    with nothing changed (a shift of Python's speed against C's under the machine's load;
    docs/regressions.md). ``TEXT_BOUND`` does the text rule too, so both sides share that mix;
    likewise ``SERIES_BOUND`` rounds the series channels with numpy (telemetry semantic encode:
    NBMF's numpy series code against the bound's orjson + zstd, clean runs flagged 5 %)."""
    if codec_name == "nbmf_semantic":
        return SEMANTIC_REFERENCES.get(record_class(class_name).semantic, BOUND)
    return BOUND


def on_grid(record):
    """The record with each series channel rounded to its grid (``SERIES_STEPS``), a gap as NaN,
    which orjson writes as null: what the series rule's semantic form holds, by numpy alone."""
    points = record.get("points") if isinstance(record, dict) else None
    if not isinstance(points, dict):
        return record
    rounded = dict(points)
    for channel, (step, _bound, _unit) in SERIES_STEPS.items():
        values = points.get(channel)
        if isinstance(values, list) and values:
            scale = round(1 / step)
            try:
                rounded[channel] = (np.rint(np.array(values, dtype=np.float64) * scale) / scale).tolist()
            except (TypeError, ValueError):  # not a numeric series: the rule keeps it as it is
                continue
    return {**record, "points": rounded}


def history_key(class_name: str, codec_name: str, op: str) -> str:
    """The gate's key: class/codec/op, plus the reference when it is not the bound. A ratio to
    another reference is another quantity: it starts its own history rather than stepping
    inside the old one (a step down would pass, but would widen the key's threshold and hold
    its window's baseline at the old level for up to 30 runs)."""
    ref = reference(codec_name, class_name)
    return f"{class_name}/{codec_name}/{op}" + ("" if ref == BOUND else f"/{ref}")


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
    encode_ns: list[int] = field(default_factory=list)  # thread CPU time per repetition
    decode_ns: list[int] = field(default_factory=list)
    encode_wall_ns: list[int] = field(default_factory=list)
    decode_wall_ns: list[int] = field(default_factory=list)
    preempted: list[bool] = field(default_factory=list)  # per repetition: the scheduler took the CPU mid-call


@dataclass
class BenchmarkOutcome:
    rows: list[dict]  # record_class, size_bucket, codec, metric, origin, value, unit
    samples: list[tuple]  # (record_class, size_bucket, codec, origin, op, ns)
    test_records: int
    excluded_training_overlap: int
    ratios: list[tuple] = field(default_factory=list)  # timing_ratios(): (record_class, codec, op, clock, sample, ratio)


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


def run_benchmark(
    records: list[CorpusRecord], nbmf: NbmfCodec, repetitions: int = DEFAULT_REPETITIONS, bound_settings: CodecSettings = BOUND_SETTINGS
) -> BenchmarkOutcome:
    """``bound_settings``: the bound's zstd levels (fixed by default, see ``BOUND_SETTINGS``; a
    level sweep passes NBMF's, so the bound does the same work at every point)."""
    test, overlap = held_out(records, nbmf)
    available = codecs(nbmf, bound_settings)
    measured: list[Measured] = []
    for name, codec in available.items():
        for r in test:
            if not applicable(name, r.record_class):
                continue
            envelope = codec.encode(r.record, r.record_class)
            decoded = codec.decode(envelope)
            semantic = name in SEMANTIC_CODECS
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
    time_interleaved(measured, available, repetitions)
    ratios = timing_ratios(measured)
    origins = defaultdict(set)
    for r in test:
        origins[r.record_class].add(r.origin)
    class_origins = {cls: origin_label(o) for cls, o in origins.items()}
    return BenchmarkOutcome(aggregate(measured) + ratio_rows(ratios, class_origins), latency_samples(measured), len(test), overlap, ratios)


def ratio_rows(ratios: list[tuple], class_origins: dict[str, str]) -> list[dict]:
    """Per key the run's median timing ratio to the reference, as result rows (metric
    ``<op>_<clock>_ratio``, bucket ``all``): what the golden x1.5 rule checks. Pooled over the
    class's origins (``class_origins`` names them), as the timing gate's history keys are."""
    samples = defaultdict(list)
    for cls, codec, op, clock, _sample, ratio in ratios:
        samples[cls, codec, f"{op}_{clock}_ratio"].append(ratio)
    return [
        {"record_class": cls, "size_bucket": ALL, "codec": codec, "metric": metric, "origin": class_origins[cls],
         "value": float(np.median(v)), "unit": f"x {reference(codec, cls)}"}
        for (cls, codec, metric), v in sorted(samples.items())
    ]


def time_interleaved(measured: list[Measured], available: dict[str, Codec], repetitions: int) -> None:
    """Time every codec on every record, record by record, in the order ``_order`` gives each
    repetition, so load from other processes falls on all codecs alike. Each timed call follows
    an untimed call of the same codec on the same record (as timeit's loop does): the timed one
    is warm, so it does not pay for whatever ran before it (another codec's zstd tables and
    dictionary, another record) — measured, that cost was 15-30 µs on 20-70 µs roast-note calls
    and differed from run to run. A repetition in which the thread was preempted (an involuntary
    context switch during its calls) is timed again, up to ``PREEMPTED_RETRIES`` times, and
    noted if it still was: ``timing_ratios`` leaves those out. A wait in the codec (a sleep, a
    blocking call) is a voluntary switch: never retried, it stays in the wall time."""
    by_record: dict[int, list[Measured]] = defaultdict(list)
    for m in measured:
        by_record[id(m.record)].append(m)
    cpu, wall = time.thread_time_ns, time.perf_counter_ns
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()  # as timeit does: a collection would land on whichever call happened to trigger it
    try:
        _timed_repetitions(by_record, available, repetitions, cpu, wall)
    finally:
        if was_enabled:
            gc.enable()


def _order(items: list[Measured], rep: int) -> list[Measured]:
    """One record's codecs for turn ``rep``: the others rotated; then each reference with the
    gated codecs divided by it back to back at the end, the reference first in even turns and
    last in odd ones (the gate's paired ratios compare calls a few microseconds apart, each side
    as often first as second). ``_timed_repetitions`` gives record i of repetition r the turn
    r + i: the second of the two calls runs on caches the first warmed (measured: NBMF's decode
    of all records 1.05 of the bound's second, 0.79 first), so with an odd number of repetitions
    and the same order for every record one side would be second more often in the totals."""
    block = []
    for ref in sorted((m for m in items if m.codec in REFERENCES), key=lambda m: REFERENCES.index(m.codec)):
        gated = [m for m in items if m.codec in GATED_CODECS and reference(m.codec, m.record.record_class) == ref.codec]
        block += [ref, *gated] if rep % 2 == 0 else [*gated, ref]
    others = [m for m in items if all(m is not b for b in block)]
    shift = rep % len(others) if others else 0
    return others[shift:] + others[:shift] + block


def involuntary_switches() -> int:
    """This thread's involuntary context switches so far (Linux; elsewhere the process's)."""
    return resource.getrusage(getattr(resource, "RUSAGE_THREAD", resource.RUSAGE_SELF)).ru_nivcsw


def _timed_repetitions(by_record, available, repetitions, cpu, wall) -> None:
    for rep in range(repetitions):
        for i, items in enumerate(by_record.values()):
            for m in _order(items, rep + i):  # each order on every other record: balanced totals (_order)
                codec, record, cls = available[m.codec], m.record.record, m.record.record_class
                codec.encode(record, cls)  # warm-up, untimed (the decode follows the timed encode)
                for _attempt in range(1 + PREEMPTED_RETRIES):
                    switches = involuntary_switches()
                    w0, c0 = wall(), cpu()
                    envelope = codec.encode(record, cls)
                    c1, w1 = cpu(), wall()
                    codec.decode(envelope)
                    c2, w2 = cpu(), wall()
                    preempted = involuntary_switches() != switches
                    if not preempted:
                        break
                m.encode_ns.append(c1 - c0)
                m.decode_ns.append(c2 - c1)
                m.encode_wall_ns.append(w1 - w0)
                m.decode_wall_ns.append(w2 - w1)
                m.preempted.append(preempted)


def timing_run(records: list[CorpusRecord], available: dict[str, Codec], repetitions: int) -> list[tuple]:
    """Only the timing of ``available`` (which must hold the reference codec) on ``records``:
    the gate's samples, without the fidelity checks of a full run (scripts/gate_power.py)."""
    measured = [
        Measured(r, name, 0, True, True) for r in records for name in available if applicable(name, r.record_class)
    ]
    time_interleaved(measured, available, repetitions)
    return timing_ratios(measured)


def timing_ratios(measured: list[Measured], codecs: tuple[str, ...] = GATED_CODECS) -> list[tuple]:
    """(record_class, codec, op, clock, sample, ratio) for keys of >= MIN_GATED_RECORDS records:
    one sample per record from the paired ratios codec time / its reference's time (``reference``),
    both measured on that record back to back in the same repetition (``paired_sample``). Paired, so a change of
    machine load between repetitions or records falls on both sides of each ratio. A repetition
    in which either call was preempted is left out: the wall clock counts the time another
    process ran (a ~1 ms telemetry call is preempted far more often than its ~0.3 ms reference,
    so its wall ratio grew with the load), and the CPU clock the cold caches after it."""
    references = {(id(m.record), m.codec): m for m in measured if m.codec in REFERENCES}
    groups: dict[tuple[str, str], list[Measured]] = defaultdict(list)
    for m in measured:  # per class only: a mixture's median jumps between its classes from run to run
        if m.codec in codecs and (id(m.record), reference(m.codec, m.record.record_class)) in references:
            groups[m.record.record_class, m.codec].append(m)
    rows = []
    for (cls, codec), items in sorted(groups.items()):
        if len(items) < MIN_GATED_RECORDS:
            continue
        for op in ("encode", "decode"):
            for clock, suffix in (("cpu", "_ns"), ("wall", "_wall_ns")):
                for i, m in enumerate(items):
                    ref = references[id(m.record), reference(codec, cls)]
                    base = np.maximum(getattr(ref, op + suffix), 1)
                    kept = ~(np.asarray(m.preempted, dtype=bool) | np.asarray(ref.preempted, dtype=bool))
                    rows.append((cls, codec, op, clock, i, paired_sample(np.asarray(getattr(m, op + suffix)) / base, kept)))
    return rows


def paired_sample(ratios: np.ndarray, kept: np.ndarray | None = None) -> float:
    """One record's sample from its per-repetition paired ratios: the geometric mean of the
    median over the even repetitions and over the odd ones (one of them has the reference first,
    the other last, ``_order``),
    each over the repetitions in ``kept`` (not preempted) — all of that order's when none is
    kept (a machine so loaded that every call is preempted still gives a sample). The reference
    is first in one order and last in the other, so a cost that falls on whichever call comes
    first weighs on each side alike; a plain median of 7 (4 of one order, 3 of the other)
    would sit on the edge between the two groups. A median per order ignores a call disturbed
    in one repetition; a wait in the codec is in every repetition, so in both."""
    if len(ratios) < 2:
        return float(ratios[0])
    kept = np.ones(len(ratios), dtype=bool) if kept is None else kept
    medians = []
    for order in (slice(0, None, 2), slice(1, None, 2)):
        part, ok = ratios[order], kept[order]
        medians.append(np.median(part[ok] if ok.any() else part))
    return float(np.sqrt(medians[0] * medians[1]))


def _groups(m: Measured) -> list[tuple[str, str]]:
    bucket = m.record.size_bucket
    buckets = [bucket, ALL] + ([LT4K] if bucket != "large" else [])
    classes = [m.record.record_class] + ([ALL] if m.codec not in SEMANTIC_CODECS else [])
    return [(c, b) for c in classes for b in buckets]


def aggregate(measured: list[Measured]) -> list[dict]:
    """The metrics of every (class, bucket, codec) group: one row set over all its records, labelled
    with their origins (``origin_label``), and when they are of several origins one per origin too."""
    groups: dict[tuple[str, str, str], list[Measured]] = defaultdict(list)
    for m in measured:
        for cls, bucket in _groups(m):
            groups[(cls, bucket, m.codec)].append(m)
    rows = []
    for (cls, bucket, codec), items in sorted(groups.items()):
        by_origin: dict[str, list[Measured]] = defaultdict(list)
        for m in items:
            by_origin[m.record.origin].append(m)
        parts = {origin_label(by_origin): items, **(by_origin if len(by_origin) > 1 else {})}
        for origin, part in parts.items():
            rows += [{"record_class": cls, "size_bucket": bucket, "codec": codec, "metric": k, "origin": origin,
                      "value": float(v), "unit": u} for k, (v, u) in metrics(part).items()]
    return rows


def metrics(items: list[Measured]) -> dict[str, tuple[float, str]]:
    """{metric: (value, unit)} over the measured records ``items`` (one codec)."""
    original = np.array([len(m.record.canonical) for m in items], dtype=float)
    encoded = np.array([m.encoded_bytes for m in items], dtype=float)
    enc = np.concatenate([m.encode_ns for m in items]).astype(float)
    dec = np.concatenate([m.decode_ns for m in items]).astype(float)
    reps = len(items[0].encode_ns)
    out = {
        "records": (len(items), "count"),
        "original_bytes": (original.sum(), "bytes"),
        "encoded_bytes": (encoded.sum(), "bytes"),
        "ratio_total": (original.sum() / encoded.sum(), "x"),
        "ratio_p50": (float(np.median(original / encoded)), "x"),
        "exact_match_rate": (np.mean([m.exact for m in items]), "fraction"),
        "signature_match_rate": (np.mean([m.signature_ok for m in items]), "fraction"),
        "encode_mb_s": (original.sum() * reps / enc.sum() * 1e3, "MB/s"),
        "decode_mb_s": (original.sum() * reps / dec.sum() * 1e3, "MB/s"),
        "encode_wall_mb_s": (original.sum() * reps / sum(sum(m.encode_wall_ns) for m in items) * 1e3, "MB/s"),
        "decode_wall_mb_s": (original.sum() * reps / sum(sum(m.decode_wall_ns) for m in items) * 1e3, "MB/s"),
    }
    for op, ns in (("encode", enc), ("decode", dec)):
        for q in (50, 95, 99):
            out[f"{op}_p{q}_us"] = (float(np.percentile(ns, q)) / 1e3, "µs")
    errors = defaultdict(list)
    for m in items:
        for channel, err in m.errors.items():
            errors["c" if channel in TEMPERATURE_CHANNELS else channel].append(err)
    for name, parts in errors.items():
        err = np.concatenate(parts)
        unit = "°C" if name == "c" else SERIES_STEPS[name][2]
        suffix = "c" if name == "c" else name
        out[f"max_abs_error_{suffix}"] = (float(err.max()), unit)
        out[f"p99_abs_error_{suffix}"] = (float(np.percentile(err, 99)), unit)
    return out


def latency_samples(measured: list[Measured]) -> list[tuple]:
    return [
        (m.record.record_class, m.record.size_bucket, m.codec, m.record.origin, op, ns)
        for m in measured
        for op, samples in (("encode", m.encode_ns), ("decode", m.decode_ns))
        for ns in samples
    ]


def result_row(rows: list[dict], record_class: str, size_bucket: str, codec: str, metric: str, origin: str | None = None) -> dict | None:
    """The row of that key measured on ``origin``; None: the row over every origin of its records (the pooled one)."""
    found = [row for row in rows if (row["record_class"], row["size_bucket"], row["codec"], row["metric"]) ==
             (record_class, size_bucket, codec, metric) and origin in (None, row["origin"])]
    return max(found, key=lambda row: row["origin"].count(POOLED), default=None)


def value(rows: list[dict], record_class: str, size_bucket: str, codec: str, metric: str, origin: str | None = None) -> float | None:
    row = result_row(rows, record_class, size_bucket, codec, metric, origin)
    return None if row is None else row["value"]


def targets(rows: list[dict]) -> list[dict]:
    """The issue's targets, each with what this run reached (None when the corpus lacks the class)
    and the origins of the records it was reached on (the pooled rows)."""

    def pooled(cls, bucket, codec, metric):
        row = result_row(rows, cls, bucket, codec, metric)
        return (None, None) if row is None else (row["value"], row["origin"])

    def of(cls, bucket, codec, metric, baseline_codec):
        (a, origin), (b, _) = pooled(cls, bucket, codec, metric), pooled(cls, bucket, baseline_codec, metric)
        return (a / b if a and b else None), origin

    def ratio_to(cls, bucket, codec, baseline="zstd_19"):
        return of(cls, bucket, codec, "ratio_total", baseline)

    def of_bound(op, cls=ALL):
        return of(cls, ALL, "nbmf_lossless", f"{op}_mb_s", BOUND)

    reached = [
        ("NBMF lossless ratio / zstd+dict-19 ratio, records < 4 KB", ratio_to(ALL, LT4K, "nbmf_lossless", "zstd_dict_19"), ">=", 1.0),
        ("NBMF lossless encode speed / bound (orjson+zstd+SHA-256), all records", of_bound("encode"), ">=", 0.95),
        ("NBMF lossless decode speed / bound (zstd+SHA-256+orjson), all records", of_bound("decode"), ">=", 0.95),
        ("NBMF lossless ratio / zstd-19 ratio, records < 4 KB", ratio_to(ALL, LT4K, "nbmf_lossless"), ">=", 1.5),
        ("NBMF semantic ratio / zstd-19 ratio, telemetry", ratio_to("telemetry", ALL, "nbmf_semantic"), ">=", 3.0),
        ("telemetry semantic max abs error °C", pooled("telemetry", ALL, "nbmf_semantic", "max_abs_error_c"), "<=", 0.05),
        ("NBMF lossless encode MB/s (all records)", pooled(ALL, ALL, "nbmf_lossless", "encode_mb_s"), ">=", 100.0),
        ("NBMF lossless decode MB/s (all records)", pooled(ALL, ALL, "nbmf_lossless", "decode_mb_s"), ">=", 300.0),
        ("NBMF semantic encode MB/s (telemetry)", pooled("telemetry", ALL, "nbmf_semantic", "encode_mb_s"), ">=", 100.0),
        ("NBMF semantic decode MB/s (telemetry)", pooled("telemetry", ALL, "nbmf_semantic", "decode_mb_s"), ">=", 300.0),
    ]
    return [
        {
            "target": name,
            "reached": got,
            "goal": f"{op} {goal}",
            "met": None if got is None else (got >= goal if op == ">=" else got <= goal),
            "origin": origin,
        }
        for name, (got, origin), op, goal in reached
    ]
