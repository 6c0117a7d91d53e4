"""The benchmark corpus: the warehouse's own records, one JSON value per record, by class.

Classes and where they come from (a class whose tables are missing or empty is skipped, with
the reason returned to the caller):
- session: a ``telemetry.sessions`` row without its notes;
- telemetry: a session's ``telemetry.points`` as columns (t_s, bt_c, et_c, ror, controls),
  ordered by t_s (the extra channels, ``extra_values``, are not part of the record);
- roast_note: ``telemetry.sessions.notes`` with its session id;
- command: a ``commands.proposals`` row with its ``commands.audit_log`` rows;
- eval_result: an ``evals.eval_runs`` row;
- judge_reasoning: an ``evals.judge_scores`` row that has reasoning.

Besides the warehouse, ``reference_corpus`` loads the shared real Artisan profiles
(``../shared/data/artisan-scottjames``, or ``DAENA_NBMF_REFERENCE_DIR``) through the real
telemetry ingest into a scratch in-memory DuckDB, so real sessions, notes and telemetry (whose
readings are not on NBMF's grid) are measured even when the warehouse holds only bundled or
simulated data. Its records carry ``origin = 'reference'``.

Every warehouse record carries the origin its row states, so a run can say how much of what it
measured was real: ``simulator`` (a session, its notes and points, or an eval row, from the virtual
roaster; a judge reply from a non-official endpoint), ``generated`` (a command of the generated demo
log), ``real``, or ``unlabelled`` where the table has no such column.
"""
from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import math
import os
import tempfile
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from daena_pipelines.config import Settings
from daena_pipelines.nbmf.codec import canonical_json
from daena_pipelines.nbmf.dictionaries import split_of

BUCKETS = (("tiny", 256), ("small", 4096), ("large", None))
UNLABELLED = "unlabelled"  # a warehouse row whose table does not say where it came from
SERIES_COLUMNS = ("t_s", "bt_c", "et_c", "ror_c_per_min", "heater", "fan", "drum")
IDENTITY_COLUMNS = ("eval_run_id", "run_id", "score_id", "session_id", "case_id", "judge", "partition_date")


def size_bucket(n_bytes: int) -> str:
    return next(name for name, limit in BUCKETS if limit is None or n_bytes < limit)


@dataclass
class CorpusRecord:
    key: str
    record_class: str
    record: object
    canonical: bytes = field(repr=False)
    sha256: str
    size_bucket: str
    split: str
    origin: str = UNLABELLED  # real | simulator | generated | unlabelled (warehouse records), reference

    @classmethod
    def of(cls, record_class: str, key: str, record, origin: str = UNLABELLED) -> "CorpusRecord":
        canonical = canonical_json(record)
        return cls(
            key=key,
            record_class=record_class,
            record=record,
            canonical=canonical,
            sha256=hashlib.sha256(canonical).hexdigest(),
            size_bucket=size_bucket(len(canonical)),
            split=split_of(f"{record_class}:{key}"),
            origin=origin,
        )


def jsonable(value):
    """A warehouse value as JSON: timestamps ISO 8601, NaN/inf -> null, decimals -> float."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    return value


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict]:
    cursor = con.execute(sql)
    names = [d[0] for d in cursor.description]
    return [{n: jsonable(v) for n, v in zip(names, row)} for row in cursor.fetchall()]


def _column_types(con: duckdb.DuckDBPyConnection, table: str) -> list[tuple[str, str]]:
    schema, name = table.split(".")
    return con.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = ? AND table_name = ? "
        "ORDER BY ordinal_position",
        [schema, name],
    ).fetchall()


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    return [name for name, _ in _column_types(con, table)]


def _identity(row: dict, columns: list[str]) -> str:
    present = [c for c in IDENTITY_COLUMNS if c in columns]
    return "|".join(str(row[c]) for c in present) if present else hashlib.sha256(canonical_json(row)).hexdigest()


def load_corpus(con: duckdb.DuckDBPyConnection) -> tuple[list[CorpusRecord], dict[str, str]]:
    """All records of every class present, and {class: reason} for the classes skipped."""
    tables = {f"{s}.{t}" for s, t in con.execute("SELECT table_schema, table_name FROM information_schema.tables").fetchall()}
    records: list[CorpusRecord] = []
    skipped: dict[str, str] = {}
    session_origin: dict[str, str] = {}  # a session's notes and points are as real as the session

    def need(record_class: str, *required: str) -> bool:
        missing = [t for t in required if t not in tables]
        if missing:
            skipped[record_class] = f"table {', '.join(missing)} does not exist in the warehouse"
        return not missing

    if need("session", "telemetry.sessions"):
        cols = _columns(con, "telemetry.sessions")
        # Where the clone lives and when it ran must not move golden ratios: the record keeps the
        # file's name, not its absolute path, and leaves out the ingest time.
        excluded = [c for c in ("notes", "ingested_at") if c in cols]
        exclude = f" EXCLUDE ({', '.join(excluded)})" if excluded else ""
        for row in _rows(con, f"SELECT *{exclude} FROM telemetry.sessions ORDER BY session_id"):
            if row.get("source_path"):
                row["source_path"] = Path(row["source_path"]).name
            session_origin[row["session_id"]] = row.get("source") or UNLABELLED
            records.append(CorpusRecord.of("session", row["session_id"], row, session_origin[row["session_id"]]))
        if "notes" in cols:
            for row in _rows(
                con,
                "SELECT session_id, notes FROM telemetry.sessions WHERE trim(coalesce(notes, '')) <> '' ORDER BY session_id",
            ):
                records.append(CorpusRecord.of("roast_note", row["session_id"], row, session_origin[row["session_id"]]))
        else:
            skipped["roast_note"] = "telemetry.sessions has no notes column"

    if need("telemetry", "telemetry.points"):
        present = [c for c in SERIES_COLUMNS if c in _columns(con, "telemetry.points")]
        lists = ", ".join(f"list({c} ORDER BY t_s) AS {c}" for c in present)
        for row in _rows(con, f"SELECT session_id, {lists} FROM telemetry.points GROUP BY session_id ORDER BY session_id"):
            session_id = row.pop("session_id")
            records.append(CorpusRecord.of("telemetry", session_id, {"session_id": session_id, "points": row},
                                           session_origin.get(session_id, UNLABELLED)))

    if need("command", "commands.proposals"):
        audit: dict[str, list[dict]] = {}
        if "commands.audit_log" in tables and "proposal_id" in _columns(con, "commands.audit_log"):
            # in time order when the log has a timestamp column, and deterministic either way
            types = _column_types(con, "commands.audit_log")
            times = [c for c, t in types if t.startswith("TIMESTAMP")]
            order = ", ".join([*times[:1], *(str(i) for i in range(1, len(types) + 1))])
            for row in _rows(con, f"SELECT * FROM commands.audit_log ORDER BY {order}"):
                audit.setdefault(row["proposal_id"], []).append(row)
        for row in _rows(con, "SELECT * FROM commands.proposals ORDER BY proposal_id"):
            entries = audit.get(row["proposal_id"], [])
            records.append(CorpusRecord.of("command", str(row["proposal_id"]), {**row, "audit_log": entries},
                                           row.get("origin") or UNLABELLED))

    # as with sessions' ingested_at: when the evaluation ran must not move golden ratios
    # an eval row is as real as its session; a judge reply as its endpoint (anything but the official API: simulator)
    for record_class, table, where, run_clock, origin_of in (
        ("eval_result", "evals.eval_runs", "", "evaluated_at", lambda row: row.get("session_source")),
        ("judge_reasoning", "evals.judge_scores", " WHERE trim(coalesce(reasoning, '')) <> ''", "judged_at",
         lambda row: {"anthropic": "real"}.get(row.get("source"), row.get("source"))),
    ):
        if need(record_class, table):
            cols = _columns(con, table)
            if where and "reasoning" not in cols:
                skipped[record_class] = f"{table} has no reasoning column"
                continue
            exclude = f" EXCLUDE ({run_clock})" if run_clock in cols else ""
            for row in _rows(con, f"SELECT *{exclude} FROM {table}{where}"):
                records.append(CorpusRecord.of(record_class, _identity(row, cols), row, origin_of(row) or UNLABELLED))

    for record_class in {"session", "telemetry", "roast_note", "command", "eval_result", "judge_reasoning"} - set(skipped):
        if not any(r.record_class == record_class for r in records):
            skipped[record_class] = "its tables hold no records"
    return records, skipped


def origin_counts(records: list[CorpusRecord]) -> dict[str, dict[str, int]]:
    """{record class: {origin: records}}: how much of a corpus is real, reference, simulated or generated."""
    counts: dict[str, dict[str, int]] = {}
    for r in sorted(records, key=lambda r: (r.record_class, r.origin)):
        by_origin = counts.setdefault(r.record_class, {})
        by_origin[r.origin] = by_origin.get(r.origin, 0) + 1
    return counts


def corpus_fingerprint(records: list[CorpusRecord]) -> str:
    """SHA-256 over the sorted (class, record SHA-256) pairs: same corpus, same fingerprint."""
    digest = hashlib.sha256()
    for pair in sorted((r.record_class, r.sha256) for r in records):
        digest.update(f"{pair[0]}:{pair[1]}\n".encode())
    return digest.hexdigest()


REFERENCE_CLASSES = ("session", "telemetry", "roast_note")


def reference_corpus(folder: Path | None = None) -> tuple[list[CorpusRecord], str | None]:
    """Records of the shared real profiles, ingested by the real telemetry ingest, and None; or
    no records and the reason. Under ``CI=true`` an absent folder is an error, not a skip."""
    from daena_pipelines.telemetry.ingest import discover, ingest  # the warehouse side of telemetry

    folder = folder or Settings.from_env().nbmf_reference_dir
    records: list[CorpusRecord] = []
    if not folder.is_dir():
        missing = f"real reference profiles not found at {folder}"
    else:
        with tempfile.TemporaryDirectory() as quarantine, duckdb.connect(":memory:") as con:
            files = discover(folder)[0]
            report = ingest(con, files, Path(quarantine), workers=1)
            records = [CorpusRecord.of(r.record_class, r.key, r.record, origin="reference")
                       for r in load_corpus(con)[0] if r.record_class in REFERENCE_CLASSES]
        # a folder that yields no profile (empty, the wrong one, every file rejected) is no reference
        # corpus either: before, it gave none without a reason and CI measured without the real profiles
        missing = None if records else (f"real reference profiles not found at {folder}: {len(files)} roast files, "
                                        f"{len(report.rejected)} rejected, none loaded")
    if missing and os.environ.get("CI", "").strip().lower() == "true":
        raise FileNotFoundError(f"{missing} (CI needs ../shared)")
    return records, missing


def with_reference(
    records: list[CorpusRecord], skipped: dict[str, str], folder: Path | None = None
) -> tuple[list[CorpusRecord], dict[str, str]]:
    """The warehouse records plus the reference records (of ``folder``, default the settings') not already among them."""
    reference, reason = reference_corpus(folder)
    if reason:
        return records, {**skipped, "reference": reason}
    seen = {(r.record_class, r.key) for r in records}  # a session the warehouse also ingested stays once
    extra = [r for r in reference if (r.record_class, r.key) not in seen]
    present = {r.record_class for r in extra}
    return records + extra, {k: v for k, v in skipped.items() if k not in present}
