import hashlib
import tracemalloc
from collections import OrderedDict, UserString, defaultdict

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
        assert meta.inherited == (body != r.canonical)
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


def test_inherited_members_bodies_round_trip_exactly():
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    source = 'jsonl:Grüße "roast"\\\n\u0000\x01\xff'  # a value canonical JSON escapes, and non-ASCII: the length arithmetic must hold
    rows = [{"seq": i, "to": "ABCDEFGH"[i], "note": None, "ok": True, "n": 1, "x": 0.0 if i else -0.0, "l": [1],
             "source": source, "proposal_id": "proposal-0001"} for i in range(8)]
    record = {"proposal_id": "proposal-0001", "source": source, "audit_log": rows, "tags": [{"a": 1}], "not_json": "{nope"}
    original = canonical_json(record)
    envelope = codec.encode(record, "command")
    meta = read_meta(envelope)
    assert meta.inherited and meta.original_length == len(original)
    decoded = codec.decode(envelope)
    assert decoded == record and canonical_json(decoded) == original
    # the body: the record with the members its rows repeat left out of the rows (the top level keeps them)
    body = lossless_body(record, "command")[0]
    stripped = {**record, "audit_log": [{k: v for k, v in r.items() if k not in ("proposal_id", "source")} for r in rows]}
    assert body == canonical_json(stripped) and body.count(b"proposal-0001") == 1
    # each decoded row has its own members and the inherited ones, none shared with another row but the strings
    assert all(type(r) is dict for r in decoded["audit_log"]) and len({id(r) for r in decoded["audit_log"]}) == 8
    # records that do not qualify: the canonical JSON as it is (a row from elsewhere, a row without the member,
    # a row with nothing else, a member that is not a string, no rows, not an object, another class)
    elsewhere = [dict(r) for r in rows]
    elsewhere[3]["source"] = "sqlite:elsewhere"
    for plain, cls in (
        ({**record, "audit_log": elsewhere}, "command"),
        ({**record, "audit_log": [*rows, {"seq": 9, "source": source}]}, "command"),
        ({**record, "audit_log": [*rows, {"proposal_id": "proposal-0001", "source": source}]}, "command"),
        ({**record, "audit_log": [*rows, "not an object"]}, "command"),
        ({"proposal_id": 1, "source": "s", "audit_log": [{"proposal_id": 1, "source": "s", "seq": 0}]}, "command"),
        ({"proposal_id": "p", "source": "s", "audit_log": [{"proposal_id": "p", "source": "s", "seq": True}], "x": 1.0}, "session"),
        ({"proposal_id": "p", "source": "s", "audit_log": []}, "command"),
        ({"proposal_id": "p", "audit_log": [{"proposal_id": "p", "seq": 0}]}, "command"),
        ([1, 2], "command"),
    ):
        assert lossless_body(plain, cls)[0] == canonical_json(plain), plain
        plain_envelope = codec.encode(plain, cls)
        assert not read_meta(plain_envelope).inherited and canonical_json(codec.decode(plain_envelope)) == canonical_json(plain)


def test_inherited_members_take_only_plain_dicts_and_strings():
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    rows = [{"seq": i, "proposal_id": "p", "source": "s"} for i in range(3)]
    # a defaultdict record without a member: looking the member up must not add it to the caller's record
    record = defaultdict(str, {"proposal_id": "p", "audit_log": [dict(r) for r in rows]})
    original = canonical_json(record)
    envelope = codec.encode(record, "command")
    assert canonical_json(record) == original and "source" not in record
    assert read_meta(envelope).original_length == len(original) and canonical_json(codec.decode(envelope)) == original
    # a dict subclass gets the canonical JSON, as lossless_body (what the dictionaries are trained on) says
    for subclass in (defaultdict(str, {"proposal_id": "p", "source": "s", "audit_log": rows}), OrderedDict(proposal_id="p", source="s", audit_log=rows)):
        assert not lossless_body(subclass, "command")[1] and not read_meta(codec.encode(subclass, "command")).inherited

    class Loose(str):  # equal to the record's member in Python, another string in JSON
        __eq__ = lambda self, other: str.lower(self) == str.lower(other)  # noqa: E731
        __hash__ = str.__hash__

    record = {"proposal_id": "p", "source": "s", "audit_log": [*rows, {"seq": 3, "proposal_id": Loose("P"), "source": "s"}]}
    original = canonical_json(record)
    envelope = codec.encode(record, "command")
    assert not read_meta(envelope).inherited and canonical_json(codec.decode(envelope)) == original
    # not JSON at all (equal to the member in Python): the encoder refuses it, as for any other record
    with pytest.raises(TypeError):
        codec.encode({"proposal_id": "p", "source": "s", "audit_log": [*rows, {"seq": 3, "proposal_id": UserString("p"), "source": "s"}]}, "command")


def test_signature_mismatch_is_raised_for_tampered_payload(corpus):
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    r = by_class(corpus, "roast_note")[0]
    other = codec.encode({"session_id": r.record["session_id"], "notes": "tampered"}, "roast_note")
    original = codec.encode(r.record, "roast_note")
    spliced = original[: read_meta(original).header_length + TAG_BYTES] + other[read_meta(other).header_length + TAG_BYTES :]
    with pytest.raises(EnvelopeError):
        codec.decode(spliced)
    with pytest.raises(EnvelopeError, match="not an NBMF v6 envelope"):
        codec.decode(bytes([0x53]) + original[1:])  # a version 5 envelope


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
    bodies = [s.replace(b'"', b"'") for s in samples]  # bodies other than the canonical JSON, as inherited-members ones are
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


@pytest.mark.parametrize("n, length_bytes", [(60, b"\x3c"), (600, b"\xd8\x04"), (5000, b"\x88\x27"), (20000, b"\xa0\x9c\x01")])
def test_envelope_header_and_tag_are_the_documented_bytes(n, length_bytes):
    """Header and tag written by hand (docs/nbmf.md) for each length the encoder writes its own way:
    one-byte, two-byte below and above 4 KiB of body (the tag in one call or two), three-byte."""
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    filler = hashlib.sha256(b"nbmf").hexdigest() * (n // 64 + 1)
    record = {"notes": filler[: n - len('{"notes":"","session_id":"s"}')], "session_id": "s"}
    body = canonical_json(record)
    assert len(body) == n
    envelope = codec.encode(record, "roast_note")
    # version | class, flags (object, lossless, no body length, no inherited or series body; bit 7 bare or not), dictionary version 0, original length
    header = bytes((CODEC_VERSION << 4 | record_class("roast_note").code, envelope[1], 0)) + length_bytes
    assert envelope[: len(header)] == header and envelope[1] & 0x7F == 0
    tag = hashlib.sha256(body + header + len(envelope).to_bytes(8, "little")).digest()[:TAG_BYTES]
    assert envelope[len(header) : len(header) + TAG_BYTES] == tag
    assert codec.decode(envelope) == record


def _forged_inherited(codec: NbmfCodec, body: bytes, original_length: int, json_type: int = 0) -> bytes:
    """A command envelope whose inherited-members body is `body`, with a valid tag (the tag is no secret)."""
    from daena_pipelines.nbmf.codec import FLAG_BODY_LENGTH, FLAG_INHERITED, _tag, _varint

    flags, lengths = FLAG_INHERITED | json_type << 1, _varint(original_length)
    if len(body) > original_length:
        flags |= FLAG_BODY_LENGTH
        lengths += _varint(len(body))
    header = bytes((CODEC_VERSION << 4 | record_class("command").code, flags, 0)) + lengths
    payload = codec.compress(0, body)
    return header + _tag(body, header, len(header) + TAG_BYTES + len(payload)) + payload


def test_forged_inherited_members_bodies_are_the_codecs_own_error():
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    good = b'{"audit_log":[{"seq":0}],"proposal_id":"p","source":"s"}'
    assert codec.decode(_forged_inherited(codec, good, 200)) == {"audit_log": [{"seq": 0, "proposal_id": "p", "source": "s"}], "proposal_id": "p", "source": "s"}
    for body in (
        b'{"audit_log":[{"seq":0}],"proposal_id":"p"}',  # a member missing at the top level
        b'{"proposal_id":"p","source":"s"}',  # no rows
        b'{"audit_log":[1],"proposal_id":"p","source":"s"}',  # a row that is not an object
        b'{"audit_log":[[1]],"proposal_id":"p","source":"s"}',
        b'{"audit_log":{"a":{}},"proposal_id":"p","source":"s"}',  # rows that are an object
        b'{"audit_log":"rows","proposal_id":"p","source":"s"}',  # rows that are a string
        b'{"audit_log":{},"proposal_id":"p","source":"s"}',  # an empty object or string: nothing to iterate and fail on
        b'{"audit_log":"","proposal_id":"p","source":"s"}',
        b'{"audit_log":[{}],"proposal_id":{"a":1},"source":"s"}',  # a member that is not a string (one object in every row)
        b'{"audit_log":[{}],"proposal_id":"p","source":"s"',  # not JSON
        b'[{"audit_log":[]}]',  # not an object
    ):
        with pytest.raises(EnvelopeError):
            codec.decode(_forged_inherited(codec, body, 200))
    with pytest.raises(EnvelopeError, match="not shorter"):  # a body as long as its original
        codec.decode(_forged_inherited(codec, good, len(good)))
    # the header names an inherited-members body for an array, or for a class without inherited members
    with pytest.raises(EnvelopeError, match="inherited-members body for"):
        codec.decode(_forged_inherited(codec, good, 200, json_type=1))
    session = bytearray(_forged_inherited(codec, good, 200))
    session[0] = CODEC_VERSION << 4 | record_class("session").code
    with pytest.raises(EnvelopeError, match="inherited-members body for"):
        codec.decode(bytes(session))


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


def test_a_full_frame_behind_a_three_byte_length_decodes_the_same_on_the_straight_path():
    """A record of 16 KiB - 1 MiB (telemetry's size) goes, once its head is known, through decode's
    straight path for full frames: the same record, the same refusals as the general path."""
    import random

    from daena_pipelines.nbmf.codec import FLAG_BARE, _tag, _varint

    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    rng = random.Random(7)
    record = {"points": {"bt_c": [round(rng.uniform(20, 230), 2) for _ in range(3000)]}, "session_id": "s1"}
    good = codec.encode(record, "telemetry")
    meta = read_meta(good)
    assert meta.header_length == 6 and not good[1] & FLAG_BARE and 1 << 14 <= meta.original_length <= 1 << 20
    body, payload = canonical_json(record), good[meta.header_length + TAG_BYTES :]

    def forged(json_type_bits: int, length: int, frame: bytes = payload) -> bytes:
        header = bytes((good[0], json_type_bits << 1, 0)) + _varint(length)
        return header + _tag(body, header, len(header) + TAG_BYTES + len(frame)) + frame

    content_size = bytearray(payload)
    content_size[0] = 0x20  # single segment: the frame would carry its own content size
    for _ in range(2):  # first through the general path, then through the head it left known
        assert codec.decode(good) == record
        for corrupt in (good + b"\x00", good[:-1], good[:6] + bytes((good[6] ^ 1,)) + good[7:]):
            with pytest.raises(SignatureMismatch):
                codec.decode(corrupt)
        with pytest.raises(EnvelopeError, match="not the type its header names"):
            codec.decode(forged(1, len(body)))
        with pytest.raises(EnvelopeError, match="original length"):
            codec.decode(forged(0, len(body) + 1))
        with pytest.raises(NbmfError):
            codec.decode(forged(0, len(body), bytes(content_size)))


def test_a_dictionary_version_of_two_varint_bytes_keeps_the_general_header():
    """From version 128 on the dictionary version is a two-byte varint: the encoder's five-byte fast path
    (one byte for it) must not take such an envelope (a version >= 256 does not fit; 128-255 would be misread)."""
    import zstandard

    code = record_class("roast_note").code
    dict_id = code * 1000 + 200
    samples = [canonical_json({"notes": f"roast {i} of a washed Ethiopian, first crack at {400 + i} s", "session_id": f"s{i}"})
               for i in range(300)]
    dictionary = zstandard.ZstdCompressionDict(train(samples, dict_id), dict_type=zstandard.DICT_TYPE_FULLDICT)

    class Store:  # the store after 200 published versions of this class
        def current_id(self, class_name):
            return dict_id

        def get(self, wanted):
            assert wanted == dict_id
            return dictionary

    codec = NbmfCodec(store=Store())
    record = {"notes": hashlib.sha256(b"nbmf").hexdigest() * 9, "session_id": "s"}
    n = len(canonical_json(record))
    assert 0x80 <= n < 0x4000
    envelope = codec.encode(record, "roast_note")
    header = bytes((CODEC_VERSION << 4 | code, envelope[1], 200 & 0x7F | 0x80, 200 >> 7, n & 0x7F | 0x80, n >> 7))
    assert envelope[:6] == header
    assert envelope[6 : 6 + TAG_BYTES] == hashlib.sha256(canonical_json(record) + header + len(envelope).to_bytes(8, "little")).digest()[:TAG_BYTES]
    assert codec.decode(envelope) == record
