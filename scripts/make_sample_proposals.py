"""Generate the bundled demo proposal log (assets/commands/): deterministic, every row origin='generated'.

The roasts the sidecar recorded on the virtual Bullet R1 (assets/landing/*.sidecar.jsonl) become
linked proposals: each control change the recording shows after CHARGE (and CHARGE, DROP and the
preheat) is a proposal executed at that moment, with the recording's session_id and its time from
CHARGE, so the evals see the commands of the sessions they judge. A second virtual machine roasts
without recordings (session_id NULL: there is no telemetry to link to); an agent (and now and then
the operator) proposes heater/fan/drum changes, preheat, charge, drop and the odd abort, which go
through approval and execution. Sprinkled in, on purpose: unsafe targets, constraint breaches, a
burst of proposals, an oscillating heater, slow approvals, failures, an approval the sidecar closed
EXPIRED unexecuted and a few illegal lifecycles.

The command service's live store (SQLite) holds 2026-11-18 and -19; the JSONL file is the export
of the archived 2026-11-17. Run: python scripts/make_sample_proposals.py [--out DIR] [--seed N]
"""
from __future__ import annotations

import argparse
import json
import random
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path

from daena_pipelines import config
from daena_pipelines.commands.model import STATUS_TIMESTAMP
from daena_pipelines.commands.store import SQLITE_SCHEMA
from daena_pipelines.device.safety import Command, approval_refusal
from daena_pipelines.telemetry.ingest import parser_for

MACHINES = ("bullet-r1-virtual", "bullet-r1-virtual-b")
DAYS = (datetime(2026, 11, 17, tzinfo=timezone.utc), datetime(2026, 11, 18, tzinfo=timezone.utc),
        datetime(2026, 11, 19, tzinfo=timezone.utc))
UNITS = {"SET_POWER": "level", "SET_FAN": "level", "SET_DRUM": "level", "PREHEAT": "C"}
LEVEL_RANGE = {"SET_POWER": (0, 9), "SET_FAN": (1, 12), "SET_DRUM": (1, 9)}
CHANNELS = (("h", "SET_POWER"), ("f", "SET_FAN"), ("d", "SET_DRUM"))  # sidecar sample field -> command


def iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z") if moment else None


class LogBuilder:
    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        self.records: list[dict] = []

    def propose(self, machine: str, at: datetime, command_type: str, target: float | None, reasoning: str,
                charge_at: datetime | None, proposed_by: str = "AGENT") -> dict:
        constraints = None
        if command_type in LEVEL_RANGE:
            lo, hi = LEVEL_RANGE[command_type]
            constraints = {"min_value": lo, "max_value": hi, "max_deviation": 0}
        elif command_type == "PREHEAT":
            constraints = {"min_value": 150, "max_value": 280, "max_deviation": 5}
        record = {
            "proposal_id": f"prop-{len(self.records) + 1:05d}",
            "machine_id": machine, "session_id": None, "command_type": command_type,
            "target_value": target, "target_unit": UNITS.get(command_type), "constraints": constraints,
            "proposed_by": proposed_by,
            "actor": "roast-agent-v2" if proposed_by == "AGENT" else "operator-ana",
            "reasoning": reasoning, "status": "PROPOSED", "created_at": at, "approved_at": None,
            "rejected_at": None, "execution_started_at": None, "execution_completed_at": None,
            "rejection_reason": None, "expired_at": None, "expiry_reason": None, "outcome": None, "actual_value": None, "error": None,
            "session_t_s": None, "origin": "generated", "charge_at": charge_at,
            "audit_log": [{"changed_at": at, "from_status": None, "to_status": "PROPOSED",
                           "actor": "roast-agent-v2" if proposed_by == "AGENT" else "operator-ana", "note": None}],
        }
        self.records.append(record)
        return record

    def move(self, record: dict, to_status: str, at: datetime, actor: str, note: str | None = None) -> None:
        record["audit_log"].append({"changed_at": at, "from_status": record["status"], "to_status": to_status,
                                    "actor": actor, "note": note})
        record["status"] = to_status
        if to_status in STATUS_TIMESTAMP:
            record[STATUS_TIMESTAMP[to_status]] = at

    def run(self, record: dict, approval_s: float | None = None, ending: str | None = None,
            stop_at: str | None = None, actual: float | None = None) -> datetime:
        """Walk a proposal through approval and execution; returns when it left the approver's hands."""
        rng, at = self.rng, record["created_at"]
        if stop_at == "PROPOSED":
            return at
        at += timedelta(seconds=rng.uniform(0.2, 1.0))
        self.move(record, "PENDING_APPROVAL", at, "command-service")
        if stop_at == "PENDING_APPROVAL":
            return at
        approval_s = approval_s if approval_s is not None else min(rng.lognormvariate(2.0, 0.6), 90)
        at += timedelta(seconds=approval_s)
        if ending == "REJECTED":
            self.move(record, "REJECTED", at, "operator-ana")
            record["rejection_reason"] = rng.choice(["OPERATOR_DECLINED", "STALE_PROPOSAL", "CONFLICTS_WITH_PLAN"])
            return at
        self.move(record, "APPROVED", at, "operator-ana" if record["proposed_by"] == "AGENT" else "auto-policy")
        if stop_at == "APPROVED":
            return at
        at += timedelta(seconds=rng.uniform(0.3, 1.5))
        self.move(record, "EXECUTING", at, "sidecar")
        if record["charge_at"] is not None:
            record["session_t_s"] = round((at - record["charge_at"]).total_seconds(), 1)
        if stop_at == "EXECUTING":
            return at
        ending = ending or rng.choices(["COMPLETED", "FAILED", "TIMEOUT", "ABORTED"], [90, 4, 3, 3])[0]
        duration = {"COMPLETED": rng.uniform(0.8, 6.0), "FAILED": rng.uniform(1, 8), "TIMEOUT": 20.0,
                    "ABORTED": rng.uniform(0.5, 3)}[ending]
        at += timedelta(seconds=duration)
        not_confirmed = "level not confirmed in status" if record["command_type"] in LEVEL_RANGE else "state did not advance"
        errors = {"FAILED": f"{not_confirmed} after 3 attempts", "TIMEOUT": "no status frame for 20 s",
                  "ABORTED": "operator pressed abort"}
        self.move(record, ending, at, "sidecar", errors.get(ending))
        record["error"] = errors.get(ending)
        if ending == "COMPLETED":
            record["outcome"] = "SUCCESS" if actual is None else "PARTIAL"
            record["actual_value"] = record["target_value"] if actual is None else actual
        elif ending in ("FAILED", "TIMEOUT"):
            record["outcome"] = "FAILURE"
        return at

    def executed(self, record: dict, at: datetime, session_id: str) -> None:
        """A proposal the recording shows executed at ``at``: approved shortly before, completed on the next status read."""
        rng = self.rng
        self.move(record, "PENDING_APPROVAL", record["created_at"] + timedelta(seconds=rng.uniform(0.2, 0.6)), "command-service")
        self.move(record, "APPROVED", at - timedelta(seconds=rng.uniform(0.3, 1.0)),
                  "operator-ana" if record["proposed_by"] == "AGENT" else "auto-policy")
        self.move(record, "EXECUTING", at, "sidecar")
        self.move(record, "COMPLETED", at + timedelta(seconds=rng.uniform(0.5, 1.5)), "sidecar")
        record.update(session_id=session_id, outcome="SUCCESS", actual_value=record["target_value"])
        if record["charge_at"] is not None:
            record["session_t_s"] = round((at - record["charge_at"]).total_seconds(), 1)

    def recorded(self, path: Path, unsafe_request_at_s: float | None = None) -> None:
        """The proposals behind one sidecar recording, linked to its session (see the module docstring)."""
        rng = self.rng
        lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        header, samples = lines[0], [x for x in lines if x["type"] == "sample"]
        session_id = parser_for(path)(path.read_bytes(), str(path)).session_id
        started = datetime.fromisoformat(header["started_at"])
        events = {x["name"]: x["t"] for x in lines if x["type"] == "event"}
        at = lambda t: started + timedelta(seconds=t)  # noqa: E731
        charge_at, machine = at(events["CHARGE"]), header["machine_id"]
        plan = header["simulator"]["operator_plan"]

        def command(exec_t: float, command_type: str, target: float | None, reasoning: str, by: str = "AGENT") -> None:
            created = at(exec_t) - timedelta(seconds=rng.uniform(3, 12))
            record = self.propose(machine, created, command_type, target, reasoning,
                                  charge_at if exec_t >= events["CHARGE"] else None, proposed_by=by)
            self.executed(record, at(exec_t), session_id)

        command(samples[1]["t"], "PREHEAT", float(plan["preheat_target_c"]), "preheat the drum", by="HUMAN")
        command(events["CHARGE"], "CHARGE", None, "drum at charge temperature", by="HUMAN")
        before = samples[0]
        for sample in samples:
            if events["CHARGE"] <= sample["t"] < events["DROP"]:
                for field, command_type in CHANNELS:
                    if sample[field] != before[field]:
                        command(sample["t"], command_type, float(sample[field]),
                                f"{command_type.lower()} {before[field]} -> {sample[field]} at BT {sample['a']:.0f} C")
            before = sample
        if unsafe_request_at_s is not None:
            # The agent asks for heater 12 (range 0..9); the safety validator rejects it before anyone sees it.
            unsafe = self.propose(machine, charge_at + timedelta(seconds=unsafe_request_at_s), "SET_POWER", 12.0,
                                  "push through first crack", charge_at)
            self.move(unsafe, "REJECTED", unsafe["created_at"] + timedelta(milliseconds=120), "safety-validator")
            unsafe.update(rejection_reason="SAFETY_LIMIT", session_id=session_id)
        command(events["DROP"], "DROP", None, "drop temperature reached")

    def roast(self, machine: str, start: datetime, last_of_log: bool = False) -> None:
        rng = self.rng
        preheat = self.propose(machine, start, "PREHEAT", float(rng.choice([220, 240, 250, 260])),
                               "preheat for a 500 g batch", None, proposed_by="HUMAN")
        self.run(preheat)
        charge_at = start + timedelta(minutes=rng.uniform(12, 16))
        charge = self.propose(machine, charge_at - timedelta(seconds=20), "CHARGE", None,
                              "drum at charge temperature", None, proposed_by="HUMAN")
        self.run(charge, approval_s=rng.uniform(1, 4))
        levels = {"SET_POWER": 7, "SET_FAN": 3, "SET_DRUM": 6}
        unfinished = ["EXECUTING", "APPROVED", "PENDING_APPROVAL"]
        at = charge_at + timedelta(seconds=rng.uniform(20, 40))
        drop_t = rng.uniform(600, 720)
        while (at - charge_at).total_seconds() < drop_t - 30:
            command = rng.choices(list(levels), [6, 3, 1])[0]
            lo, hi = LEVEL_RANGE[command]
            # Heater mostly comes down and fan mostly goes up as the roast develops.
            step = {"SET_POWER": rng.choice([-1, -1, -1, 1]), "SET_FAN": rng.choice([1, 1, 1, -1]),
                    "SET_DRUM": rng.choice([-1, 1])}[command]
            target = min(max(levels[command] + step, lo + 1), hi - 1)
            t = (at - charge_at).total_seconds()
            record = self.propose(machine, at, command, float(target),
                                  f"{command.lower()} {levels[command]} -> {target} at t={t:.0f}s to steer RoR", charge_at)
            if last_of_log and t > drop_t - 300:
                # The export was taken mid-roast: the newest proposals are still on their way.
                self.run(record, stop_at=unfinished.pop(0) if unfinished else "PROPOSED")
            elif rng.random() < 0.07:
                self.run(record, ending="REJECTED")
            else:
                self.run(record)
                if record["status"] == "COMPLETED":
                    levels[command] = target
            at += timedelta(seconds=rng.uniform(45, 110))
        if last_of_log:
            # The agent's newest proposal: not yet picked up by the command service.
            self.propose(machine, at, "SET_FAN", float(levels["SET_FAN"] + 1), "more airflow towards drop", charge_at)
            return
        drop = self.propose(machine, charge_at + timedelta(seconds=drop_t), "DROP", None,
                            "development target reached", charge_at)
        self.run(drop, approval_s=rng.uniform(1, 5), ending="COMPLETED")

    def incidents(self, machine: str, day: datetime) -> None:
        """The deliberately unusual bits each alert rule should find."""
        rng, charge_at = self.rng, day + timedelta(hours=15)
        # An unsafe heater target: the safety validator rejects it before anyone sees it.
        unsafe = self.propose(machine, charge_at + timedelta(seconds=200), "SET_POWER", 11.0,
                              "aggressive push to recover a stalled RoR", charge_at)
        self.move(unsafe, "REJECTED", unsafe["created_at"] + timedelta(milliseconds=150), "safety-validator")
        unsafe["rejection_reason"] = "SAFETY_LIMIT"
        # Oscillating heater: 6, 5, 6, 5, 6, 5 inside three minutes.
        at = charge_at + timedelta(seconds=300)
        for target in (6.0, 5.0, 6.0, 5.0, 6.0, 5.0):
            self.run(self.propose(machine, at, "SET_POWER", target, "hold RoR near 9 C/min", charge_at),
                     approval_s=rng.uniform(2, 5), ending="COMPLETED")
            at += timedelta(seconds=35)
        # A burst of eight fan proposals in forty seconds.
        at = charge_at + timedelta(seconds=520)
        for i in range(8):
            record = self.propose(machine, at, "SET_FAN", float(4 + i % 2), "clear smoke", charge_at)
            self.run(record, approval_s=rng.uniform(1, 3), ending="REJECTED" if i >= 2 else "COMPLETED")
            at += timedelta(seconds=5)
        # The drum stopped one level short of its target.
        self.run(self.propose(machine, charge_at + timedelta(seconds=620), "SET_DRUM", 8.0, "more convection", charge_at),
                 approval_s=4, ending="COMPLETED", actual=7.0)
        if day == DAYS[1]:
            # An operator approved a preheat above the safe window; the sidecar refused it.
            hot = self.propose(machine, day + timedelta(hours=15, minutes=50), "PREHEAT", 320.0,
                               "faster preheat", None, proposed_by="HUMAN")
            self.run(hot, approval_s=6, ending="FAILED")
            hot["error"] = hot["audit_log"][-1]["note"] = "target above the local preheat ceiling; refused"
        # An approval that waited four minutes, and a preheat that timed out.
        self.run(self.propose(machine, charge_at + timedelta(seconds=640), "SET_FAN", 5.0, "cool the drum", charge_at),
                 approval_s=240)
        self.run(self.propose(machine, day + timedelta(hours=16), "PREHEAT", 240.0, "next batch", None,
                              proposed_by="HUMAN"), ending="TIMEOUT")

    def expired(self, machine: str, day: datetime) -> None:
        """An approval nobody ran: the sidecar found it past its 300 s expiry and closed it EXPIRED
        (its reason in the sidecar's words, docs/device.md). No random draw, so the rest of the log
        stays as it was before this incident existed."""
        record = self.propose(machine, day + timedelta(hours=16, minutes=30), "SET_FAN", 6.0, "more airflow for the next batch",
                              None, proposed_by="HUMAN")
        self.move(record, "PENDING_APPROVAL", record["created_at"] + timedelta(seconds=0.5), "command-service")
        approved = record["created_at"] + timedelta(seconds=8)
        self.move(record, "APPROVED", approved, "auto-policy")
        closed = approved + timedelta(seconds=302)
        command = Command(record["proposal_id"], machine, "SET_FAN", 6.0, approved_at=approved)
        # the sidecar's own check and words (past the 300 s expiry: the session and serial are not reached)
        _, reason = approval_refusal(command, now=closed, session_started=approved, session_id="", serial="", ttl_s=300.0)
        self.move(record, "EXPIRED", closed, "sidecar", reason)
        record["expiry_reason"] = reason

    def illegal(self, machine: str, day: datetime) -> None:
        """Lifecycles the command service should never have written; ingest must flag them."""
        at = day + timedelta(hours=17)
        skipped = self.propose(machine, at, "SET_POWER", 5.0, "bug: executed without EXECUTING state", None)
        self.run(skipped, approval_s=3, stop_at="APPROVED")
        self.move(skipped, "COMPLETED", at + timedelta(seconds=6), "sidecar")
        skipped.update(outcome="SUCCESS", actual_value=5.0)
        unapproved = self.propose(machine, at + timedelta(seconds=30), "SET_FAN", 6.0, "bug: ran while pending", None)
        self.run(unapproved, stop_at="PENDING_APPROVAL")
        self.move(unapproved, "EXECUTING", at + timedelta(seconds=33), "sidecar")
        revived = self.propose(machine, at + timedelta(seconds=60), "SET_DRUM", 7.0, "bug: approved after rejection", None)
        self.run(revived, approval_s=2, ending="REJECTED")
        self.move(revived, "APPROVED", at + timedelta(seconds=70), "operator-ana")
        revived["status"] = "REJECTED"  # the status column was never updated either


def build(seed: int, recordings: list[Path]) -> list[dict]:
    log = LogBuilder(seed)
    kenya = [p for p in recordings if "Kenya" in p.read_text().split("\n", 1)[0]]
    for day in DAYS:
        for path in recordings:
            if path.name.startswith(day.strftime("%Y%m%d")):
                # The first Kenya roast carries an unsafe heater request after first crack (golden case
                # kenya-nyeri-unsafe-heater); the second has none, so that case is not exercised there.
                log.recorded(path, unsafe_request_at_s=540.0 if kenya and path == kenya[0] else None)
        for roast_no in range(3):
            log.roast(MACHINES[1], day + timedelta(hours=8 + roast_no * 1.5, minutes=log.rng.uniform(0, 20)))
        log.incidents(MACHINES[DAYS.index(day) % 2], day)
        if day != DAYS[1]:
            log.illegal(MACHINES[0], day)
    # The log ends during an evening roast on the last day.
    log.roast(MACHINES[0], DAYS[-1] + timedelta(hours=18), last_of_log=True)
    log.expired(MACHINES[0], DAYS[-1])
    return log.records


def write_jsonl(records: list[dict], path: Path) -> None:
    with path.open("w") as out:
        for r in records:
            line = {
                "proposal_id": r["proposal_id"], "session_id": r["session_id"],
                "command": {"type": r["command_type"], "machine_id": r["machine_id"], "target_value": r["target_value"],
                            "target_unit": r["target_unit"], "constraints": r["constraints"]},
                "proposed_by": r["proposed_by"], "actor": r["actor"], "reasoning": r["reasoning"], "status": r["status"],
                **{k: iso(r[k]) for k in ("created_at", "approved_at", "rejected_at", "execution_started_at",
                                          "execution_completed_at")},
                "rejection_reason": r["rejection_reason"],
                "outcome": None if r["outcome"] is None else
                {"result": r["outcome"], "actual_value": r["actual_value"], "error": r["error"]},
                "session_t_s": r["session_t_s"], "origin": r["origin"],
                "audit_log": [{**e, "changed_at": iso(e["changed_at"])} for e in r["audit_log"]],
            }
            out.write(json.dumps(line, separators=(",", ":")) + "\n")
        # One line cut short, as a crashed exporter leaves it: ingest must report it and go on.
        out.write('{"proposal_id":"prop-99999","command":{"type":"SET_POWER","machine_id":"bullet-r1-virtual"\n')


def write_sqlite(records: list[dict], path: Path) -> None:
    path.unlink(missing_ok=True)
    con = sqlite3.connect(path)
    con.executescript(SQLITE_SCHEMA)
    columns = [c for c in records[0] if c not in ("audit_log", "charge_at")] if records else []
    for r in records:
        values = [json.dumps(r[c]) if c == "constraints" and r[c] is not None else
                  iso(r[c]) if isinstance(r[c], datetime) else r[c] for c in columns]
        con.execute(f"INSERT INTO proposals ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values)
        for e in r["audit_log"]:
            con.execute("INSERT INTO audit_log (proposal_id, changed_at, from_status, to_status, actor, note) "
                        "VALUES (?, ?, ?, ?, ?, ?)",
                        (r["proposal_id"], iso(e["changed_at"]), e["from_status"], e["to_status"], e["actor"], e["note"]))
    con.commit()
    con.execute("VACUUM")
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=config.ASSETS_DIR / "commands")
    parser.add_argument("--seed", type=int, default=20261117)
    parser.add_argument("--recordings", type=Path, default=config.ASSETS_DIR / "landing",
                        help="folder of *.sidecar.jsonl recordings whose proposals to generate")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    records = build(args.seed, sorted(args.recordings.glob("*.sidecar.jsonl")))
    archived = [r for r in records if r["created_at"] < DAYS[1]]
    live = [r for r in records if r["created_at"] >= DAYS[1]]
    write_jsonl(archived, args.out / "proposals_2026-11-17.jsonl")
    write_sqlite(live, args.out / "command_store.sqlite")
    print(f"{len(archived)} archived proposals -> {args.out / 'proposals_2026-11-17.jsonl'}")
    print(f"{len(live)} live proposals -> {args.out / 'command_store.sqlite'}")


if __name__ == "__main__":
    main()
