"""`coderm sandbox exec` and `coderm sandbox matrix`, as a user debugging a verdict runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from replay_problems import write_replay_file

pytestmark = pytest.mark.e2e


def test_exec_shows_the_outcome_counts_and_output(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    solution = tmp_path / "solution.py"
    solution.write_text("def f(x):\n    print('computing', x)\n    return x * 2\n")
    test = tmp_path / "test_f.py"
    test.write_text(
        "import unittest\nfrom solution import f\n\n\nclass TestF(unittest.TestCase):\n"
        "    def test_two(self):\n        self.assertEqual(f(2), 4)\n\n"
        "    def test_minus_one(self):\n        self.assertEqual(f(-1), 2)\n\n\n"
        "if __name__ == '__main__':\n    unittest.main()\n"
    )
    shown = coderm_cli(
        ["sandbox", "exec", "--solution", str(solution), "--test", str(test)], env=embedded_env
    )
    assert shown.returncode == 0, shown.stderr
    assert (
        "fail" in shown.stdout and "computing 2" in shown.stdout and "AssertionError: -2 != 2" in shown.stdout
    )

    as_json = coderm_cli(
        ["sandbox", "exec", "--solution", str(solution), "--test", str(test), "--json"], env=embedded_env
    )
    outcome = json.loads(as_json.stdout)
    assert outcome["status"] == "fail" and outcome["tests_run"] == 2 and outcome["failures"] == 1
    assert outcome["duration_ms"] >= 0 and "computing -1" in outcome["output"]


def test_exec_refuses_a_file_without_a_test_class(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    solution = tmp_path / "s.py"
    solution.write_text("x = 1\n")
    shown = coderm_cli(
        ["sandbox", "exec", "--solution", str(solution), "--test", str(solution)], env=embedded_env
    )
    assert shown.returncode == 2 and "not a usable unit test (no TestCase class)" in shown.stderr


def test_matrix_prints_throughput(tmp_path: Path, embedded_env: dict[str, str], coderm_cli) -> None:
    problems = write_replay_file(tmp_path / "replay.jsonl", count=3)
    shown = coderm_cli(["sandbox", "matrix", str(problems)], env=embedded_env)
    assert shown.returncode == 0, shown.stderr
    assert "add/2" in shown.stdout
    # 4 solutions x 2 valid tests per problem; identical problems still count their own pairs.
    assert "24 pairs" in shown.stdout and "pairs/s" in shown.stdout
