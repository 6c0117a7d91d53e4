"""Seeded corrupt inputs derived from real ones: Artisan profiles from ../shared, the bundled
sidecar recordings and command-service exports (assets/), RoasTime roasts built from the fields
Artisan's importer reads (tests/telemetry/test_roastime.py). Every case says what the pipeline
must do with it: reject it with exactly one error row whose message matches ``problem``, or
load it with a quality flag matching ``problem`` (never silently).

Good inputs are the unaltered originals; each bad case gets a fresh identity (roast UUID,
recording id, proposal id) so an admitted bad case can never hide as a duplicate of a good one.
"""
from __future__ import annotations

import json
import random
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from daena_pipelines.config import ASSETS_DIR
from daena_pipelines.telemetry import pyliteral

REJECT, FLAG, LOAD = "reject", "flag", "load"  # LOAD: a quirk that must load cleanly (e.g. a BOM)

# Real profiles with CHARGE and DROP marked (others are rejected as they are, for their own reasons).
GOOD_ALOGS = ("roast_25-08-30_1650.alog", "roast_25-10-11_1319.alog", "roast_26-01-11_1347.alog", "roast_26-05-10_1422_R57_brazil_250.alog")
BASE_ALOGS = ("roast_25-08-31_1240.alog", "roast_25-10-04_1600.alog", "roast_25-11-16_1235.alog", "roast_26-02-08_1358.alog",
              "roast_26-06-07_1157_R61_sumava.alog", "roast_25-09-20_1158.alog")
SIDECARS = sorted((ASSETS_DIR / "landing").glob("*.sidecar.jsonl"))
JSONL_EXPORT = ASSETS_DIR / "commands" / "proposals_2026-11-17.jsonl"
SQLITE_STORE = ASSETS_DIR / "commands" / "command_store.sqlite"
SLOW_PARSER_CASE_BYTES = 3_000_000  # above pyliteral's bound for the exact (slow) parser


@dataclass
class Case:
    fault_class: str
    name: str  # unique, also the file name stem
    expect: str  # REJECT | FLAG | LOAD
    problem: str  # regex the error message (REJECT) or a quality flag (FLAG) must match
    data: bytes = b""
    suffix: str = ".alog"


# ---- .alog ---------------------------------------------------------------------------------------


def _alog_cases(shared: Path, rng: random.Random) -> list[Case]:
    bases = [pyliteral.loads((shared / name).read_text(encoding="utf-8")) for name in BASE_ALOGS]
    cases: list[Case] = []

    def case(fault_class, name, expect, problem, edit=None, text=None, base=None, suffix=".alog"):
        profile = json.loads(json.dumps(bases[len(cases) % len(bases) if base is None else base]))  # deep copy
        profile["roastUUID"] = f"fuzz-{name}"
        data = text(profile) if text else None
        if data is None:
            if edit:
                edit(profile)
            data = repr(profile).encode("utf-8")
        cases.append(Case(fault_class, name, expect, problem, data, suffix))

    def at(key, value, index=None):
        def edit(p):
            if index is None:
                p[key] = value
            else:
                p[key][index if index >= 0 else len(p[key]) + index] = value
        return edit

    def raw(key, literal):  # put text that repr() cannot produce in place of the value of `key`
        def text(p):
            p[key] = "@@RAW@@"
            return repr(p).replace("'@@RAW@@'", literal).encode("utf-8")
        return text

    def raw_item(key, index, literal):
        def text(p):
            p[key][index] = "@@RAW@@"
            return repr(p).replace("'@@RAW@@'", literal).encode("utf-8")
        return text

    for field in ("title", "beans", "roastertype", "roastingnotes"):
        case("lone surrogate", f"alog-surrogate-{field}", REJECT, r"surrogate", at(field, "bad \ud800 text"))
    # the first base profile has an extra device curve ('ROR') with data
    case("lone surrogate", "alog-surrogate-channel-name", REJECT, r"surrogate",
         lambda p: p.update(extraname1=[name + "\udfff" for name in p["extraname1"]]), base=0)

    case("bool/string as number", "alog-bool-bt", REJECT, r"temp2.*True.*number", at("temp2", True, 40))
    case("bool/string as number", "alog-string-et", REJECT, r"temp1.*'201\.5'.*number", at("temp1", "201.5", 30))
    case("bool/string as number", "alog-string-time", REJECT, r"timex.*'3\.0'.*number", at("timex", "3.0", 2))
    case("bool/string as number", "alog-string-weight", REJECT, r"weight.*'250'.*number", at("weight", ["250", 212.0, "g"]))

    def bt_missing(p):
        p["temp2"] = [-1] * len(p["temp2"])
    case("BT entirely missing", "alog-bt-all-dropout", REJECT, r"no BT", bt_missing)

    def events(**moves):
        def edit(p):
            for slot, value in moves.items():
                p["timeindex"][int(slot[1:])] = value(p["timeindex"]) if callable(value) else value
        return edit
    case("event order", "alog-fcs-before-charge", REJECT, r"before CHARGE", events(i0=lambda ti: ti[2] + 5))
    case("event order", "alog-dryend-after-drop", REJECT, r"DRY_END.*after DROP", events(i1=lambda ti: ti[6] + 2))
    case("event order", "alog-fcs-after-drop", REJECT, r"FCs.*after DROP", events(i2=lambda ti: ti[6] + 3))

    case("unit marker vs data", "alog-f-marker-on-c-data", FLAG, r"unit", at("mode", "F"))

    def c_marker_on_f_data(p):
        for key in ("temp1", "temp2"):
            p[key] = [v if v == -1 else round(v * 9 / 5 + 32, 2) for v in p[key]]
    case("unit marker vs data", "alog-c-marker-on-f-data", FLAG, r"unit", c_marker_on_f_data)

    case("absurd magnitude", "alog-bt-1e308", FLAG, r"BT: 1 reading.*dropouts.*1e\+308", at("temp2", 1e308, 50))
    case("absurd magnitude", "alog-et-1e300", FLAG, r"ET: 1 reading.*dropouts.*1e\+300", at("temp1", 1e300, 60))
    case("absurd magnitude", "alog-time-1e300", REJECT, r"timex.*1e\+300", at("timex", 1e300, -1))
    case("absurd magnitude", "alog-epoch-year-33658", REJECT, r"roastepoch", at("roastepoch", 1_000_000_000_000))
    case("absurd magnitude", "alog-int-401-digits", REJECT, r"temp2.*digits", text=raw_item("temp2", 20, "1" + "0" * 400))
    case("absurd magnitude", "alog-int-5000-digits", REJECT, r"digits", text=raw_item("temp2", 20, "9" * 5000))

    case("hostile literal", "alog-call", REJECT, r"function call.*byte \d+", text=raw("title", "__import__('os').system('true')"))
    case("hostile literal", "alog-attribute", REJECT, r"byte \d+", text=raw("beans", "().__class__"))
    case("hostile literal", "alog-nan-call", REJECT, r"function call.*float\('nan'\).*byte \d+", text=raw_item("temp2", 10, "float('nan')"))
    case("hostile literal", "alog-bare-inf", REJECT, r"name 'inf'.*byte \d+", text=raw_item("temp1", 10, "inf"))
    case("hostile literal", "alog-lambda", REJECT, r"byte \d+", text=raw("title", "lambda: 1"))

    case("empty/truncated/encoding", "alog-empty", REJECT, r"empty", text=lambda p: b"")
    for k in range(3):
        fraction = rng.uniform(0.001, 0.999)
        case("empty/truncated/encoding", f"alog-truncated-{k}", REJECT, r"(ends early|byte \d+)",
             text=lambda p, f=fraction: (lambda data: data[: int(len(data) * f)])(repr(p).encode()))
    case("empty/truncated/encoding", "alog-invalid-utf8", REJECT, r"UTF-8.*byte \d+",
         text=lambda p: repr(p).encode().replace(b"'title': '", b"'title': '\xff\xfe", 1))
    case("empty/truncated/encoding", "alog-utf8-bom", LOAD, "", text=lambda p: b"\xef\xbb\xbf" + repr(p).encode())

    def dense(p):
        n = len(p["timex"])
        p["timex"] = [round(i * 1e-4, 4) for i in range(n)]
    case("memory", "alog-1e-4-s-steps", REJECT, r"sampl", dense)

    def one_tuple(p):  # a big valid literal that JSON cannot express: only the slow exact parser reads it
        text = repr(p)
        pad = "(" + ", ".join(["1.5"] * (SLOW_PARSER_CASE_BYTES // 5)) + ")"
        return (text[:-1] + ", 'padding': " + pad + "}").encode()
    case("memory", "alog-big-single-tuple", REJECT, r"too large for the exact parser", text=one_tuple)
    # the profile exported as JSON (Artisan's File > Export > JSON) with a key twice: the last one won
    case("duplicate key", "artisan-json-bt-twice", REJECT, r"key 'temp2' appears twice",
         text=lambda p: json.dumps(p).replace('"temp2": [', '"temp2": [], "temp2": [', 1).encode(), suffix=".json")
    return cases


# ---- sidecar recordings ------------------------------------------------------------------------------


def _sidecar_cases(rng: random.Random) -> list[Case]:
    bases = [path.read_text(encoding="utf-8").splitlines() for path in SIDECARS]
    cases: list[Case] = []

    def case(fault_class, name, expect, problem, edit=None, text=None):
        lines = [json.loads(line) for line in bases[len(cases) % len(bases)]]
        lines[0]["recording_id"] = f"fuzz-{name}"
        if text is not None:
            data = text(lines)
        else:
            edit(lines)
            data = "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8")
        cases.append(Case(fault_class, name, expect, problem, data, ".sidecar.jsonl"))

    def header(**values):
        def edit(lines):
            lines[0].update(values)
        return edit

    def samples(key, value, which=(200,)):
        def edit(lines):
            rows = [line for line in lines if line["type"] == "sample"]
            for i in which:
                rows[i if i >= 0 else len(rows) + i][key] = value
        return edit

    def dumped(lines):
        return "".join(json.dumps(line) + "\n" for line in lines).encode("utf-8")

    case("lone surrogate", "sidecar-surrogate-title", REJECT, r"surrogate", header(title="bad \ud800"))
    case("lone surrogate", "sidecar-surrogate-beans", REJECT, r"surrogate", header(beans="\udfffbeans"))
    # a key twice in the header: the last one won (here BT and ET swapped)
    case("duplicate key", "sidecar-mapping-twice", REJECT, r"line 1: key 'channel_mapping' appears twice",
         text=lambda lines: dumped(lines).replace(b'"channel_mapping": {"bt": "a", "et": "b"}',
                                                  b'"channel_mapping": {"bt": "a", "et": "b"}, "channel_mapping": {"bt": "b", "et": "a"}', 1))
    # a key twice in a sample or an event line (here BT 150.0 hidden behind a second 'a')
    case("duplicate key", "sidecar-sample-bt-twice", REJECT, r"line \d+: key 'a' appears twice",
         text=lambda lines: dumped(lines).replace(b'"type": "sample", ', b'"type": "sample", "a": 150.0, ', 1))
    case("duplicate key", "sidecar-event-index-twice", REJECT, r"line \d+: key 'i' appears twice",
         text=lambda lines: dumped(lines).replace(b'"type": "event", ', b'"type": "event", "i": 3, ', 1))
    case("sidecar header types", "sidecar-title-number", REJECT, r"title.*12345.*text", header(title=12345))
    case("sidecar header types", "sidecar-beans-object", REJECT, r"beans.*text", header(beans={"origin": "Kenya"}))
    case("sidecar header types", "sidecar-machine-list", REJECT, r"machine.*text", header(machine=["Aillio", "R1"]))
    case("sidecar header types", "sidecar-weight-string", REJECT, r"batch_weight_g.*'250 g'.*number", header(batch_weight_g="250 g"))
    case("sidecar header types", "sidecar-interval-string", REJECT, r"record_interval_s.*'1\.0'.*number", header(record_interval_s="1.0"))
    case("sidecar header types", "sidecar-notes-bool", REJECT, r"notes.*text", header(notes=True))
    case("bool/string as number", "sidecar-bt-string", REJECT, r"'a'.*'201\.5'.*number", samples("a", "201.5"))
    case("bool/string as number", "sidecar-et-bool", REJECT, r"'b'.*True.*number", samples("b", True))
    case("bool/string as number", "sidecar-time-string", REJECT, r"'t'.*number", samples("t", "12.0", (5,)))

    def no_bt(lines):
        for line in lines:
            if line["type"] == "sample":
                line["a"] = None
    case("BT entirely missing", "sidecar-bt-all-missing", REJECT, r"no BT", no_bt)

    def event(name, index_of):
        def edit(lines):
            marks = {line["name"]: line for line in lines if line["type"] == "event"}
            marks[name]["i"] = index_of(marks)
        return edit
    case("event order", "sidecar-fcs-before-charge", REJECT, r"FCs.*before CHARGE", event("FCs", lambda m: m["CHARGE"]["i"] - 10))
    case("event order", "sidecar-dryend-after-drop", REJECT, r"DRY_END.*after DROP", event("DRY_END", lambda m: m["DROP"]["i"] + 5))
    case("event order", "sidecar-drop-before-charge", REJECT, r"(after DROP|before CHARGE)", event("DROP", lambda m: m["CHARGE"]["i"] - 3))

    def no_charge(lines):
        lines[:] = [line for line in lines if not (line["type"] == "event" and line["name"] == "CHARGE")]
    case("event order", "sidecar-no-charge", REJECT, r"CHARGE", no_charge)

    case("absurd magnitude", "sidecar-bt-1e308", FLAG, r"BT: 1 reading.*dropouts.*1e\+308", samples("a", 1e308))
    case("absurd magnitude", "sidecar-et-1e300", FLAG, r"ET: 1 reading.*dropouts.*1e\+300", samples("b", 1e300))
    case("absurd magnitude", "sidecar-time-1e300", REJECT, r"time.*1e\+300", samples("t", 1e300, (-1,)))
    case("absurd magnitude", "sidecar-started-year-9999", REJECT, r"started_at", header(started_at="9999-12-31T23:59:59-05:00"))
    case("absurd magnitude", "sidecar-started-no-offset", REJECT, r"started_at '2026-11-17T09:10:00' has no UTC offset",
         header(started_at="2026-11-17T09:10:00"))

    case("empty/truncated/encoding", "sidecar-empty", REJECT, r"empty", text=lambda lines: b"")
    case("empty/truncated/encoding", "sidecar-invalid-utf8", REJECT, r"UTF-8.*byte \d+",
         text=lambda lines: dumped(lines).replace(b'"beans": "', b'"beans": "\xc3\x28', 1))
    case("empty/truncated/encoding", "sidecar-bad-json-line", REJECT, r"line 40.*invalid JSON",
         text=lambda lines: dumped(lines).replace(b"\n", b"\n{broken\n", 39).replace(b"\n{broken\n", b"\n", 38))
    case("empty/truncated/encoding", "sidecar-utf8-bom", LOAD, "", text=lambda lines: b"\xef\xbb\xbf" + dumped(lines))
    for k in range(4):
        fraction = rng.uniform(0.05, 0.95)
        # a torn recording loads with its 'incomplete' flag when it has CHARGE, else it is rejected
        case("truncated recording", f"sidecar-truncated-{k}", "reject-or-flag", r"(CHARGE|incomplete)",
             text=lambda lines, f=fraction: dumped(lines)[: int(len(dumped(lines)) * f)])
    case("memory", "sidecar-1e-4-s-steps", REJECT, r"sampl",
         lambda lines: [line.update(t=round(i * 1e-4, 4)) for i, line in enumerate(x for x in lines if x["type"] == "sample")])
    return cases


# ---- RoasTime JSON roasts -----------------------------------------------------------------------------


def _roastime_cases() -> list[Case]:
    from tests.telemetry.test_roastime import roastime  # a roast built from the documented fields

    cases: list[Case] = []

    def case(fault_class, name, expect, problem, text=None, **fields):
        roast = roastime(uid=f"fuzz-{name}", **fields)
        data = text(json.dumps(roast)) if text else json.dumps(roast).encode()
        cases.append(Case(fault_class, name, expect, problem, data, ".json"))

    def curve(key, index, value):
        values = roastime()[key]
        return {key: values[:index] + [value] + values[index + 1:]}

    case("bool/string as number", "roastime-bt-string", REJECT, r"'beanTemperature'\[40\] is '201\.5'.*number", **curve("beanTemperature", 40, "201.5"))
    case("bool/string as number", "roastime-et-bool", REJECT, r"'drumTemperature'\[30\] is True.*number", **curve("drumTemperature", 30, True))
    case("bool/string as number", "roastime-power-text", REJECT, r"'inductionPowerSetting'\[3\] is 'P9'.*number",
         actions=None, inductionPowerSetting=[9, 9, 9, "P9"])
    case("bool/string as number", "roastime-action-ctrltype-list", REJECT, r"actionTimeList'\[0\] has ctrlType \[0\]",
         actions={"actionTimeList": [{"index": 21, "value": 9, "ctrlType": [0]}]})
    case("bool/string as number", "roastime-action-value-text", REJECT, r"actionTimeList'\[1\].*value 'high'",
         actions={"actionTimeList": [{"index": 21, "value": 9, "ctrlType": 0}, {"index": 401, "value": "high", "ctrlType": 0}]})
    case("absurd magnitude", "roastime-datetime-1e20", REJECT, r"'dateTime' is 1e\+20", dateTime=1e20)
    case("absurd magnitude", "roastime-datetime-1969", REJECT, r"roasted_at 1969-.*between 1970-01-02", dateTime=-86_400_000 * 365)
    case("absurd magnitude", "roastime-datetime-text", REJECT, r"'dateTime' is 'yesterday'", dateTime="yesterday")
    case("duplicate key", "roastime-bt-twice", REJECT, r"key 'beanTemperature' appears twice",
         text=lambda text: text.replace('"beanTemperature": [', '"beanTemperature": [20.0, 20.0], "beanTemperature": [', 1).encode())
    case("empty/truncated/encoding", "roastime-utf8-bom", LOAD, "", text=lambda text: b"\xef\xbb\xbf" + text.encode())
    return cases


def telemetry_cases(shared: Path, seed: int) -> list[Case]:
    rng = random.Random(seed)
    return _alog_cases(shared, rng) + _sidecar_cases(rng) + _roastime_cases()


def write_landing(folder: Path, shared: Path, cases: list[Case]) -> tuple[list[Path], dict[str, Case]]:
    """The good originals and every case as files in `folder`: (good paths, path -> case)."""
    folder.mkdir(parents=True, exist_ok=True)
    good = []
    for source in [shared / name for name in GOOD_ALOGS] + SIDECARS:
        target = folder / source.name
        target.write_bytes(source.read_bytes())
        good.append(target)
    bad = {}
    for case in cases:
        path = folder / f"{case.name}{case.suffix}"
        path.write_bytes(case.data)
        bad[str(path)] = case
    return good, bad


# ---- command-service exports --------------------------------------------------------------------------


def _good_export_lines() -> list[dict]:
    """Completed proposals of the bundled export (which also holds deliberately bad lines)."""
    records = []
    for line in JSONL_EXPORT.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and record.get("status") == "COMPLETED" and isinstance(record.get("command"), dict):
            records.append(record)
    return records


def jsonl_cases(rng: random.Random) -> list[Case]:
    """Each case is one line of a JSONL export; its data is that line's bytes."""
    records = _good_export_lines()
    cases: list[Case] = []

    def case(fault_class, name, problem, edit=None, line=None):
        record = json.loads(json.dumps(rng.choice(records)))
        record["proposal_id"] = f"fuzz-{name}"
        if line is None:
            edit(record)
            line = json.dumps(record).encode("utf-8")
        else:
            line = line(json.dumps(record))
        cases.append(Case(fault_class, name, REJECT, problem, line, ".jsonl"))

    def command(**values):
        return lambda r: r["command"].update(values)

    def top(**values):
        return lambda r: r.update(values)

    case("invalid UTF-8", "jsonl-invalid-utf8", r"UTF-8.*byte \d+", line=lambda text: text.replace('"reasoning": ', '"reasoning": "\xff",  "x": ', 1).encode("latin-1"))
    case("deep nesting", "jsonl-nesting-100k", r"nest", line=lambda text: text[:-1].encode() + b', "deep": ' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    case("huge integer", "jsonl-int-401-digits", r"target_value.*digits", line=lambda text: text.replace('"command": {', '"command": {"target_value": ' + "1" + "0" * 400 + ", ", 1).replace(', "target_value": ', ', "_old": ', 1).encode())
    case("huge integer", "jsonl-int-5000-digits", r"digits", line=lambda text: text.replace('"command": {', '"command": {"target_value": ' + "7" * 5000 + ", ", 1).replace(', "target_value": ', ', "_old": ', 1).encode())
    case("timestamp out of range", "jsonl-year-0001", r"created_at.*out of range", top(created_at="0001-01-01T00:00:00+05:00"))
    case("timestamp out of range", "jsonl-year-9999", r"created_at.*out of range", top(created_at="9999-12-31T23:00:00-05:00"))
    case("wrong type", "jsonl-object-proposal-id", r"proposal_id.*text", top(proposal_id={"id": 1}))
    case("wrong type", "jsonl-number-actor", r"actor.*text", top(actor=42))
    case("wrong type", "jsonl-string-target", r"target_value.*'220'.*number", command(target_value="220"))
    case("wrong type", "jsonl-bool-target", r"target_value.*True.*number", command(target_value=True))
    case("wrong type", "jsonl-list-machine", r"machine_id.*text", command(machine_id=["r1"]))
    case("wrong type", "jsonl-not-an-object", r"not a JSON object", line=lambda text: b"[1, 2, 3]")
    case("lone surrogate", "jsonl-surrogate-reasoning", r"surrogate", top(reasoning="bad \ud800"))
    case("lone surrogate", "jsonl-surrogate-actor", r"surrogate", top(actor="op\udc80"))
    case("truncated", "jsonl-truncated-line", r"invalid JSON", line=lambda text: text[: len(text) // 2].encode())
    # a key twice: Python's reader kept the last value silently
    case("duplicate key", "jsonl-target-twice", r"invalid JSON: key 'target_value' appears twice",
         line=lambda text: text.replace('"command": {', '"command": {"target_value": 999, ', 1).encode())
    case("wrong type", "jsonl-nan-target", r"target_value.*finite", line=lambda text: text.replace('"command": {', '"command": {"target_value": NaN, ', 1).replace(', "target_value": ', ', "_old": ', 1).encode())
    return cases


def write_jsonl(path: Path, cases: list[Case]) -> dict[int, Case]:
    """A JSONL export whose lines are the cases (line number -> case)."""
    path.write_bytes(b"".join(case.data + b"\n" for case in cases))
    return {number: case for number, case in enumerate(cases, start=1)}


SQLITE_ROW_FAULTS = {
    # name -> (fault class, column, value, problem)
    "sqlite-non-utf8-reasoning": ("invalid UTF-8", "reasoning", b"bad \xff\xfe text", r"reasoning.*UTF-8"),
    "sqlite-non-utf8-actor": ("invalid UTF-8", "actor", b"\xc3\x28", r"actor.*UTF-8"),
    "sqlite-text-target": ("wrong type", "target_value", "abc", r"target_value.*'abc'.*number"),
    "sqlite-year-0001": ("timestamp out of range", "created_at", "0001-01-01T00:00:00+05:00", r"created_at.*out of range"),
    "sqlite-blob-machine": ("wrong type", "machine_id", bytearray(b"\x00\x01"), r"machine_id.*expected text"),  # a BLOB
}


def write_sqlite_with_bad_rows(path: Path) -> dict[int, Case]:
    """A copy of the bundled store with one bad proposal row per fault (rowid -> case)."""
    path.write_bytes(SQLITE_STORE.read_bytes())
    con = sqlite3.connect(path)
    rowids = {}
    try:
        template = con.execute("SELECT * FROM proposals ORDER BY rowid LIMIT 1").fetchone()
        names = [d[0] for d in con.execute("SELECT * FROM proposals LIMIT 0").description]
        for name, (fault_class, column, value, problem) in SQLITE_ROW_FAULTS.items():
            row = dict(zip(names, template), proposal_id=f"fuzz-{name}")
            cursor = con.execute(f"INSERT INTO proposals ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", list(row.values()))
            # bytes bind as a BLOB; the cast stores them as TEXT that is not UTF-8, as a careless writer would
            cast = "CAST(? AS TEXT)" if isinstance(value, bytes) else "?"
            con.execute(f"UPDATE proposals SET {column} = {cast} WHERE rowid = ?", [value, cursor.lastrowid])
            rowids[cursor.lastrowid] = Case(fault_class, name, REJECT, problem, suffix=".sqlite")
            # its history too, so that admitting the bad row would put it among the accepted proposals
            con.execute(
                "INSERT INTO audit_log (proposal_id, changed_at, from_status, to_status, actor, note) "
                "SELECT ?, changed_at, from_status, to_status, actor, note FROM audit_log WHERE proposal_id = ? ORDER BY entry_id",
                [row["proposal_id"], template[0]],
            )
        con.commit()
    finally:
        con.close()
    return rowids


def sqlite_file_cases(rng: random.Random) -> list[Case]:
    """Whole files that are no readable store: each must give exactly one file-level error row."""
    store = SQLITE_STORE.read_bytes()
    cut = rng.randrange(len(store) // 4, len(store) // 2)
    return [
        Case("not a database", "sqlite-not-a-database", REJECT, r"not a (SQLite )?database", b"this is plain text, not SQLite\n" * 40, ".sqlite"),
        Case("not a database", "sqlite-empty", REJECT, r"(empty|lacks)", b"", ".sqlite"),
        Case("truncated database", "sqlite-truncated", REJECT, r"(malformed|truncated|not a (SQLite )?database)", store[:cut], ".sqlite"),
    ]
