"""Where a parser process's CPU goes, per file: each stage of `ingest.prepare` timed on its own.

    python scripts/parser_stages.py [--files 1500] [--rounds 2]

Runs the stages one file after the other (each file through every stage in turn; a parser
process takes its chunk one stage at a time, ingest._prepare_chunk, so its stages run warmer
than here), on bench replicas of the shared real profiles (see
bench_ingest.py), and prints CPU ms per file of each stage, the best of the rounds: read +
SHA-256, UTF-8 decode, the literal parse (`pyliteral.loads` as `alog.parse_alog` calls it),
`alog.profile_to_session`, `validate.validate`, `ingest.session_rows`, pickling the results in
chunks of 32 (as they go back to the main process), and all of `ingest.prepare` timed
separately. Files that do not become a session are left out of every stage but the last.
CPU time on a shared machine still moves with the load: compare versions in alternating runs.
"""
from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import shutil
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))
sys.path.insert(0, str(PROJECT / "scripts"))

from bench_ingest import DEFAULT_SOURCE, make_replicas  # noqa: E402
from daena_pipelines.telemetry import alog, ingest, pyliteral, validate  # noqa: E402
from daena_pipelines.telemetry.model import InvalidSession  # noqa: E402

STAGES = ("read + sha256", "decode", "parse", "profile_to_session", "validate", "session_rows",
          "pickle (chunks of 32)", "prepare (all of it)")


def one_round(files: list[Path], quarantine: Path) -> dict[str, float]:
    spent = dict.fromkeys(STAGES, 0.0)
    now = datetime.now(timezone.utc)
    chunk: list[ingest.Prepared] = []
    for path in files:
        clock = [time.process_time()]
        data = path.read_bytes()
        sha256 = hashlib.sha256(data).hexdigest()
        clock.append(time.process_time())
        try:
            text = validate.decode_text(data)
            clock.append(time.process_time())
            profile = pyliteral.loads(text, alog._SAMPLE_LISTS)
            clock.append(time.process_time())
            session = alog.profile_to_session(profile)
            clock.append(time.process_time())
            session = validate.validate(session, str(path))
            clock.append(time.process_time())
        except (InvalidSession, pyliteral.LiteralError):
            continue
        chunk.append(ingest.Prepared(str(path), sha256, len(data), ingest.session_rows(session, str(path), sha256, now)))
        clock.append(time.process_time())
        if len(chunk) == ingest.CHUNK_FILES:
            pickle.dumps(chunk, protocol=pickle.HIGHEST_PROTOCOL)
            chunk = []
        clock.append(time.process_time())
        for stage, start, end in zip(STAGES, clock, clock[1:]):
            spent[stage] += end - start
    for path in files:  # the whole of prepare, file by file (rejected files too)
        start = time.process_time()
        ingest.prepare(str(path), (), now, quarantine)
        spent[STAGES[-1]] += time.process_time() - start
    return spent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="daena-stages-"))
    try:
        files = make_replicas(sorted(p for p in DEFAULT_SOURCE.iterdir() if ingest.parser_for(p)), work / "landing", args.files)
        load = os.getloadavg()
        best = dict.fromkeys(STAGES, float("inf"))
        for _ in range(args.rounds):
            for stage, seconds in one_round(files, work / "quarantine").items():
                best[stage] = min(best[stage], seconds)
        print(f"{len(files)} files, best of {args.rounds} rounds; load average before {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
        for stage in STAGES:
            print(f"  {stage:24s} {best[stage] / len(files) * 1e3:.3f} ms/file")
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
