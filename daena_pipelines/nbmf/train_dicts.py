"""Train and publish the next dictionary version per record class, from the training split.

    python -m daena_pipelines.nbmf.train_dicts [--warehouse PATH] [--store DIR] [CLASS ...]

Training records: the warehouse's plus the shared real profiles (corpus.reference_corpus), the
training split only.

A deliberate step, like promoting golden values: commit the new files in the store after
review. Existing versions stay, so envelopes that name them still decode.
"""
from __future__ import annotations

import argparse

from daena_pipelines.config import Settings
from daena_pipelines.nbmf.classes import RECORD_CLASSES
from daena_pipelines.nbmf.codec import lossless_body
from daena_pipelines.nbmf.corpus import load_corpus, with_reference
from daena_pipelines.nbmf.dictionaries import DictionaryStore
from daena_pipelines.db import connect

MIN_TRAINING_RECORDS = 8  # COVER needs a handful of samples to find anything worth keeping


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--warehouse", default=str(Settings.from_env().warehouse))
    parser.add_argument("--store", default=None, help="dictionary store folder (default DAENA_NBMF_DICT_DIR, else golden/nbmf/dicts)")
    parser.add_argument("classes", nargs="*", choices=[[], *RECORD_CLASSES], default=[])
    args = parser.parse_args(argv)
    with connect(args.warehouse, read_only=True) as con:
        records, skipped = with_reference(*load_corpus(con))
    store = DictionaryStore(args.store)
    for name in args.classes or sorted(RECORD_CLASSES):
        training = [r for r in records if r.record_class == name and r.split == "train"]
        samples = [r.canonical for r in training]
        if len(samples) < MIN_TRAINING_RECORDS:
            reason = skipped.get(name, f"{len(samples)} training records (need {MIN_TRAINING_RECORDS})")
            print(f"{name}: not trained: {reason}")
            continue
        for entry in store.publish(name, samples, [lossless_body(r.record, name)[0] for r in training]):
            print(f"{name}: published dictionary {entry.dict_id} ({entry.form}, {entry.size_bytes} bytes) from {len(samples)} records")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
