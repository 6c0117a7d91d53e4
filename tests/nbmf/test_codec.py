import hashlib
import tracemalloc

import orjson

import pytest

from daena_pipelines.nbmf.classes import SERIES_STEPS, normalize_text, record_class
from daena_pipelines.nbmf.codec import (
    CODEC_VERSION,
    FLAG_BARE,
    EnvelopeError,
    NbmfCodec,
    NbmfError,
    TAG_BYTES,
    CodecSettings,
    SignatureMismatch,
    canonical_json,
    lossless_body,
    read_meta,
)
from daena_pipelines.nbmf.dictionaries import DictionaryStore, UnknownDictionary, train


def by_class(corpus, name):
    return [r for r in corpus[0] if r.record_class == name]


def test_lossless_round_trip_is_byte_exact_on_real_records(corpus):
    codec = NbmfCodec(settings=CodecSettings())
    records, _ = corpus
    assert {r.record_class for r in records} == {"session", "telemetry", "roast_note"}
    for r in records:
        envelope = codec.encode(r.record, r.record_class)
        assert canonical_json(codec.decode(envelope)) == r.canonical
        meta = read_meta(envelope)
        assert (meta.codec_version, meta.fidelity, meta.record_class) == (CODEC_VERSION, "lossless", r.record_class)
        assert meta.json_type == "object"
        assert meta.original_length == len(r.canonical)
        # the tag: SHA-256 over the body, the header and the envelope length (8 bytes LE), first 8 bytes
        body = lossless_body(r.record, r.record_class)[0]
        assert meta.tag == hashlib.sha256(body + envelope[: meta.header_length] + len(envelope).to_bytes(8, "little")).digest()[:8]
        assert meta.marked == (body != r.canonical)
        assert meta.dict_id == codec.store.current_id(r.record_class) != 0


def test_semantic_telemetry_stays_within_declared_bounds_and_keeps_gaps(corpus):
    codec = NbmfCodec(settings=CodecSettings())
    telemetry = by_class(corpus, "telemetry")
    assert telemetry
    for r in telemetry:
        envelope = codec.encode(r.record, "telemetry", "semantic")
        decoded = codec.decode(envelope)
        assert read_meta(envelope).original_length == len(r.canonical)
        assert len(envelope) < len(r.canonical) / 10
        for channel, (step, bound, _unit) in SERIES_STEPS.items():
            original, back = r.record["points"][channel], decoded["points"][channel]
            assert [v is None for v in original] == [v is None for v in back], channel
            err = [abs(a - b) for a, b in zip(original, back) if a is not None]
            assert max(err, default=0) <= step / 2 + 1e-9 <= bound, channel
        assert decoded["session_id"] == r.record["session_id"]
        assert decoded == codec.semantic_form(r.record, "telemetry")


def test_text_rule_is_documented_normalisation_then_exact(corpus):
    assert normalize_text("  PLAN:\r\n- alarm 13 \t  \n\n\n\nROAST:\u00a0 fast  ") == "PLAN:\n- alarm 13\n\nROAST: fast"
    codec = NbmfCodec(settings=CodecSettings())
    for r in by_class(corpus, "roast_note"):
        decoded = codec.decode(codec.encode(r.record, "roast_note", "semantic"))
        assert decoded == {"session_id": r.record["session_id"], "notes": normalize_text(r.record["notes"])}


def test_lossless_only_classes_refuse_semantic():
    with pytest.raises(ValueError, match="does not allow fidelity"):
        NbmfCodec().encode({"proposal_id": "p1"}, "command", "semantic")


@pytest.mark.parametrize("position", ["payload", "tag", "length", "dict_version", "class", "fidelity", "json_type"])
def test_corrupt_envelope_fails_loudly(corpus, position):
    codec = NbmfCodec(settings=CodecSettings())
    for r in by_class(corpus, "session")[:3] + by_class(corpus, "telemetry")[:2] + by_class(corpus, "roast_note")[:2]:
        semantic_too = r.record_class != "session"
        for fidelity in ("lossless", "semantic") if semantic_too else ("lossless",):
            envelope = bytearray(codec.encode(r.record, r.record_class, fidelity))
            meta = read_meta(bytes(envelope))
            # header: version|class, flags, dictionary version (1 byte), original length...
            index, bit = {"payload": (len(envelope) - 3, 0), "tag": (meta.header_length + 5, 0), "length": (3, 0),
                          "dict_version": (2, 1), "class": (0, 0), "fidelity": (1, 0), "json_type": (1, 1)}[position]
            envelope[index] ^= 1 << bit
            with pytest.raises(NbmfError):
                codec.decode(bytes(envelope))


def test_a_semantic_note_cannot_pass_for_a_lossless_one(corpus):
    """v1 left the fidelity bit outside the hash: flipped, a normalised note decoded as 'lossless'."""
    codec = NbmfCodec(settings=CodecSettings())
    r = next(r for r in by_class(corpus, "roast_note") if normalize_text(r.record["notes"]) != r.record["notes"])
    envelope = bytearray(codec.encode(r.record, "roast_note", "semantic"))
    envelope[1] ^= 1
    with pytest.raises(SignatureMismatch):
        codec.decode(bytes(envelope))
    with pytest.raises(SignatureMismatch):
        codec.decode(codec.encode(r.record, "roast_note", "semantic") + b"\x00")  # trailing byte


def test_marked_bodies_round_trip_exactly():
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    rows = [{"seq": i, "to": "ABCDEFGH"[i], "note": None, "ok": True, "n": 1, "x": 0.0 if i else -0.0, "l": [1],
             "source": "jsonl:proposals_2026-11-17.jsonl", "proposal_id": "proposal-0001"} for i in range(8)]
    rows[3]["source"] = "sqlite:elsewhere"
    record = {"proposal_id": "proposal-0001", "source": "jsonl:proposals_2026-11-17.jsonl", "audit_log": rows, "tags": [{"a": 1}],
              "quoted": 'Grüße "roast"\n\\ \u0000 end \x01\x1f\xff', "not_json": "{nope"}
    envelope = codec.encode(record, "command")
    assert read_meta(envelope).marked
    assert canonical_json(codec.decode(envelope)) == canonical_json(record)
    original = canonical_json(record)
    *pieces, text = lossless_body(record, "command")[0].split(b"\xff")
    # the class's repeated top-level members (command: proposal_id, source), >= 16 bytes after the comma, each as one byte
    assert pieces == [b',"proposal_id":"proposal-0001"', b',"source":"jsonl:proposals_2026-11-17.jsonl"']
    assert text.count(b"\x01") == 9 and text.count(b"\x02") == 8  # the rows and the top level, but the row from elsewhere
    assert b"proposal-0001" not in text and b'"source":"sqlite:elsewhere"' in text
    assert text.replace(b"\x02", pieces[1]).replace(b"\x01", pieces[0]) == original
    # control characters and 0xFF in the record are escaped by canonical JSON: they cannot collide with the marks
    assert all(b not in original for b in (b"\x01", b"\x02", b"\xff"))
    # a member the top level lacks is no piece
    del record["source"]
    assert lossless_body(record, "command")[0].split(b"\xff")[:-1] == [b',"proposal_id":"proposal-0001"']
    assert canonical_json(codec.decode(codec.encode(record, "command"))) == canonical_json(record)
    # pieces shorter than 16 bytes, or repeated nowhere (the body would be longer): the canonical JSON as it is;
    # another class has no repeated members
    for plain, cls in (
        ({"proposal_id": "p1", "audit_log": [{"proposal_id": "p1"}, {"proposal_id": "p1"}]}, "command"),
        ({"proposal_id": "proposal-0001", "source": "jsonl:proposals_2026-11-17.jsonl", "audit_log": []}, "command"),
        ([1, 2], "command"),
        (record, "session"),
    ):
        assert lossless_body(plain, cls)[0] == canonical_json(plain) and not read_meta(codec.encode(plain, cls)).marked


def test_signature_mismatch_is_raised_for_tampered_payload(corpus):
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    r = by_class(corpus, "roast_note")[0]
    other = codec.encode({"session_id": r.record["session_id"], "notes": "tampered"}, "roast_note")
    original = codec.encode(r.record, "roast_note")
    spliced = original[: read_meta(original).header_length + TAG_BYTES] + other[read_meta(other).header_length + TAG_BYTES :]
    with pytest.raises(EnvelopeError):
        codec.decode(spliced)
    with pytest.raises(EnvelopeError, match="not an NBMF v5 envelope"):
        codec.decode(bytes([0x43]) + original[1:])  # a version 4 envelope


def test_decoding_needs_only_the_envelope_and_the_store(corpus):
    r = by_class(corpus, "session")[0]
    envelope = NbmfCodec(settings=CodecSettings(level_small=3)).encode(r.record, "session")
    fresh = NbmfCodec(DictionaryStore(), CodecSettings(use_dictionaries=False))
    assert canonical_json(fresh.decode(envelope)) == r.canonical
    with pytest.raises(UnknownDictionary):
        NbmfCodec(DictionaryStore("/nonexistent-store")).decode(envelope)


def test_dictionaries_train_deterministically_and_versions_stay_decodable(tmp_path, corpus):
    samples = [r.canonical for r in by_class(corpus, "session")]
    assert train(samples, 1001) == train(samples, 1001)
    store = DictionaryStore(tmp_path)
    [v1] = store.publish("session", samples)
    codec = NbmfCodec(store, CodecSettings())
    old = codec.encode(by_class(corpus, "session")[0].record, "session")
    [v2] = store.publish("session", samples[::-1] + samples)
    assert (v1.dict_id, v2.dict_id) == (1001, 1002)
    assert (tmp_path / "session.v1.zdict").exists() and (tmp_path / "session.v2.zdict").exists()
    reopened = DictionaryStore(tmp_path)
    assert reopened.current_id("session") == 1002
    assert read_meta(old).dict_id == 1001
    assert canonical_json(NbmfCodec(reopened).decode(old)) == by_class(corpus, "session")[0].canonical


def test_series_with_integer_and_extreme_values():
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    t = [i * 1.5 for i in range(400)]
    record = {"session_id": "x", "points": {"t_s": t, "bt_c": [None] * 3 + [20 + i * 0.37 for i in range(len(t) - 3)],
                                             "heater": [50] * len(t), "fan": [None] * len(t)}}
    decoded = codec.decode(codec.encode(record, "telemetry", "semantic"))
    assert decoded["points"]["heater"] == [50.0] * len(t)
    assert decoded["points"]["fan"] == [None] * len(t)
    assert decoded["points"]["bt_c"][:3] == [None] * 3
    assert max(abs(a - b) for a, b in zip(record["points"]["bt_c"][3:], decoded["points"]["bt_c"][3:])) <= 0.025 + 1e-9


def test_series_too_large_for_the_grid_stay_exact():
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    record = {"session_id": "x", "points": {"t_s": [0.0, 1.5], "bt_c": [1e300, -1e300], "et_c": ["a", "b"]}}
    decoded = codec.decode(codec.encode(record, "telemetry", "semantic"))
    assert decoded["points"]["bt_c"] == [1e300, -1e300]
    assert decoded["points"]["et_c"] == ["a", "b"]
    assert decoded["points"]["t_s"] == [0.0, 1.5]


def test_a_body_beyond_one_mib_decodes_in_chunks_and_trailing_bytes_fail():
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    record = {"notes": "x" * (1 << 20) + "y", "session_id": "s"}
    envelope = codec.encode(record, "roast_note")
    assert read_meta(envelope).original_length > 1 << 20
    assert codec.decode(envelope) == record
    with pytest.raises(SignatureMismatch):
        codec.decode(envelope + b"\x00")


def test_retraining_on_new_bodies_keeps_the_baseline_dictionary_of_the_same_records(tmp_path, corpus):
    samples = [r.canonical for r in by_class(corpus, "session")]
    store = DictionaryStore(tmp_path)
    [first] = store.publish("session", samples)
    bodies = [s.replace(b'"', b"\x01") for s in samples]  # bodies other than the canonical JSON, as marked ones are
    nbmf, baseline = store.publish("session", samples, bodies)
    assert (first.form, nbmf.form, nbmf.dict_id, baseline) == ("both", "nbmf-body", 1002, first)
    assert (store.current_id("session"), store.baseline_id("session")) == (1002, 1001)
    [changed] = store.publish("session", samples[1:])  # other records: a new dictionary
    assert changed.dict_id == 1003


def test_small_bodies_store_a_bare_block_and_decode_from_it():
    codec = NbmfCodec(settings=CodecSettings())
    record = {"session_id": "s1", "notes": "first crack at 9:12, dropped at 196 C"}
    envelope = codec.encode(record, "roast_note")
    meta = read_meta(envelope)
    frame = codec.compress(meta.dict_id, lossless_body(record, "roast_note")[0])
    # frame header descriptor, window descriptor and block header: rebuilt on decode, not stored
    assert envelope[1] & FLAG_BARE and envelope[meta.header_length + TAG_BYTES :] == frame[5:]
    assert canonical_json(codec.decode(envelope)) == canonical_json(record)
    # a payload longer than any zstd block cannot be a bare one: the codec's own error, not an overflow
    forged = envelope + bytes(1 << 17)
    with pytest.raises(EnvelopeError, match="longer than a zstd block"):
        codec.decode(forged)


def _forged_marked(codec: NbmfCodec, body: bytes, original_length: int) -> bytes:
    """A command envelope whose marked body is `body`, with a valid tag (the tag is no secret)."""
    from daena_pipelines.nbmf.codec import CODEC_VERSION, FLAG_BODY_LENGTH, FLAG_MARKED, _tag, _varint

    flags, lengths = FLAG_MARKED, _varint(original_length)  # JSON type 0: an object
    if len(body) > original_length:
        flags |= FLAG_BODY_LENGTH
        lengths += _varint(len(body))
    header = bytes((CODEC_VERSION << 4 | record_class("command").code, flags, 0)) + lengths
    payload = codec.compress(0, body)
    return header + _tag(body, header, len(header) + TAG_BYTES + len(payload)) + payload


def test_forged_marked_bodies_are_the_codecs_own_error_without_blowing_up():
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    # more pieces than there are marks (0x01-0x1E): was an IndexError
    with pytest.raises(EnvelopeError):
        codec.decode(_forged_marked(codec, b"\xff".join([b',"a":1'] * 40 + [b'{"b":2\x01}']), 3000))
    # two pieces (a command's, restored in a straight line) and one or three (restored in the loop)
    for n in (1, 2, 3):
        pieces = [b',"%c":"%b"' % (97 + i, bytes([97 + i]) * 20) for i in range(n)]
        marks = bytes(range(1, n + 1))
        text = b'{"p":{"q":0' + marks + b'},"x":0' + marks + b"}"
        restored = text
        for i, piece in enumerate(pieces):
            restored = restored.replace(bytes([i + 1]), piece)
        assert codec.decode(_forged_marked(codec, b"\xff".join([*pieces, text]), len(restored))) == orjson.loads(restored)
    # a second piece made of the first one's mark: refused after its own step, on the straight line too
    with pytest.raises(EnvelopeError, match="more than its original length"):
        codec.decode(_forged_marked(codec, b"x" * 1000 + b"\xff" + b"\x01" * 1000 + b"\xff{" + b"\x02" * 10 + b"}", 3000))
    # no list of pieces at all (no 0xFF): was taken as one piece, the body but its last byte
    with pytest.raises(EnvelopeError, match="no pieces"):
        codec.decode(_forged_marked(codec, b'{"b":2\x01}', 3000))
    # pieces made of earlier marks multiply on every step (16 marks -> 8 KiB -> 4 MiB -> 32 MiB):
    # refused past the original length, before the large steps allocate
    bomb = b"\xff".join([b",aaaaaaa", b"\x01" * 512, b"\x02" * 512, b"{" + b"\x03" * 16 + b"}"])
    tracemalloc.start()
    try:
        with pytest.raises(EnvelopeError):
            codec.decode(_forged_marked(codec, bomb, 3000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20
    # a body longer than its original behind a body length (the encoder marks only shorter ones):
    # refused before an 8 KiB piece goes into 8 Ki marks (64 MiB)
    tracemalloc.start()
    try:
        with pytest.raises(EnvelopeError):
            codec.decode(_forged_marked(codec, b"a" * 8192 + b"\xff{" + b"\x01" * 8192 + b"}", 3000))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20


def test_semantic_series_envelopes_of_any_json_type_decode_and_keep_their_type():
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    for record in ([1.0, 2.0], "beans", 3, None, {"points": {"bt": [200.0, 201.5]}}):
        assert codec.decode(codec.encode(record, "telemetry", "semantic")) == record
    # a series body of another JSON type than its header names (object): the codec's own error
    from daena_pipelines.nbmf.codec import _encode_series, _tag

    good = codec.encode([1.0] * 40, "telemetry", "semantic")
    meta = read_meta(good)
    header = bytes((good[0], good[1] & ~(7 << 1))) + good[2 : meta.header_length]
    forged = header + _tag(_encode_series([1.0] * 40), header, len(good)) + good[meta.header_length + TAG_BYTES :]
    with pytest.raises(EnvelopeError, match="not the type its header names"):
        codec.decode(forged)


def test_a_body_of_another_json_type_or_length_than_its_header_is_the_codecs_own_error():
    """Only an encoder bug could write one (the tag covers header and body): checked on the
    decoded value and the body's length, on the straight path (a known head) and the general one."""
    from daena_pipelines.nbmf.codec import FLAG_BARE, _tag, _varint

    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    record = {"session_id": "s1", "notes": "charge at 200 C, first crack at 9:12, dropped at 12:05 " * 3}
    good = codec.encode(record, "roast_note")
    body = canonical_json(record)
    payload = good[read_meta(good).header_length + TAG_BYTES :]

    def forged(json_type_bits: int, length: int) -> bytes:
        header = bytes((good[0], FLAG_BARE | json_type_bits << 1, 0)) + _varint(length)
        return header + _tag(body, header, len(header) + TAG_BYTES + len(payload)) + payload

    for _ in range(2):  # first through the general path, then through the head it left known
        assert codec.decode(good) == record
        with pytest.raises(EnvelopeError, match="not the type its header names"):
            codec.decode(forged(1, len(body)))  # an array
        with pytest.raises(EnvelopeError, match="original length"):
            codec.decode(forged(0, len(body) + 1))
