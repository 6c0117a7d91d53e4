"""Incremental, idempotent ingest of a landing folder into telemetry.*.

A file is identified by (path, SHA-256 of its bytes): a file whose content is the one it held when
last ingested is skipped, so re-running changes nothing. A session is identified by its measured content
(`RoastSession.session_id`), so a renamed or re-saved copy of a roast is recorded as a
duplicate instead of a second session. A file whose content changed in place replaces the
session it produced before. A bad file becomes one `ingest_errors` row, a quarantined copy and a
reason note; the rest of the batch still loads.
"""
from __future__ import annotations

import errno
import hashlib
import multiprocessing
import os
import stat
import threading
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator
from contextlib import contextmanager, nullcontext
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import numpy as np
import orjson

from daena_pipelines.telemetry import roastime, validate
from daena_pipelines.telemetry.alog import MAX_FILE_BYTES, is_artisan_json, looks_like_artisan_json, parse_alog, parse_artisan_json
from daena_pipelines.telemetry.metrics import DEFAULT_ROR, rate_of_rise, roast_metrics
from daena_pipelines.telemetry.contract import ARTISAN_COLUMNS, SIDECAR_SUFFIX
from daena_pipelines.telemetry.model import CONTROL_COLUMNS, POINT_COLUMNS, RICHNESS_FIELDS, InvalidSession, NotARoast, RoastSession, SessionRows
from daena_pipelines.telemetry.roastime import parse_roastime
from daena_pipelines.telemetry.sidecar import parse_sidecar

if TYPE_CHECKING:  # the warehouse side (duckdb, pyarrow) is left out of parser workers: they start faster
    import duckdb




@dataclass(frozen=True)
class InputFormat:
    """A roast-file format: its parser and, for a name other files share too (``.json``, or no
    suffix at all), a test of the content, so that a stray file of that name is ignored rather
    than rejected."""

    parse: Callable[[bytes, str], RoastSession]
    looks_like: Callable[[bytes], bool] | None = None  # of the whole content
    could_be: Callable[[bytes], bool] | None = None  # of its first `head_bytes`: False spares reading the rest
    head_bytes: int = 0
    # the whole decision where the parser may still find the content to be no roast (NotARoast),
    # for those who do not parse it (the landing sensor, `discover`); else `looks_like`
    is_roast: Callable[[bytes], bool] | None = None


ROASTIME = InputFormat(parse_roastime, roastime.looks_like_roastime, roastime.could_be_roastime, roastime.HEAD_BYTES)


def _looks_like_json_roast(data: bytes) -> bool:
    return roastime.looks_like_roastime(data) or looks_like_artisan_json(data)


def _is_json_roast(data: bytes) -> bool:
    return roastime.looks_like_roastime(data) or is_artisan_json(data)


def _parse_json_roast(data: bytes, source_path: str) -> RoastSession:
    """A ``.json`` roast: an Artisan profile exported as JSON or a RoasTime roast, by content
    (both are JSON objects; only Artisan's holds `timex` at its top level)."""
    if looks_like_artisan_json(data):
        try:
            return parse_artisan_json(data, source_path)
        except NotARoast:
            if not roastime.looks_like_roastime(data):
                raise
    return parse_roastime(data, source_path)


# File-name suffix (lower case) -> format. The ingest, ``discover`` and the landing sensor read
# exactly these files; a new format is its parser module and one line here.
INPUT_FORMATS = {
    ".alog": InputFormat(parse_alog),
    SIDECAR_SUFFIX: InputFormat(parse_sidecar),
    ".json": InputFormat(_parse_json_roast, _looks_like_json_roast, roastime.could_be_roastime, roastime.HEAD_BYTES, _is_json_roast),
}
# A file name without a suffix: RoasTime saves each roast under its id alone, so its own roasts
# folder holds roasts and the app's other records alike; the content decides (docs/telemetry.md).
NO_SUFFIX = ROASTIME
NOT_A_ROAST_NAME = "no roast format has this name"  # why a file is ignored without being read

# Parser processes are started from this many files; below this, starting parser processes (a fork server that imports the parser modules,
# ~0.5 s before the first result) costs more than it saves: measured in-process against parallel
# (2 cores, load 3-5): 73 files 0.33-0.39 / 0.78-0.84 s, 200 files 0.62-0.75 / 1.03-1.07 s, 400
# files 1.03-1.27 / 1.08-1.49 s, 1,000 files 2.67-2.91 / 2.56-3.07 s
PARALLEL_FROM = 400
CHUNK_FILES = 32  # files per worker task: the pool's per-task pickling and queueing is paid per chunk


def format_by_name(path: Path | str) -> InputFormat | None:
    """The format a file's name points to (None: no roast format), without reading the file;
    a format with a ``looks_like`` test still needs the content to decide."""
    name = os.path.basename(path).lower()  # (a str path is not made a Path: per file, that is measurable)
    found = next((f for suffix, f in INPUT_FORMATS.items() if name.endswith(suffix)), None)
    if found is None and "." not in name.lstrip("."):  # ".DS_Store" has no suffix either
        return NO_SUFFIX
    return found


def content_matches(path: Path | str, form: InputFormat) -> bool:
    """Whether the file's content is in `form` (a format with a ``looks_like`` test), read as the
    ingest reads it: a file that is not (too large, its head not the format's) is not read in full."""
    try:
        file, size = open_regular(path)
        with file:
            data, why_not = _read_content(file, size, form)
    except OSError:
        return False
    return why_not is None and (form.is_roast is None or form.is_roast(data))


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_NOT_REGULAR = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"))


def open_regular(path: Path | str) -> tuple[BinaryIO, int]:
    """(the file opened for reading, its size): one path lookup. What is not a regular file is an
    OSError saying what it is: opening a named pipe waits for a writer, so a FIFO named like a
    roast held the ingest run (and the landing sensor's tick) for ever; O_NONBLOCK makes that open
    return at once, and it changes nothing for a regular file."""
    fd = os.open(path, _OPEN_FLAGS)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            what = next((name for test, name in _NOT_REGULAR if test(info.st_mode)), "a device")
            raise OSError(errno.EINVAL, f"not a regular file but {what}", str(path))
        return os.fdopen(fd, "rb", buffering=0), info.st_size
    except BaseException:
        os.close(fd)
        raise


def _read_content(file: BinaryIO, size: int, form: InputFormat) -> tuple[bytes, str | None]:
    """(the bytes, None) of an open file of `size` bytes in a format decided by content, or (what
    was read, why it is not in that format). Beyond MAX_FILE_BYTES nothing is read: no roast is that large."""
    if size > MAX_FILE_BYTES:
        return b"", f"{size} bytes, over the {MAX_FILE_BYTES}-byte limit: not read, so not taken for a roast"
    head = file.read(form.head_bytes)
    if not form.could_be(head):
        return head, "its first bytes are not those of a roast in the format its name allows"
    data = head + file.read()
    return data, None if form.looks_like(data) else "its content is not a roast in the format its name allows"


def parser_for(path: Path | str, data: bytes | None = None) -> Callable[[bytes, str], RoastSession] | None:
    """The parser of a roast file, or None for files in no roast format (by name, and by content
    where the format has a ``looks_like`` test: a stray JSON file is ignored, not rejected).
    Reads the file when that test needs its content and `data` is not given."""
    found = format_by_name(path)
    if found is None or found.looks_like is None:
        return found and found.parse
    matches = content_matches(path, found) if data is None else (found.is_roast or found.looks_like)(data)
    return found.parse if matches else None


def walk(landing_dir: Path) -> Iterator[Path]:
    """Every file below the landing folder, sorted, without descending into hidden folders
    (``.git``, the quarantine's ``.pending``, an app's caches): they hold no roasts to ingest.
    A folder that cannot be listed is yielded itself, so that its reader records it as an entry it
    cannot read (`_read`) instead of its files missing without a word (os.walk skips it)."""
    unlisted: list[Path] = []

    def cannot_list(exc: OSError) -> None:
        if os.path.isdir(exc.filename):  # a missing landing folder is `missing_landing`'s to report
            unlisted.append(Path(exc.filename))

    for folder, subfolders, files in os.walk(landing_dir, onerror=cannot_list):
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        yield from (Path(folder, name) for name in sorted(files))
        yield from unlisted
        unlisted.clear()
    yield from unlisted


def missing_landing(folder: Path) -> str | None:
    """Why the user's landing folder yields no file when it is not a folder (a typo in
    DAENA_LANDING_DIR reads as an empty folder otherwise: os.walk of a missing path yields nothing)."""
    if folder.is_dir():
        return None
    return f"the landing folder {folder} {'is not a folder' if folder.exists() else 'does not exist'}: no roast file is read from it (set DAENA_LANDING_DIR)"


def discover(landing_dir: Path) -> tuple[list[Path], list[Path]]:
    """(roast files, other files) below the landing folder, sorted (hidden folders left out)."""
    roasts, others = [], []
    for path in sorted(walk(landing_dir)):
        (roasts if parser_for(path) else others).append(path)
    return roasts, others


def session_rows(session: RoastSession, source_path: str, content_sha256: str, ingested_at: datetime) -> SessionRows:
    ev = session.events
    ror = rate_of_rise(session.time_s, session.bt_c, ev["CHARGE"], ev.get("DROP", len(session.time_s) - 1) + 1, DEFAULT_ROR.half_window_s)
    metrics = roast_metrics(session, ror)
    metrics.update(artisan_values(session.artisan_computed, session.roasted_weight_g, ev))
    points = np.empty((len(POINT_COLUMNS), len(session.time_s)))  # rows in POINT_COLUMNS order
    np.subtract(session.time_s, session.origin_s, out=points[0])
    for row, values in enumerate((session.bt_c, session.et_c, ror, *(session.controls.get(c, np.nan) for c in CONTROL_COLUMNS)), 1):
        points[row] = values
    row = {
        "session_id": session.session_id,
        "source_format": session.source_format,
        "source": session.source,
        "source_path": source_path,
        "content_sha256": content_sha256,
        "roasted_at": session.roasted_at,
        "machine": session.machine,
        "beans": session.beans,
        "title": session.title,
        "notes": session.notes,
        "batch_weight_g": session.batch_weight_g,
        "roasted_weight_g": session.roasted_weight_g,
        "original_unit": session.original_unit,
        "sample_interval_s": session.sample_interval_s,
        "control_unit": session.control_unit,
        "roast_uuid": session.roast_uuid,
        "settings": json_text(session.settings),
        "ingested_at": ingested_at,
        "charge_inferred": session.charge_inferred,
        "events": json_text(ev),
        "artisan_computed": json_text(session.artisan_computed) if session.artisan_computed else None,
        "extra_channels": list(session.extra),
    }
    return SessionRows(session=row, points=points, extra=session.extra, metrics=metrics, richness=session.richness())


# Artisan values that span a phase, by an event that bounds it. Artisan computes them even when
# a bounding event is unset, reading the unset index 0 (e.g. a Maillard AUC up to sample 0 in a
# profile without FCs), so without those events they mean nothing and are not kept.
_NEEDS_EVENT = {
    "FCs": ("artisan_mid_phase_ror_c_per_min", "artisan_mid_phase_delta_c", "artisan_mid_phase_auc_c_min",
            "artisan_finish_phase_ror_c_per_min", "artisan_finish_phase_delta_c", "artisan_finish_phase_auc_c_min"),
    "DROP": ("artisan_finish_phase_ror_c_per_min", "artisan_finish_phase_delta_c", "artisan_finish_phase_auc_c_min",
             "artisan_total_ror_c_per_min"),
}


def json_text(value: dict) -> str:
    """A JSON column's text (keys sorted, numpy values as numbers)."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY).decode()


def artisan_values(computed: dict[str, float] | None, roasted_weight_g: float | None, events: dict[str, int]) -> dict:
    """The artisan_* columns of roast_metrics from Artisan's `computed` block (already in °C).

    Artisan writes 0 for a value it could not compute (its rounding turns NaN into 0; AUC without
    DROP is 0), so 0 counts as not carried."""
    computed = computed or {}
    values = {column: computed.get(key) or None for column, key in ARTISAN_COLUMNS.items()}
    for event, columns in _NEEDS_EVENT.items():
        if event not in events:
            values.update(dict.fromkeys(columns))
    total, development = values["artisan_total_s"], values["artisan_development_s"]
    values["artisan_dtr_pct"] = 100.0 * development / total if total and development is not None else None
    if not roasted_weight_g:
        values["artisan_weight_loss_pct"] = None  # Artisan writes 100 % when the roasted weight is missing
    return values


@dataclass
class Prepared:
    path: str
    sha256: str  # of the bytes, or a stand-in from the file's size and mtime when they were not read
    size: int
    rows: SessionRows | None = None
    error_kind: str | None = None
    error: str | None = None
    quarantined_path: str | None = None
    ignored: str | None = None  # why the file is no roast (its name allowed one; its content decided)


def prepare(path: str, known_sha256s: Collection[str], ingested_at: datetime, quarantine_dir: Path) -> Prepared | None:
    """Read and hash one file and, unless its content is among `known_sha256s` (None then),
    parse and validate it and compute everything it contributes, or quarantine it. Runs in
    worker processes, so the file is read once and the main process only writes the warehouse."""
    return _prepare_chunk([(path, known_sha256s)], ingested_at, quarantine_dir)[0]


@dataclass
class _InProgress:
    """A file between the stages of `_prepare_chunk`: its bytes and the last stage's result."""

    path: str
    sha256: str
    size: int
    data: bytes
    parse: Callable[[bytes, str], RoastSession]
    value: object = None


def _read(path: str, known_sha256s: Collection[str]) -> _InProgress | Prepared | None:
    """The file read once: in a format decided by content, it is found to be no roast here, in
    the parser process, from what is read anyway (the main process does not read it)."""
    form = format_by_name(path)
    if form is None and not os.path.isdir(path):  # a folder `walk` yields is one it could not list, whatever its name
        return Prepared(path, "", 0, ignored=NOT_A_ROAST_NAME)
    not_roast = None
    try:
        file, size = open_regular(path)
        with file:
            if form.looks_like is not None:
                data, not_roast = _read_content(file, size, form)
            elif size > MAX_FILE_BYTES:  # refused before reading: memory stays bounded by the limit
                raise InvalidSession("too_large", f"{size} bytes is larger than the {MAX_FILE_BYTES}-byte limit")
            else:
                data = file.read()
    except OSError as exc:
        if os.path.isdir(path):  # a folder `walk` could not list: its roasts are not read
            return _unread(path, known_sha256s, Prepared(path, "", 0, error_kind="unreadable", error=unlistable(path)))
        if form.looks_like is not None:  # unread, it cannot be told from the other files its name allows
            return Prepared(path, "", 0, ignored=f"cannot read file: {exc.strerror or exc}")
        return _unread(path, known_sha256s, Prepared(path, "", 0, error_kind="unreadable", error=f"cannot read file: {exc.strerror or exc}"))
    except InvalidSession as exc:
        return _unread(path, known_sha256s, Prepared(path, "", size, error_kind=exc.kind, error=str(exc)))
    if not_roast is not None:
        return Prepared(path, "", len(data), ignored=not_roast)
    sha256 = hashlib.sha256(data).hexdigest()
    return None if sha256 in known_sha256s else _InProgress(path, sha256, len(data), data, form.parse)


def unlistable(folder: str) -> str:
    """Why the files of a landing folder that cannot be listed are not read, and what to do."""
    try:
        with os.scandir(folder):
            problem = "it could not be listed"
    except OSError as exc:
        problem = exc.strerror or str(exc)
    return (f"cannot list folder: {problem}; none of its files is read: let the ingest's user list it "
            "(read and execute permission) and run the ingest again")


def _unread(path: str, known_sha256s: Collection[str], error: Prepared) -> Prepared | None:
    """`error` for a file whose bytes were not read, or None when it was recorded before. With no
    content to hash, the file's size and mtime stand in for it, so the same unreadable file gives
    one error row, not one more per run, and a repaired one is read again."""
    marker = stat_marker(path)
    return None if marker in known_sha256s else replace(error, sha256=marker)


def _parsed(item: _InProgress) -> RoastSession:
    return item.parse(item.data, item.path)


def _advanced(item: _InProgress, stage: Callable[[_InProgress], object], quarantine_dir: Path) -> _InProgress | Prepared:
    """`item` with `stage`'s result, or the file quarantined when the stage refuses it."""
    try:
        item.value = stage(item)
        return item
    except NotARoast as exc:  # nothing of it goes to the warehouse or the quarantine
        return Prepared(item.path, "", item.size, ignored=str(exc))
    except InvalidSession as exc:
        kind, message = exc.kind, str(exc)
    except Exception as exc:  # a parser bug must not sink the batch: record it against the file
        kind, message = "internal_error", f"{type(exc).__name__}: {exc}"
    quarantined = _quarantine(item.path, item.data, item.sha256, kind, message, quarantine_dir)
    return Prepared(item.path, item.sha256, item.size, error_kind=kind, error=message, quarantined_path=quarantined)


def stat_marker(path: str) -> str:
    """Stands in for the SHA-256 of a file whose bytes were not read."""
    try:
        info = os.stat(path)
    except OSError:
        return "unread:missing"
    return f"unread:{info.st_size}:{info.st_mtime_ns}"


# files of a chunk staged together hold their bytes and parsed sessions at once: up to this many
# bytes read (a chunk of real profiles is ~3-8 MiB), so 32 files near MAX_FILE_BYTES never are
STAGED_BYTES = 16 * 1024 * 1024


def _prepare_chunk(chunk: list[tuple], ingested_at: datetime, quarantine_dir: Path) -> list[Prepared | None]:
    """`prepare` of each (path, known sha256s), one stage at a time over the files read so far
    (read, parse, validate, rows), up to `STAGED_BYTES` of them: a stage's code then stays in the
    CPU's caches from file to file, which costs about a quarter less CPU than taking each file
    through every stage in turn (measured, docs/telemetry.md)."""
    results: list[Prepared | None] = []
    items: list = []
    read = 0
    for i, (path, known) in enumerate(chunk):
        items.append(item := _read(path, known))
        read += item.size if isinstance(item, _InProgress) else 0
        if read >= STAGED_BYTES or i == len(chunk) - 1:
            results += _staged(items, ingested_at, quarantine_dir)
            items, read = [], 0
    return results


def _staged(items: list, ingested_at: datetime, quarantine_dir: Path) -> list[Prepared | None]:
    stages = (_parsed, lambda item: validate.validate(item.value, item.path),
              lambda item: session_rows(item.value, item.path, item.sha256, ingested_at))
    for stage in stages:
        items = [_advanced(item, stage, quarantine_dir) if isinstance(item, _InProgress) else item for item in items]
    return [Prepared(item.path, item.sha256, item.size, rows=item.value) if isinstance(item, _InProgress) else item
            for item in items]


@dataclass
class IngestReport:
    loaded: list[str] = field(default_factory=list)  # session ids written (new or replaced)
    replaced: list[str] = field(default_factory=list)  # sessions of changed files that loaded their new content
    removed: list[str] = field(default_factory=list)  # sessions deleted: their file now holds a copy of a roast kept from another
    duplicates: list[tuple[str, str]] = field(default_factory=list)  # (path, why)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (path, kind, message)
    unchanged: int = 0  # files already ingested with the same content
    ignored: list[tuple[str, str]] = field(default_factory=list)  # (path, why): files in no roast format


def _quarantine(path: str, data: bytes, sha256: str, kind: str, message: str, quarantine_dir: Path) -> str | None:
    """A copy of the rejected bytes and a note why, written as pending: `_publish_quarantined`
    moves them into the quarantine folder once the error row is committed, so a crash in
    between never leaves a quarantined copy without its error row. None if they cannot be written."""
    target = quarantine_dir / f"{sha256[:12]}-{Path(path).name}"
    pending = _pending(target)
    try:
        pending.parent.mkdir(parents=True, exist_ok=True)
        pending.write_bytes(data)
        pending.with_name(pending.name + REASON_SUFFIX).write_text(f"{path}\n{kind}: {message}\n", encoding="utf-8", errors="backslashreplace")
    except OSError:
        return None  # the error row still records why
    return str(target)


REASON_SUFFIX = ".reason.txt"


def _pending(target: Path) -> Path:
    return target.parent / ".pending" / target.name


def _publish_quarantined(items: list[Prepared]) -> None:
    """Call after the items' error rows are committed."""
    for item in items:
        if item.quarantined_path:
            target = Path(item.quarantined_path)
            for suffix in ("", REASON_SUFFIX):
                try:
                    os.replace(_pending(target).with_name(target.name + suffix), target.with_name(target.name + suffix))
                except OSError:
                    pass  # published by an earlier run, or not writable: the error row stands either way


@dataclass
class _Parsers:
    """The parser processes' pool, and whether one of them is up (has run its first task)."""

    pool: ProcessPoolExecutor
    up: threading.Event


@contextmanager
def _parser_pool(workers: int) -> Iterator[_Parsers]:
    """Parser processes, started at once from a thread, so they start and import while the main
    process prepares the warehouse (a pool starts its processes on demand, one per task submitted,
    and the first start waits for the fork server to come up: ~0.3-0.5 s)."""
    # Not fork: the caller (a Dagster run worker) has threads that fork would copy mid-flight. Not
    # spawn either: every spawned process imports the parser modules anew (~0.3 s CPU each). A
    # fork server is a fresh process, without the caller's threads, that imports them once and
    # forks each worker from itself; it stays up for later pools of this process.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])  # (its package sets OpenBLAS to one thread first: daena_pipelines/__init__.py)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        parsers = _Parsers(pool, threading.Event())

        def start() -> None:
            for _ in range(workers):
                pool.submit(_started).add_done_callback(lambda _done: parsers.up.set())

        starter = threading.Thread(target=start, daemon=True)
        starter.start()
        try:
            yield parsers
        finally:
            starter.join()  # before the pool shuts down: a submit after that would fail


def _started() -> None:
    """A parser process's first task: unpickling it imports this module there."""


def _prepared_stream(jobs: list[tuple], parsers: _Parsers | None, workers: int, *args) -> Iterator[Prepared | None]:
    """`prepare` of every job (path, known sha256s), in order, by the parser processes (None:
    here); `args` are its remaining arguments."""
    chunks = [jobs[i : i + CHUNK_FILES] for i in range(0, len(jobs), CHUNK_FILES)]
    if parsers is None:
        return (item for chunk in chunks for item in _prepare_chunk(chunk, *args))
    # enough parsed ahead that the workers stay busy while the main process writes a batch
    return _drain(parsers, chunks, args, in_flight=16 * workers)


def _drain(parsers: _Parsers, chunks: list[list[tuple]], args: tuple, in_flight: int) -> Iterator[Prepared | None]:
    """Results in input order, with at most `in_flight` chunks parsed ahead (bounded memory).
    Until a parser process is up, the main process prepares the first files itself: with the
    warehouse ready it would only wait, on a core the fork server's start leaves free. It takes
    them one at a time, so that it hands the rest to the pool as soon as a parser process is up
    (while it runs Python, the pool's threads wait for the GIL: a variant that kept preparing
    chunks all along slowed the whole ingest, docs/telemetry.md)."""
    pending: deque = deque()
    for chunk in chunks:
        while chunk and not pending and not parsers.up.is_set():
            yield from _prepare_chunk(chunk[:1], *args)
            chunk = chunk[1:]
        if not chunk:
            continue
        pending.append(parsers.pool.submit(_prepare_chunk, chunk, *args))
        if len(pending) >= in_flight:
            yield from pending.popleft().result()
    while pending:
        yield from pending.popleft().result()


def ingest(
    con: duckdb.DuckDBPyConnection,
    paths: Iterable[Path],
    quarantine_dir: Path,
    workers: int | None = None,
    batch_size: int = 500,
    on_batch: Callable[[int], None] | None = None,
) -> IngestReport:
    """Ingest the given files (those not already seen with the same content). `on_batch`, if
    given, is called after each batch is committed with the number of roast files handled so far."""
    report = IngestReport()
    roast_paths = []
    for path in paths:  # by name only: a format decided by content is decided where the file is read
        if format_by_name(path) is None and not os.path.isdir(path):  # (a folder: see `_read`)
            report.ignored.append((str(path), NOT_A_ROAST_NAME))
        else:
            roast_paths.append(str(path))
    workers = workers if workers is not None else min(2, os.cpu_count() or 1)
    parallel = workers > 1 and len(roast_paths) >= PARALLEL_FROM
    with _parser_pool(workers) if parallel else nullcontext() as parsers:
        # imported once the parser processes are starting: a first import (pyarrow, ~0.1 s, in a
        # caller that has not loaded the code location) then overlaps their start
        from daena_pipelines.telemetry import store  # here, not at the top: see TYPE_CHECKING above

        store.ensure_schema(con)
        states = _StateCache()
        known_sha256s = states.load(con).known_sha256s
        jobs = [(path, known_sha256s.get(storable(path), ())) for path in roast_paths]
        _ingest_jobs(con, jobs, parsers, workers, batch_size, report, quarantine_dir, on_batch, states)
    return report


def _ingest_jobs(con: duckdb.DuckDBPyConnection, jobs: list[tuple], parsers: _Parsers | None, workers: int,
                 batch_size: int, report: IngestReport, quarantine_dir: Path, on_batch: Callable[[int], None] | None,
                 states: _StateCache) -> None:
    """Prepare the jobs (by the parser processes, or here when None) and write them in batches, adding to `report`."""
    from daena_pipelines.db import retrying_transaction  # here, not at the top: see TYPE_CHECKING above
    from daena_pipelines.telemetry import store

    now = datetime.now(timezone.utc)
    pending: list[Prepared] = []
    handled = 0  # files taken from the stream, unchanged ones included

    def write(items: list[Prepared]) -> IngestReport:
        again: list[Prepared] = []  # files read again for this batch (`_classify`)

        def read_again(paths: list[str]) -> list[Prepared]:
            # a copy deleted since is not read: it holds nothing now, and is no file to report an error of
            prepared = [item for item in (prepare(path, (), now, quarantine_dir) for path in paths if not _deleted(path))
                        if item.ignored is None]
            again.extend(prepared)
            return prepared

        def body(con: duckdb.DuckDBPyConnection) -> tuple[IngestReport, _State, int]:
            # the state is taken inside the write transaction, so a concurrent writer's commit in between
            # makes this commit conflict (store.write_batch) and the retry sees that writer's sessions
            part = IngestReport()
            again.clear()
            state = states.take(con)
            batch, outcomes, errors, stale = _classify(items, state, part, read_again)
            store.write_batch(con, batch, outcomes, errors, stale, now)
            return part, state, _commit_count(con)  # the count this commit leaves (read inside it)

        part, state, count = retrying_transaction(con, body)
        states.keep(count, state)
        _publish_quarantined(again)
        return part

    def flush() -> None:
        if not pending:
            return
        try:
            parts = [write(pending)]
        except store.VALUE_ERRORS:  # a value the warehouse refuses: find its session, write the rest
            parts = _write_isolated(pending, write)
        for part in parts:
            for name in ("loaded", "replaced", "removed", "duplicates", "rejected"):
                getattr(report, name).extend(getattr(part, name))
            report.unchanged += part.unchanged
        _publish_quarantined(pending)
        pending.clear()
        if on_batch is not None:
            on_batch(handled)

    # While the parser processes keep the cores busy, DuckDB's own threads would only contend with
    # them: on 2 cores one DuckDB thread wrote a batch in half the time two did (docs/telemetry.md).
    # Into a DuckDB file one thread is faster without them too (measured there; not on DuckLake).
    with _duckdb_settings(con, threads=1 if parsers or _duckdb_file(con) else None, no_fsst=True):
        for item in _prepared_stream(jobs, parsers, workers, now, quarantine_dir):
            handled += 1
            if item is None:
                report.unchanged += 1
                continue
            if item.ignored is not None:  # nothing of it goes to the warehouse: no roast, no error
                report.ignored.append((item.path, item.ignored))
                continue
            pending.append(item)
            if len(pending) >= batch_size:
                flush()
        flush()
        _checkpoint_file(con)


def _deleted(path: str) -> bool:
    """Whether no file is at `path` (one that cannot be looked up, e.g. in a folder the ingest may
    not search, is not taken for deleted: reading it records why it cannot be read)."""
    try:
        os.lstat(path)
    except FileNotFoundError:
        return True
    except OSError:
        pass
    return False


def _checkpoint_file(con: duckdb.DuckDBPyConnection) -> None:
    """Write what the batches left in the WAL (the sessions', metrics' and files' rows and their
    keys' indexes) into a DuckDB file now, under the ingest's DuckDB settings, instead of at the
    connection's close under the defaults: measured after 3,000 files, 77-84 ms of CPU here
    against 146-271 ms at the close, mostly FSST tried on the JSON texts (docs/telemetry.md,
    Performance). Not a DuckLake catalog: its CHECKPOINT is the lake's maintenance. Skipped when
    DuckDB refuses it because another transaction on the same database is open (a second connection
    of this process): the batches are committed already, and DuckDB checkpoints later by itself."""
    import duckdb  # here, not at the top: see TYPE_CHECKING above

    if _duckdb_file(con):
        try:
            con.execute("CHECKPOINT")
        except duckdb.TransactionException:  # "Cannot CHECKPOINT: there are other write transactions active"
            pass  # (FORCE CHECKPOINT would wait for them: an ingest must not hang on another's transaction)


def _duckdb_file(con: duckdb.DuckDBPyConnection) -> bool:
    """Whether the connection's database is a DuckDB file (not a DuckLake catalog, not in memory)."""
    kind, path = con.execute("SELECT type, path FROM duckdb_databases() WHERE database_name = current_database()").fetchone()
    return kind == "duckdb" and path is not None


@contextmanager
def _duckdb_settings(con: duckdb.DuckDBPyConnection, threads: int | None, no_fsst: bool) -> Iterator[None]:
    """For the block, DuckDB limited to `threads` worker threads (None: unchanged) and, with
    `no_fsst`, FSST string compression left out; both settings are restored after, whatever happens.

    FSST: DuckDB tries every string compression on each segment and keeps the smallest. For the
    points' session ids (one id repeated over a session's ~500 samples) dictionary compression
    always wins, and trying FSST on them cost ~0.03 ms of the main process's ~0.7 ms per file (a
    fifth of storing that column; docs/telemetry.md). The sessions' texts are few and short."""
    from daena_pipelines.lake import sql_string  # here, not at the top: see TYPE_CHECKING above

    before = dict(con.execute("SELECT name, value FROM duckdb_settings() WHERE name IN ('threads', 'disabled_compression_methods')").fetchall())
    changed = {}
    if threads is not None:
        changed["threads"] = str(int(threads))
    if no_fsst:
        disabled = before["disabled_compression_methods"]
        changed["disabled_compression_methods"] = f"{disabled},fsst" if disabled else "fsst"
    for name, value in changed.items():
        con.execute(f"SET {name} = {sql_string(value)}")
    try:
        yield
    finally:
        for name in changed:
            con.execute(f"SET {name} = {sql_string(before[name])}")


def _write_isolated(items: list[Prepared], write: Callable[[list[Prepared]], IngestReport]) -> list[IngestReport]:
    """After a batch write failed on a value (and rolled back): each session in its own
    transaction; one the warehouse refuses becomes a `write_error` row, and everything else of
    the batch is written. Errors that are not about values (a missing table, I/O) still fail."""
    from daena_pipelines.telemetry.store import VALUE_ERRORS

    parts, rest = [], []
    for item in items:
        if item.rows is None:
            rest.append(item)
            continue
        try:
            parts.append(write([item]))
        except VALUE_ERRORS as exc:
            message = f"the warehouse refused this session ({type(exc).__name__}: {exc}); nothing of it was written"
            rest.append(replace(item, rows=None, error_kind="write_error", error=message))
    parts.append(write(rest))
    return parts


def _commit_count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT batches FROM telemetry.ingest_commits").fetchone()[0]


class _StateCache:
    """The warehouse state as this ingest's last commit left it (`_classify` updates it as it
    goes), kept with the `telemetry.ingest_commits` count after that commit. Every batch write
    bumps the count (store.write_batch), so while it is unchanged no other writer has committed a
    batch since, and the state need not be read again: reading it costs a scan of every session
    and file the warehouse holds, per batch."""

    def __init__(self) -> None:
        self._count: int | None = None
        self._state: _State | None = None

    def load(self, con: duckdb.DuckDBPyConnection) -> _State:
        count = _commit_count(con)  # before the state: a commit in between makes the pair look stale, never fresh
        self._count, self._state = count, _State.load(con)
        return self._state

    def take(self, con: duckdb.DuckDBPyConnection) -> _State:
        """The state, to classify a batch with, inside its write transaction."""
        state, self._state = self._state, None  # handed out: an attempt that fails leaves nothing half-classified behind
        if state is not None and _commit_count(con) == self._count:
            return state
        return _State.load(con)

    def keep(self, count: int, state: _State) -> None:
        """After the batch classified with `state` committed, leaving the count at `count`."""
        self._count, self._state = count, state


# Each file's content when it was last ingested. Only that one counts as unchanged: a file edited
# from A to B and back to A holds A's roast again, and with every content ever seen counted, A was
# skipped and the warehouse kept B's session (a file repaired back to a loaded content stayed
# reported as rejected).
_LATEST = "SELECT source_path, arg_max(content_sha256, seen_at){} FROM telemetry.source_files GROUP BY source_path"
LATEST_CONTENT = _LATEST.format("")
# ... and the session that content is a copy of, when it was recorded as a `duplicate`: as a second
# column, not one row value (content, status, session) per file, which took 53 ms to fetch instead of
# 32 (LATEST_CONTENT: 24) for 10,000 files of two rows each (measured 2026-12-02, once per state read)
_LATEST_WITH_COPY = _LATEST.format(", arg_max_null(CASE WHEN status = 'duplicate' THEN session_id END, seen_at)")


@dataclass
class _State:
    """What the warehouse already holds, as far as classifying new files goes."""

    known_sha256s: dict[str, set[str]]  # path -> the content it held when last ingested (LATEST_CONTENT)
    sessions: dict[str, tuple[str, str, int, int]]  # session_id -> (path, sha256, richness, size)
    session_by_path: dict[str, str]
    copy_of: dict[str, str]  # path -> the session its latest content is a duplicate of

    @classmethod
    def load(cls, con: duckdb.DuckDBPyConnection) -> _State:
        latest = con.execute(_LATEST_WITH_COPY).fetchall()
        richness = " + ".join(f"({c} IS NOT NULL)::INTEGER" for c in (*RICHNESS_FIELDS, "artisan_computed"))
        sessions = {sid: (path, sha, rich, size or 0) for sid, path, sha, rich, size in con.execute(
            f"""SELECT s.session_id, s.source_path, s.content_sha256, {richness}, f.size_bytes FROM telemetry.sessions s
                LEFT JOIN telemetry.source_files f USING (source_path, content_sha256)""").fetchall()}
        return cls({path: {sha} for path, sha, _copy in latest}, sessions, {path: sid for sid, (path, *_rest) in sessions.items()},
                   {path: copy for path, _sha, copy in latest if copy is not None})


def _classify(items: list[Prepared], state: _State, report: IngestReport, read_again: Callable[[list[str]], list[Prepared]]):
    """(sessions to write, file outcomes, error rows, ids of stored sessions to delete first) of
    prepared files. `read_again` prepares files anew: the copies of a roast whose file gave it up."""
    from daena_pipelines.telemetry.store import FileOutcome

    batch: list[SessionRows] = []
    outcomes, errors, stale = [], [], []
    written: dict[str, tuple[SessionRows, FileOutcome]] = {}  # session id -> what this batch writes for it
    previous_of: dict[str, str] = {}  # path -> the session it held before its new content
    outcome_of: dict[str, FileOutcome] = {}
    changing: set[str] = set()  # the files of the batch with new content (read again ones included)
    while items:
        fresh = [item for item in items if item.sha256 not in state.known_sha256s.get(storable(item.path), ())]
        report.unchanged += len(items) - len(fresh)  # a concurrent run took them first
        # Each file with new content gives up what it held before any file is classified, so that a
        # roast it held is free for whichever file of the batch holds it now (two files swapping
        # contents keep both) and is deleted with the batch if none does. A broken save (rejected)
        # keeps its file's session.
        for item in fresh:
            path = storable(item.path)
            state.copy_of.pop(path, None)
            held = state.session_by_path.pop(path, None) if item.rows is not None else None
            if held is not None:
                previous_of[path] = held
                stale.append(held)
                del state.sessions[held]
        changing.update(storable(item.path) for item in fresh)
        for item in fresh:
            path = storable(item.path)
            outcome = outcome_of[path] = FileOutcome(path, item.sha256, item.size, status="loaded")
            if item.rows is None:
                # backslash escapes for what is not valid Unicode (e.g. an undecodable file name):
                # an error row must always be writable
                errors.append({"source_path": path, "content_sha256": item.sha256, "error_kind": item.error_kind,
                               "message": storable(item.error), "quarantined_path": item.quarantined_path and storable(item.quarantined_path)})
                outcome.status, outcome.detail = "rejected", storable(f"{item.error_kind}: {item.error}")
                report.rejected.append((item.path, item.error_kind, item.error))
            else:
                sid = item.rows.session["session_id"]
                outcome.session_id = sid
                holder = state.sessions.get(sid)
                if holder is not None and item.rows.richness <= holder[2]:
                    same_bytes = "identical bytes" if holder[1] == item.sha256 else "the same roast measurements"
                    outcome.status, outcome.detail = "duplicate", f"{same_bytes} as {holder[0]} (session {sid})"
                    report.duplicates.append((item.path, outcome.detail))
                    state.copy_of[path] = sid
                else:
                    if holder is not None:
                        # the same roast, but this copy carries more (e.g. the roasted weight): it is kept
                        # and the poorer copy becomes the duplicate
                        detail = f"the same roast measurements as {item.path}, which carries more and is kept (session {sid})"
                        # a holder whose content is no longer the roast's is a broken save (one that
                        # loads gave its roast up), in this batch or before: its latest row says what
                        # it holds now, and no duplicate row of its old content may join it (as newer,
                        # or with the same seen_at: the landing sensor then requested it again)
                        latest = state.known_sha256s.get(holder[0])
                        broken_holder = sid not in written and (holder[0] in changing or (latest is not None and holder[1] not in latest))
                        if sid in written:  # the poorer copy is in this very batch
                            poorer_rows, poorer = written.pop(sid)
                            batch.remove(poorer_rows)
                            report.loaded.remove(sid)
                        else:
                            stale.append(sid)
                            poorer = FileOutcome(holder[0], holder[1], holder[3], status="loaded")
                            if not broken_holder:
                                outcomes.append(poorer)
                        poorer.status, poorer.session_id, poorer.detail = "duplicate", sid, detail
                        if not broken_holder:
                            report.duplicates.append((holder[0], detail))
                            state.copy_of[holder[0]] = sid
                        outcome.detail = f"richer copy of {holder[0]}, which it replaces"
                        state.session_by_path.pop(holder[0], None)
                    batch.append(item.rows)
                    written[sid] = (item.rows, outcome)
                    state.sessions[sid] = (path, item.sha256, item.rows.richness, item.size)
                    state.session_by_path[path] = sid
                    report.loaded.append(sid)
            state.known_sha256s[path] = {item.sha256}
            outcomes.append(outcome)
        # a roast given up that no file of the batch took, but that other files were recorded as
        # copies of: they hold it still, so they are read again and one of them becomes its file
        lost = set(previous_of.values()) - written.keys()
        copies = [path for path, sid in state.copy_of.items() if sid in lost] if lost else []
        for path in copies:
            del state.copy_of[path]
            state.known_sha256s.pop(path, None)  # read again, not skipped as unchanged
        items = read_again(copies) if copies else []
    for path, previous in previous_of.items():
        if outcome_of[path].status == "loaded":
            outcome_of[path].status = "replaced"
            report.replaced.append(previous)
        elif outcome_of[path].status == "duplicate" and previous not in written:  # no file holds it any more
            report.removed.append(previous)
    return batch, outcomes, errors, stale


def storable(text: str) -> str:
    """`text` as the warehouse stores it: what is not valid Unicode (an undecodable file name's
    bytes) backslash-escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")
