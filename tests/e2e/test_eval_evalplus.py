"""`coderm eval humaneval+` with replayed solutions: HumanEval's base tests and their label without
EvalPlus's data, EvalPlus's base and plus tests with it (CODERM_EVALPLUS_DIR, tests/data/evalplus).

The prompts are the first three of the CodeRM paper's HumanEval+ file (tests/data). Which replayed
solution is right, by which tests, is written beside it; the sandbox decides.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

SOLUTIONS = {
    "HumanEval/0": [
        # right
        "def has_close_elements(numbers, threshold):\n    s = sorted(numbers)\n    return any(b - a < threshold for a, b in zip(s, s[1:]))\n",
        # `<=`: passes HumanEval's tests; EvalPlus's plus input [1.0, 2.0, 4.0] at 1.0 fails it
        "def has_close_elements(numbers, threshold):\n    s = sorted(numbers)\n    return any(b - a <= threshold for a, b in zip(s, s[1:]))\n",
    ],
    "HumanEval/1": [
        # right
        "def separate_paren_groups(paren_string):\n    out, cur, depth = [], '', 0\n    for c in paren_string.replace(' ', ''):\n        cur += c\n        depth += 1 if c == '(' else -1\n        if depth == 0:\n            out.append(cur)\n            cur = ''\n    return out\n",
        # wrong by either tests: '( ) (( ))' has spaces inside its groups
        "def separate_paren_groups(paren_string):\n    return paren_string.split()\n",
    ],
    "HumanEval/2": [
        "def truncate_number(number):\n    return number % 1.0\n",  # right
        # within EvalPlus's atol (1e-6) of the reference, not equal to it
        "def truncate_number(number):\n    return round(number - int(number), 9)\n",
        # right on HumanEval's 3.5, 1.33 and 123.456; raises on EvalPlus's plus input 1e-07
        "def truncate_number(number):\n    return float('0.' + str(number).split('.')[1])\n",
        # wrong by either tests: 0.46 for 123.456
        "def truncate_number(number):\n    return round(number - int(number), 2)\n",
    ],
}
UNIT_TESTS = {
    "HumanEval/0": ["self.assertTrue(has_close_elements([1.0, 2.8, 3.0], 0.3))"],
    "HumanEval/1": ["self.assertEqual(separate_paren_groups('(()) ()'), ['(())', '()'])"],
    "HumanEval/2": ["self.assertAlmostEqual(truncate_number(3.5), 0.5)"],
}


@pytest.fixture
def replay_files(tmp_path: Path) -> list[str]:
    solutions, tests = tmp_path / "solutions.jsonl", tmp_path / "tests.jsonl"
    solutions.write_text(
        "".join(json.dumps({"task_id": t, "solutions": s}) + "\n" for t, s in SOLUTIONS.items())
    )
    tests.write_text(
        "".join(
            json.dumps(
                {
                    "task_id": task_id,
                    "unit_tests": [
                        f"import unittest\n\n\nclass TestIt(unittest.TestCase):\n    def test_it(self):\n        {body}\n"
                        for body in bodies
                    ],
                }
            )
            + "\n"
            for task_id, bodies in UNIT_TESTS.items()
        )
    )
    return ["--replay-solutions", str(solutions), "--replay-tests", str(tests)]


def run_eval(coderm_cli, env: dict[str, str], replay_files: list[str], out: Path):  # type: ignore[no-untyped-def]
    result = coderm_cli(["eval", "humaneval+", *replay_files, "--json-out", str(out)], env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    header, *problems = [json.loads(line) for line in out.read_text().splitlines()]
    return result, header, {p["task_id"]: p["correct_samples"] for p in problems}


def test_without_evalplus_data_humaneval_plus_is_labelled_as_scored_with_base_tests(
    data_dir: Path, tmp_path: Path, embedded_env: dict[str, str], coderm_cli, replay_files: list[str]
) -> None:
    env = embedded_env | {"CODERM_BENCHMARK_DIR": str(data_dir)}
    result, header, correct = run_eval(coderm_cli, env, replay_files, tmp_path / "eval.jsonl")
    assert header["benchmark"] == "humaneval+ prompts, base tests"
    assert "humaneval+ prompts, base tests" in " ".join(result.stdout.split())  # the table's title
    assert "scored with HumanEval's own tests" in result.stderr
    # HumanEval's tests pass the `<=` and the digit-reading solutions.
    assert correct == {"HumanEval/0": 2, "HumanEval/1": 1, "HumanEval/2": 3}
    assert header["vanilla"] == 75.0  # (2/2 + 1/2 + 3/4) / 3


def test_with_evalplus_data_humaneval_plus_is_scored_with_its_base_and_plus_tests(
    data_dir: Path, tmp_path: Path, embedded_env: dict[str, str], coderm_cli, replay_files: list[str]
) -> None:
    env = embedded_env | {
        "CODERM_BENCHMARK_DIR": str(data_dir),
        "CODERM_EVALPLUS_DIR": str(data_dir / "evalplus"),
    }
    result, header, correct = run_eval(coderm_cli, env, replay_files, tmp_path / "eval.jsonl")
    assert header["benchmark"] == "humaneval+"
    assert "ground truth from EvalPlus's HumanEvalPlus.jsonl" in result.stderr
    # The plus inputs fail the `<=` and the digit-reading solutions; the rounded one is within atol.
    assert correct == {"HumanEval/0": 1, "HumanEval/1": 1, "HumanEval/2": 2}
    assert header["vanilla"] == 50.0  # (1/2 + 1/2 + 2/4) / 3
    assert header["oracle"] == 100.0
