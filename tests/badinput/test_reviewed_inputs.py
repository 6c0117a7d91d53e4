"""Hostile reviewed inputs (golden roast cases, golden value files) judged by their end state: the
good cases load, each bad file is one error naming it and the problem, the check fails; a
golden value that would make a gate unable to fail is refused."""
import json
import os
import shutil

import dagster as dg
import duckdb
import pytest

from daena_pipelines.config import PROJECT_ROOT
from daena_pipelines.defs.evals import assets, checks
from daena_pipelines.lib.settings import DaenaSettings
from daena_pipelines.lib.warehouse import WarehouseResource
from daena_pipelines.regressions.golden import evaluate_file

CASES = PROJECT_ROOT / "golden" / "cases"


def _case(**changes) -> str:
    case = json.loads((CASES / "ethiopia-guji-light-medium.json").read_text())
    case["id"] = "hostile"
    for section, values in changes.items():
        case[section].update(values)
    return json.dumps(case)


def test_hostile_case_files_are_named_errors_and_the_good_cases_still_load(tmp_path):
    golden = tmp_path / "golden"
    shutil.copytree(CASES, golden / "cases")
    cases = golden / "cases"
    good = len(list(cases.glob("*.json")))
    (cases / "a-folder.json").mkdir()  # a file replaced by a folder
    os.symlink(cases / "loop-b.json", cases / "loop-a.json")
    os.symlink(cases / "loop-a.json", cases / "loop-b.json")
    (cases / "infinite-tolerance.json").write_text(_case(tolerances={"fcs_bt_c": float("inf")}))  # json.dumps writes Infinity
    (cases / "huge-tolerance.json").write_text(_case(tolerances={"fcs_bt_c": 5}).replace('"fcs_bt_c": 5', '"fcs_bt_c": 1e400'))
    (cases / "nan-target.json").write_text(_case(targets={"fcs_bt_c": float("nan")}))
    (cases / "key-twice.json").write_text(_case().replace('"id": "hostile"', '"id": "hostile", "id": "other"'))
    (cases / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (cases / "latin-1.json").write_bytes(_case(bean={"name": "Caf\u00e9"}).replace("\\u00e9", "\u00e9").encode("latin-1"))
    (cases / "bom.json").write_bytes(b"\xef\xbb\xbf" + _case().encode())  # a byte order mark is not content: loads

    db = tmp_path / "w.duckdb"
    result = dg.materialize([assets.golden_cases, checks.golden_cases_valid], selection=[assets.golden_cases.key], raise_on_error=False,
                            resources={"duckdb": WarehouseResource(database=str(db)), "daena_settings": DaenaSettings(golden_dir=str(golden))})
    # the asset materialised (before: IsADirectoryError failed it and no case loaded); its blocking check fails the run
    assert [e.asset_key for e in result.get_asset_materialization_events()] == [assets.golden_cases.key]
    with duckdb.connect(str(db), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM evals.golden_cases").fetchone()[0] == good + 1
        errors = dict(con.execute("SELECT file, error FROM evals.golden_case_errors").fetchall())
    expected = {
        "a-folder.json": "cannot read the file (Is a directory)",
        "loop-a.json": "cannot read the file (Too many levels of symbolic links)",
        "loop-b.json": "cannot read the file (Too many levels of symbolic links)",
        "infinite-tolerance.json": "Infinity is not a JSON number",  # before: loaded, a gate that cannot fail
        "huge-tolerance.json": "number '1e400' is beyond the range of a float",  # before: loaded as inf
        "nan-target.json": "NaN is not a JSON number",  # before: loaded
        "key-twice.json": "key 'id' appears twice",  # before: loaded as 'other'
        "deep.json": "nested too deeply",  # before: RecursionError failed the run
        "latin-1.json": "not UTF-8 text: byte",  # before: UnicodeDecodeError failed the run
    }
    assert set(errors) == set(expected)
    for file, problem in expected.items():
        assert errors[file].startswith(f"{file}: ") and problem in errors[file], errors[file]
    (check,) = result.get_asset_check_evaluations()
    assert not check.passed and all(file in check.description for file in expected)


@pytest.mark.parametrize(("rule", "problem"), [
    ('{"kind": "abs", "tolerance": 1e400}', "number '1e400' is beyond the range of a float"),
    ('{"kind": "abs", "tolerance": Infinity}', "Infinity is not a JSON number"),
    ('{"kind": "abs", "tolerance": 1' + "0" * 400 + "}", "beyond the range of a float"),
    ('{"kind": "abs", "tolerance": 0.5, "tolerance": 100}', "key 'tolerance' appears twice"),
])
def test_a_golden_value_file_that_would_let_everything_pass_is_a_named_failure(tmp_path, rule, problem):
    path = tmp_path / "t.golden.json"
    path.write_text('{"name": "t", "table": "main.t", "key_columns": ["k"], "value_column": "v", "latest_by": null, "rules": [],'
                    f' "entries": [{{"key": {{"k": "a"}}, "expected": 1.0, "rule": {rule}}}]}}')
    with duckdb.connect() as con:
        con.execute("CREATE TABLE t AS SELECT 'a' AS k, 50.0 AS v")  # 49 away from the golden 1.0
        (outcome,), _run = evaluate_file(con, path)
    assert not outcome.passed  # before: passed (|50 - 1| <= inf, <= 10**400, <= the second tolerance)
    assert outcome.metric == "golden_file:t.golden.json" and str(path) in outcome.note and problem in outcome.note


@pytest.mark.parametrize(("edit", "problem"), [
    (lambda text: text.replace('"labels": [', '"labels": [[1, 2], ', 1), r"labels\[0\]: must be an object"),  # before: AttributeError
    (lambda text: text.replace('"session_id": ', '"sid": ', 1), r"labels\[0\]: 'session_id' must be a non-empty string"),  # before: KeyError
    (lambda text: text.replace('"labelled_by": ', '"labelled_by": "x", "labelled_by": ', 1), r"key 'labelled_by' appears twice"),  # before: loaded
    (lambda text: text[: len(text) // 2], r"not valid JSON: .* at line \d+ column \d+"),  # before: JSONDecodeError naming no file
])
def test_unusable_calibration_labels_name_the_file_and_the_problem(tmp_path, edit, problem):
    from daena_pipelines.evals import calibration

    path = tmp_path / "calibration.json"
    path.write_text(edit((PROJECT_ROOT / "golden" / "judge" / "calibration.json").read_text()))
    with pytest.raises(calibration.InvalidLabels, match=rf"^calibration\.json.*{problem}"):
        calibration.load_labels(path)
