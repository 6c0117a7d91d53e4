"""Corpus classes built from the commands and evals contract tables (constructed here: those
domains are built concurrently) and how absent or empty tables are reported."""
import duckdb

from daena_pipelines.nbmf.codec import NbmfCodec, canonical_json
from daena_pipelines.nbmf.corpus import load_corpus, size_bucket


def test_commands_with_audit_logs_eval_results_and_judge_reasoning(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE SCHEMA commands; CREATE SCHEMA evals")
        con.execute(
            "CREATE TABLE commands.proposals (proposal_id VARCHAR, machine_id VARCHAR, command_type VARCHAR,"
            " target_value DOUBLE, status VARCHAR, created_at TIMESTAMPTZ, origin VARCHAR)"
        )
        con.execute(
            "INSERT INTO commands.proposals VALUES ('p1', 'bullet-1', 'SET_POWER', 60, 'COMPLETED',"
            " TIMESTAMPTZ '2025-11-21 10:00:00+00', 'generated'), ('p2', 'bullet-1', 'DROP', NULL, 'REJECTED',"
            " TIMESTAMPTZ '2025-11-21 10:05:00+00', 'generated')"
        )
        con.execute("CREATE TABLE commands.audit_log (proposal_id VARCHAR, event VARCHAR, logged_at TIMESTAMPTZ)")
        con.execute(
            "INSERT INTO commands.audit_log VALUES ('p1', 'PROPOSED', TIMESTAMPTZ '2025-11-21 10:00:00+00'),"
            " ('p1', 'EXECUTING', TIMESTAMPTZ '2025-11-21 10:00:09+00'), ('p1', 'APPROVED', TIMESTAMPTZ '2025-11-21 10:00:05+00')"
        )
        con.execute(
            "CREATE TABLE evals.eval_runs (session_id VARCHAR, case_id VARCHAR, outcome VARCHAR, partition_date DATE)"
        )
        con.execute("INSERT INTO evals.eval_runs VALUES ('s1', 'scorched', 'pass', DATE '2025-11-21')")
        con.execute("CREATE TABLE evals.judge_scores (session_id VARCHAR, case_id VARCHAR, reasoning VARCHAR)")
        con.execute(
            "INSERT INTO evals.judge_scores VALUES ('s1', 'scorched', 'Not judged:  no API key\r\n'), ('s2', 'baked', NULL)"
        )
        records, skipped = load_corpus(con)
    by_class = {}
    for r in records:
        by_class.setdefault(r.record_class, []).append(r)
    assert set(skipped) == {"session", "telemetry", "roast_note"}
    p1 = next(r for r in by_class["command"] if r.key == "p1")
    assert [e["event"] for e in p1.record["audit_log"]] == ["PROPOSED", "APPROVED", "EXECUTING"]  # time order
    assert p1.record["created_at"] == "2025-11-21T10:00:00+00:00"
    assert next(r for r in by_class["command"] if r.key == "p2").record["audit_log"] == []
    assert [r.key for r in by_class["eval_result"]] == ["s1|scorched|2025-11-21"]
    assert len(by_class["judge_reasoning"]) == 1  # the row without reasoning is not a record
    codec = NbmfCodec()
    for r in records:
        assert canonical_json(codec.decode(codec.encode(r.record, r.record_class))) == r.canonical
        assert r.size_bucket == size_bucket(len(r.canonical)) in ("tiny", "small")
    judged = by_class["judge_reasoning"][0]
    assert codec.decode(codec.encode(judged.record, "judge_reasoning", "semantic"))["reasoning"] == "Not judged: no API key"


def test_empty_tables_are_reported_not_silently_dropped(tmp_path):
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("CREATE SCHEMA evals")
        con.execute("CREATE TABLE evals.eval_runs (session_id VARCHAR, case_id VARCHAR, outcome VARCHAR)")
        records, skipped = load_corpus(con)
    assert records == []
    assert skipped["eval_result"] == "its tables hold no records"
    assert skipped["judge_reasoning"] == "table evals.judge_scores does not exist in the warehouse"
