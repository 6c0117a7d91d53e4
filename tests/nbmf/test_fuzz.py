"""Seeded fuzzing of the NBMF envelope: every corruption is the codec's own error, never a wrong
record and never a foreign exception."""
import random

import pytest

from daena_pipelines.nbmf.codec import (
    FLAG_BARE,
    FLAG_INHERITED,
    FLAG_SEMANTIC,
    JSON_TYPES,
    LOSSLESS,
    SEMANTIC,
    TAG_BYTES,
    CodecSettings,
    NbmfCodec,
    NbmfError,
    canonical_json,
    read_meta,
)

SEED = 20261201
MUTATIONS_PER_ENVELOPE = 200
SHORTEST_CUTS = 16  # the header (at most 3 + 5 + 5 bytes with a body length) and the start of the tag


def envelopes(corpus):
    codec = NbmfCodec(settings=CodecSettings())
    records = [(r.record, r.record_class) for r in corpus[0]][:: max(1, len(corpus[0]) // 12)]
    records += [
        ({"proposal_id": "p1", "source": "s", "audit_log": [{"at": i, "to": s, "source": "s", "proposal_id": "p1"} for i, s in enumerate("ABC")]}, "command"),  # inherited members
        ({"proposal_id": "p1", "audit_log": [{"at": i, "to": s, "src": "x", "proposal_id": "p1"} for i, s in enumerate("ABC")]}, "command"),  # not
        ({"events": '{"CHARGE":16,"DROP":420,"FCs":309}' * 4, "settings": '{"auc_base_c":100.0,"auc_begin":"TP"}'}, "session"),  # quotes
        ([1, 2.5, None, "x"], "eval_result"),
        ("a judge's reasoning", "judge_reasoning"),
        (3.25, "eval_result"),
        (True, "eval_result"),
        (None, "eval_result"),
    ]
    out = []
    for record, cls in records:
        for fidelity in (LOSSLESS, SEMANTIC):
            try:
                envelope = codec.encode(record, cls, fidelity)
            except ValueError:  # lossless-only class
                continue
            expected = canonical_json(record if fidelity == LOSSLESS else codec.semantic_form(record, cls))
            out.append((envelope, expected))
    return codec, out


def mutate(rng: random.Random, envelope: bytes, others: list[bytes]) -> bytes:
    data = bytearray(envelope)
    kind = rng.randrange(7)
    if kind == 0:  # flip 1-3 bits anywhere
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == 1:  # flip a bit in the header (where lengths, class, fidelity and type live)
        data[rng.randrange(min(len(data), read_meta(envelope).header_length))] ^= 1 << rng.randrange(8)
    elif kind == 2:  # truncate
        del data[rng.randrange(len(data)) :]
    elif kind == 3:  # trailing bytes
        data += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    elif kind == 4:  # random byte values
        for _ in range(rng.randint(1, 4)):
            data[rng.randrange(len(data))] = rng.randrange(256)
    elif kind == 5:  # another envelope's payload behind this header and tag
        other = rng.choice(others)
        data = data[: read_meta(envelope).header_length + TAG_BYTES] + other[read_meta(other).header_length + TAG_BYTES :]
    else:  # rewrite a header field to another valid value: fidelity, JSON type, class, bare payload, inherited members
        field = rng.randrange(5)
        if field == 0:
            data[1] ^= FLAG_SEMANTIC
        elif field == 4:
            data[1] ^= FLAG_INHERITED
        elif field == 3:
            data[1] ^= FLAG_BARE
        elif field == 1:
            data[1] = (data[1] & ~0b1110) | (rng.randrange(len(JSON_TYPES)) << 1)
        else:
            data[0] = (data[0] & 0xF0) | rng.randint(1, 6)
    return bytes(data)


def test_fuzzed_envelopes_fail_with_the_codecs_own_error(corpus):
    codec, cases = envelopes(corpus)
    rng = random.Random(SEED)
    all_envelopes = [e for e, _ in cases]
    tried = wrong = foreign = harmless = 0
    for envelope, expected in cases:
        assert canonical_json(codec.decode(envelope)) == expected
        # every cut inside the header and tag (where the straight paths index bytes), then random corruptions
        cuts = [envelope[:n] for n in range(SHORTEST_CUTS)]
        for corrupt in cuts + [mutate(rng, envelope, all_envelopes) for _ in range(MUTATIONS_PER_ENVELOPE)]:
            if corrupt == envelope:
                continue
            tried += 1
            try:
                decoded = codec.decode(corrupt)
            except NbmfError:
                continue
            except Exception as exc:  # noqa: BLE001 - counted: the test's point
                foreign += 1
                print(f"foreign {type(exc).__name__}: {exc}")
                continue
            if canonical_json(decoded) == expected:
                harmless += 1  # e.g. a zstd frame bit that changes nothing; the tag covered the content
            else:
                wrong += 1
    print(f"fuzz: {tried} corrupted envelopes, {wrong} wrong decodes, {foreign} foreign exceptions, {harmless} decoded unchanged")
    assert tried >= 5000
    assert (wrong, foreign) == (0, 0)


@pytest.mark.parametrize("length", [2**36, 2**30 + 1])
def test_absurd_lengths_are_refused_before_any_allocation(length):
    codec = NbmfCodec(settings=CodecSettings(use_dictionaries=False))
    envelope = codec.encode({"a": 1}, "session")
    meta = read_meta(envelope)
    varint = bytearray()
    n = length
    while True:
        varint.append((n & 0x7F) | (0x80 if n >> 7 else 0))
        n >>= 7
        if not n:
            break
    # header up to the dictionary version (byte 2, no dictionary = one 0 byte), then the huge length
    forged = envelope[:3] + bytes(varint) + envelope[meta.header_length :]
    with pytest.raises(NbmfError, match="out of bounds"):
        codec.decode(forged)
