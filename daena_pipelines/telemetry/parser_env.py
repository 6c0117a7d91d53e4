"""Imported first by the ingest's fork server (`ingest._parser_pool`), before numpy is.

The parser processes do no linear algebra, so OpenBLAS gets one thread there (unless the caller
set another number). With more, importing numpy starts OpenBLAS's thread pool, whose threads spin
before they sleep: about 0.1 s of CPU per ingest run, on the core the start-up needs for the
fork server's imports and the warehouse's schema (docs/telemetry.md, Performance).
"""
import os

os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
