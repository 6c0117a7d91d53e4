"""Corpus classes built from the commands and evals contract tables (constructed here: those
domains are built concurrently) and how absent or empty tables are reported."""
import duckdb
import pytest

from daena_pipelines.nbmf.codec import NbmfCodec, canonical_json
from daena_pipelines.nbmf.corpus import load_corpus, origin_counts, size_bucket


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
            "CREATE TABLE evals.eval_runs (session_id VARCHAR, case_id VARCHAR, outcome VARCHAR, partition_date DATE,"
            " evaluated_at TIMESTAMPTZ)"
        )
        con.execute("INSERT INTO evals.eval_runs VALUES ('s1', 'scorched', 'pass', DATE '2025-11-21', now())")
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
    assert "evaluated_at" not in by_class["eval_result"][0].record  # when CI ran must not move golden ratios
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


def test_reference_corpus_is_the_real_profiles_through_the_real_ingest(reference_dir):
    from daena_pipelines.nbmf.codec import CodecSettings
    from daena_pipelines.nbmf.corpus import reference_corpus

    records, reason = reference_corpus(reference_dir)
    assert reason is None
    assert {r.record_class for r in records} >= {"session", "telemetry"} and {r.origin for r in records} == {"reference"}
    sessions = [r.record for r in records if r.record_class == "session"]
    assert {s["source"] for s in sessions} == {"real"} and {s["source_format"] for s in sessions} == {"artisan_alog"}
    # real readings are off NBMF's grid: the semantic bound is exercised, not trivially met
    codec = NbmfCodec(settings=CodecSettings())
    telemetry = next(r.record for r in records if r.record_class == "telemetry")
    decoded = codec.decode(codec.encode(telemetry, "telemetry", "semantic"))
    errors = [abs(a - b) for a, b in zip(telemetry["points"]["bt_c"], decoded["points"]["bt_c"]) if a is not None]
    assert 0 < max(errors) <= 0.025 + 1e-9


@pytest.mark.parametrize("content", ["absent", "empty", "only rejected"])
def test_reference_corpus_absent_is_a_skip_locally_and_an_error_under_ci(tmp_path, monkeypatch, content):
    """An empty folder, or one whose files are all rejected, yields no profile either (before: no
    records and no reason, so CI measured without the real profiles and said nothing)."""
    from daena_pipelines.nbmf.corpus import reference_corpus

    folder = tmp_path / "reference"
    if content != "absent":
        folder.mkdir()
    if content == "only rejected":
        (folder / "broken.alog").write_bytes(b"{'mode': ")
    monkeypatch.delenv("CI", raising=False)
    records, reason = reference_corpus(folder)
    assert records == [] and reason.startswith(f"real reference profiles not found at {folder}")
    if content == "only rejected":
        assert reason.endswith(": 1 roast files, 1 rejected, none loaded")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(FileNotFoundError, match="CI needs ../shared"):
        reference_corpus(folder)


def test_every_warehouse_record_says_whether_it_is_real_simulated_or_generated(tmp_path):
    """The benchmark corpus is drawn from whatever the warehouse holds — on the bundled data, simulator
    sessions and a generated proposal log. Each record carries the origin its row states; before, all were
    'warehouse', so nbmf.runs could not say how much of a measured corpus was real."""
    with duckdb.connect(str(tmp_path / "w.duckdb")) as con:
        con.execute("""
            CREATE SCHEMA telemetry; CREATE SCHEMA commands; CREATE SCHEMA evals;
            CREATE TABLE telemetry.sessions AS SELECT * FROM (VALUES ('sim', 'simulator', 'simulated notes'),
                ('real', 'real', 'roasted by hand')) AS t(session_id, source, notes);
            CREATE TABLE telemetry.points AS SELECT * FROM (VALUES ('sim', 0.0, 150.0), ('real', 0.0, 151.0)) AS t(session_id, t_s, bt_c);
            CREATE TABLE commands.proposals AS SELECT * FROM (VALUES ('p-gen', 'generated'), ('p-sim', 'simulator'),
                ('p-real', 'real')) AS t(proposal_id, origin);
            CREATE TABLE evals.eval_runs AS SELECT * FROM (VALUES ('sim', 'c', 'FAIL', 'simulator')) AS t(session_id, case_id, outcome, session_source);
            CREATE TABLE evals.judge_scores AS SELECT * FROM (VALUES ('sim', 'c', 'simulator', 'scored by the local server'),
                ('real', 'c', 'anthropic', 'scored by the API')) AS t(session_id, case_id, source, reasoning);
        """)
        records, skipped = load_corpus(con)
    assert skipped == {}
    assert sorted((r.record_class, r.key, r.origin) for r in records) == [
        ("command", "p-gen", "generated"), ("command", "p-real", "real"), ("command", "p-sim", "simulator"),
        ("eval_result", "sim|c", "simulator"),
        ("judge_reasoning", "real|c", "real"), ("judge_reasoning", "sim|c", "simulator"),
        ("roast_note", "real", "real"), ("roast_note", "sim", "simulator"),
        ("session", "real", "real"), ("session", "sim", "simulator"),
        ("telemetry", "real", "real"), ("telemetry", "sim", "simulator"),
    ]
    assert origin_counts(records) == {
        "command": {"generated": 1, "real": 1, "simulator": 1}, "eval_result": {"simulator": 1},
        "judge_reasoning": {"real": 1, "simulator": 1}, "roast_note": {"real": 1, "simulator": 1},
        "session": {"real": 1, "simulator": 1}, "telemetry": {"real": 1, "simulator": 1}}
