"""Hostile titles and notes stay data; the judge's agreement with human labels and with the gates."""
import json

import anthropic
import pytest

from daena_pipelines import config
from daena_pipelines.evals import calibration, judge
from daena_pipelines.telemetry.ingest import parser_for

from .messages_server import API_KEY, MessagesServer

ADVERSARIAL = json.loads((config.Settings.from_env().golden_dir / "judge" / "adversarial.json").read_text())


@pytest.fixture(scope="module")
def server():
    with MessagesServer() as s:
        yield s


def base_request(**text):
    base = ADVERSARIAL["base"]
    return judge.build_request(
        base["session_id"], {"id": base["case_id"]}, base["metrics"], base["gates"], base["commands"],
        judge.telemetry_summary(base["summary"]), text.get("notes", base["notes"]), text.get("title", base["title"]),
    )


def scores(server, request) -> dict:
    c = anthropic.Anthropic(api_key=API_KEY, base_url=server.base_url, max_retries=0)
    (row,) = judge.judge([request], judge.JudgeSettings(base_url=server.base_url), c, "", {})
    assert row["status"] == "judged", row["reason"]
    return {n: row[n] for n in judge.SCORE_COLUMNS.values()}


@pytest.mark.parametrize("case", ADVERSARIAL["cases"], ids=[c["id"] for c in ADVERSARIAL["cases"]])
def test_hostile_titles_and_notes_stay_data_and_move_no_score(server, case):
    benign = scores(server, base_request())
    hostile = base_request(**{case["field"]: case["text"]})
    assert hostile.user.count(f"</session_{case['field']}>") == 1  # the text cannot close its block
    assert scores(server, hostile) == benign


def test_the_same_text_unquoted_would_move_the_scores(server, monkeypatch):
    """The control that shows the test above can fail: without quoting, escaping cases reach the instructions."""
    benign = scores(server, base_request())
    monkeypatch.setattr(judge, "_quoted", lambda text: text or "")
    escaping = [c for c in ADVERSARIAL["cases"] if c["escapes_its_block_if_unquoted"]]
    assert len(escaping) >= 3
    for case in escaping:
        assert scores(server, base_request(**{case["field"]: case["text"]})) != benign, case["id"]


def test_the_benign_adversarial_base_scores_near_its_human_labels(server):
    """Not an agreement statistic (one session): a sanity bound that the simulated judge reads the blocks."""
    got = scores(server, base_request())
    labels = ADVERSARIAL["labels"]
    assert all(abs(got[judge.SCORE_COLUMNS[n]] - labels[n]) <= 30 for n in judge.SCORE_FIELDS), got


def test_calibration_labels_are_complete_and_say_who_labelled_them():
    header, labels = calibration.load_labels(config.Settings.from_env().golden_dir / "judge" / "calibration.json")
    assert "not a panel" in header["labelled_by"] and header["labelled_on"]
    assert len(labels) == len({(lb.session_id, lb.case_id) for lb in labels}) >= calibration.MIN_PAIRS
    assert all(len(lb.justification) > 40 for lb in labels)
    # Every label names a bundled session by its current id (ids are computed from the recordings).
    bundled = {parser_for(p)(p.read_bytes(), str(p)).session_id for p in (config.ASSETS_DIR / "landing").glob("*.sidecar.jsonl")}
    assert {lb.session_id for lb in labels} == bundled


def test_spearman_and_kappa_match_hand_computed_values():
    # Ranks of y with a tie: [1, 2, 3.5, 5, 3.5]; rho = 8 / sqrt(10 * 9.5).
    assert calibration.spearman([1, 2, 3, 4, 5], [5, 6, 7, 8, 7]) == pytest.approx(8 / (10 * 9.5) ** 0.5)
    assert calibration.spearman([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert calibration.spearman([1, 2, 3], [4, 4, 4]) is None
    # 6 of 8 agree; chance (3*3 + 3*4 + 2*1) / 64; kappa = (0.75 - 23/64) / (1 - 23/64).
    a, b = list("ppggeegp"), list("pgggepgp")
    assert calibration.cohens_kappa(a, b) == pytest.approx((0.75 - 23 / 64) / (1 - 23 / 64))
    assert calibration.cohens_kappa(["x", "x"], ["x", "x"]) is None
    assert [calibration.band(s) for s in (0, 39, 40, 69, 70, 84, 85, 100)] == [
        "poor", "poor", "fair", "fair", "good", "good", "excellent", "excellent"]


def judged(key, **dims):
    return {"session_id": key[0], "case_id": key[1], **{judge.SCORE_COLUMNS[n]: v for n, v in dims.items()}}


def test_agreement_reduces_samples_to_the_median_and_flags_low_agreement():
    labels = [calibration.Label(f"s{i}", "c", dict(planClarity=10 * i + 20, physicsPlausibility=80,
                                                   constraintRespect=15 * i, safetyScore=95), "why") for i in range(6)]
    rows = []
    for i in range(6):
        for plan in (10 * i + 20, 10 * i + 25, 0):  # median = 10 i + 20: the outlier sample does not count
            rows.append(judged((f"s{i}", "c"), planClarity=plan, physicsPlausibility=80,
                               constraintRespect=100 - 15 * i, safetyScore=95))
    outcomes = {(f"s{i}", "c"): "PASS" if i < 3 else "FAIL" for i in range(6)}
    table = {r["dimension"] if r["comparison"] == "judge_vs_human" else "gates": r
             for r in calibration.agreement(rows, labels, outcomes)}
    assert table["planClarity"]["spearman"] == pytest.approx(1.0) and table["planClarity"]["status"] == "ok"
    # constraintRespect runs the wrong way round against the labels: flagged.
    assert table["constraintRespect"]["spearman"] == pytest.approx(-1.0)
    assert table["constraintRespect"]["status"] == "below_threshold"
    # Constant on both sides: correlation undefined, kappa undefined -> flagged, not passed silently.
    assert table["physicsPlausibility"]["spearman"] is None and table["physicsPlausibility"]["status"] == "below_threshold"
    # Judge acceptable (>= 70) for s0..s2 (100, 85, 70), not for s3..s5; gates PASS for s0..s2: full agreement.
    assert table["gates"]["agreement_rate"] == 1.0 and table["gates"]["status"] == "ok"
    few = calibration.agreement(rows[:6], labels, outcomes)
    assert {r["status"] for r in few} == {"too_few_pairs"}


def test_agreement_never_pools_simulated_and_real_roasts(tmp_path):
    """The judge's agreement with the gates over simulated roasts says nothing about real ones (and the labels
    are of simulator recordings): judge_agreement has one block per session source. Before, the same judge's
    rows over five simulated and five real roasts were pooled into one judge_vs_gates row of ten pairs."""
    from daena_pipelines.db import connect
    from daena_pipelines.evals import tables

    sessions = [(f"sim{i}", "simulator") for i in range(5)] + [(f"real{i}", "real") for i in range(5)]
    with connect(tmp_path / "w.duckdb") as con:
        con.executemany("INSERT INTO telemetry.sessions (session_id, source_format, source, source_path, content_sha256, "
                        "original_unit, ingested_at) VALUES (?, 'sidecar_jsonl', ?, 'f', 'h', 'C', now())", sessions)
        con.executemany("INSERT INTO evals.eval_runs (session_id, case_id, outcome, session_source, evaluated_at) "
                        "VALUES (?, 'c', ?, ?, now())", [(s, "PASS" if src == "real" else "FAIL", src) for s, src in sessions])
        con.executemany("INSERT INTO evals.judge_scores (session_id, case_id, sample_index, status, source, endpoint, model, "
                        "prompt_version, plan_clarity, physics_plausibility, constraint_respect, safety_score) "
                        "VALUES (?, 'c', 0, 'judged', 'anthropic', 'https://api.anthropic.com', 'm', 'v', 50, 50, 90, 90)",
                        [(s,) for s, _ in sessions])
        labels = [calibration.Label(s, "c", dict.fromkeys(judge.SCORE_FIELDS, 80), "") for s, src in sessions if src == "simulator"]
        tables.refresh_judge_agreement(con, labels, "calibration.json")
        rows = con.execute("SELECT session_source, comparison, n_pairs, agreement_rate FROM evals.judge_agreement "
                           "WHERE dimension = 'constraintRespect' ORDER BY ALL").fetchall()
    # the judge calls every roast acceptable: right on the real ones (PASS), wrong on the simulated (FAIL)
    assert rows == [("real", "judge_vs_gates", 5, 1.0), ("real", "judge_vs_human", 0, None),
                    ("simulator", "judge_vs_gates", 5, 0.0), ("simulator", "judge_vs_human", 5, None)]
