"""The dictionary store: per-class zstandard dictionaries with versioned ids, committed in git.

Layout (``golden/nbmf/dicts/`` unless ``DAENA_NBMF_DICT_DIR`` says otherwise):
``manifest.json`` lists every dictionary ever published (id, class, version, file, SHA-256,
what it was trained on) and the current id per class; ``<class>.v<N>.zdict`` holds the bytes.
Versions are never rewritten: old envelopes name their dictionary id, so decoding an old
record only needs the store. Dictionary id = class code * 1000 + version.

``current`` names the dictionary NBMF encodes a class with (trained on NBMF's lossless bodies);
``baseline`` the one the zstd+dict baselines use (trained on the same training records as
canonical JSON, same trainer and size). Where the two forms are the same bytes (every class
without marked bodies) it is one and the same dictionary.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import zstandard

from daena_pipelines.config import Settings
from daena_pipelines.nbmf.classes import record_class
from daena_pipelines.nbmf.errors import UnknownDictionary

# Fixed COVER parameters and one thread make training deterministic for the same samples.
COVER_K, COVER_D = 1024, 8
MAX_DICT_BYTES = 16 * 1024


def split_of(record_key: str) -> str:
    """'train' or 'test', a stable function of the record's key (about half each)."""
    return "train" if hashlib.sha256(f"nbmf-split-v1:{record_key}".encode()).digest()[0] < 128 else "test"


@dataclass(frozen=True)
class DictionaryEntry:
    dict_id: int
    record_class: str
    version: int
    file: str
    sha256: str
    size_bytes: int
    trained_on: dict
    form: str = "canonical-json"  # what the samples were: "canonical-json" or "nbmf-body"


class DictionaryStore:
    def __init__(self, root: Path | str | None = None):
        self.root = Path(root) if root else Settings.from_env().nbmf_dict_dir
        self._entries: dict[int, DictionaryEntry] | None = None
        self._current: dict[str, int] = {}
        self._baseline: dict[str, int] = {}
        self._loaded: dict[int, zstandard.ZstdCompressionDict] = {}

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    def _manifest(self) -> dict[int, DictionaryEntry]:
        if self._entries is None:
            self._entries = {}
            if self.manifest_path.exists():
                manifest = json.loads(self.manifest_path.read_text())
                for raw in manifest["dictionaries"]:
                    entry = DictionaryEntry(**raw)
                    self._entries[entry.dict_id] = entry
                self._current = {name: int(i) for name, i in manifest["current"].items()}
                self._baseline = {name: int(i) for name, i in manifest.get("baseline", {}).items()}
        return self._entries

    def entries(self) -> list[DictionaryEntry]:
        return sorted(self._manifest().values(), key=lambda e: e.dict_id)

    def current_id(self, class_name: str) -> int:
        """The dictionary new envelopes of this class use; 0 = none trained yet."""
        self._manifest()
        return self._current.get(class_name, 0)

    def baseline_id(self, class_name: str) -> int:
        """The dictionary the zstd+dict baselines use for this class (canonical-JSON samples)."""
        self._manifest()
        return self._baseline.get(class_name, self._current.get(class_name, 0))

    def get(self, dict_id: int) -> zstandard.ZstdCompressionDict:
        if dict_id not in self._loaded:
            entry = self._manifest().get(dict_id)
            if entry is None:
                raise UnknownDictionary(f"dictionary id {dict_id} is not in {self.manifest_path}")
            data = (self.root / entry.file).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry.sha256:
                raise UnknownDictionary(f"dictionary file {entry.file} does not match its SHA-256 in the manifest")
            self._loaded[dict_id] = zstandard.ZstdCompressionDict(data, dict_type=zstandard.DICT_TYPE_FULLDICT)
        return self._loaded[dict_id]

    def training_hashes(self, class_name: str) -> set[str]:
        """SHA-256 of every record any dictionary of this class was trained on (leak guard)."""
        return {
            h for e in self._manifest().values() if e.record_class == class_name for h in e.trained_on["record_sha256"]
        }

    def publish(self, class_name: str, samples: list[bytes], bodies: list[bytes] | None = None) -> list[DictionaryEntry]:
        """Train the next version(s) for ``class_name`` from its training records and write them:
        one from NBMF's bodies (``bodies``, default the canonical samples) for NBMF, and, when
        the bodies differ from the canonical JSON, one from the canonical JSON for the baselines."""
        bodies = samples if bodies is None else bodies
        forms = [("both", bodies)] if bodies == samples else [("nbmf-body", bodies), ("canonical-json", samples)]
        published = [self._publish_one(class_name, form, data, samples) for form, data in forms]
        self._current[class_name] = published[0].dict_id
        self._baseline[class_name] = published[-1].dict_id
        manifest = {
            "format": 1,
            "current": dict(sorted(self._current.items())),
            "baseline": dict(sorted(self._baseline.items())),
            "dictionaries": [e.__dict__ for e in self.entries()],
        }
        self.manifest_path.write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n")
        return published

    def _publish_one(self, class_name: str, form: str, data: list[bytes], records: list[bytes]) -> DictionaryEntry:
        rc = record_class(class_name)
        entries = self._manifest()
        version = 1 + max((e.version for e in entries.values() if e.record_class == class_name), default=0)
        record_hashes = sorted(hashlib.sha256(s).hexdigest() for s in records)
        baseline = entries.get(self.baseline_id(class_name))
        if form != "nbmf-body" and baseline and baseline.trained_on["record_sha256"] == record_hashes:
            return baseline  # trained on these records' canonical JSON already: the trainer would repeat it
        dict_id = rc.code * 1000 + version
        trained = train(data, dict_id)
        entry = DictionaryEntry(
            dict_id=dict_id,
            record_class=class_name,
            version=version,
            file=f"{class_name}.v{version}.zdict",
            sha256=hashlib.sha256(trained).hexdigest(),
            size_bytes=len(trained),
            trained_on={
                "records": len(data),
                "bytes": sum(map(len, data)),
                "split": "train (split_of(record_key) == 'train')",
                "record_sha256": record_hashes,
            },
            form=form,
        )
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / entry.file).write_bytes(trained)
        entries[dict_id] = entry
        return entry


def train(samples: list[bytes], dict_id: int) -> bytes:
    """Deterministic COVER training; the size is capped at half the sample bytes."""
    size = min(MAX_DICT_BYTES, max(1024, sum(map(len, samples)) // 2))
    trained = zstandard.train_dictionary(size, samples, k=COVER_K, d=COVER_D, dict_id=dict_id, threads=1)
    return trained.as_bytes()
