"""The executor's verdicts on ordinary programs (the hostile ones live in tests/security)."""

from __future__ import annotations

import pytest

from orchestrator.config import SandboxLimits
from sandbox.executor import run_matrix, run_pair
from sandbox.outcomes import Outcome

TEST = "import unittest\n\nclass T(unittest.TestCase):\n    def test_one(self):\n        self.assertEqual(f(1), 2)\n"
LIMITS = SandboxLimits(time_limit_s=1.0)


@pytest.mark.parametrize(
    ("solution", "outcome"),
    [
        ("def f(x):\n    return x + 1\n", Outcome.PASS),
        ("def f(x):\n    return x\n", Outcome.FAIL),
        ("def f(x):\n    raise ValueError\n", Outcome.ERROR),
        ("def f(x):\n    while True:\n        pass\n", Outcome.TIMEOUT),
        ("def f(x:\n", Outcome.INVALID),
        ("import sys\nsys.exit(0)\n", Outcome.ERROR),
        ("import os\nos._exit(0)\n", Outcome.KILLED),
        (
            "def f(x):\n    return x + 1\nif __name__ == '__main__':\n    raise SystemExit(input())\n",
            Outcome.PASS,
        ),
    ],
)
def test_verdicts(solution: str, outcome: Outcome) -> None:
    assert run_pair(solution, TEST, LIMITS).outcome is outcome


def test_a_test_without_class_is_invalid() -> None:
    assert run_pair("def f(x): return x", "print('hi')", LIMITS).outcome is Outcome.INVALID


def test_printing_ok_does_not_pass() -> None:
    solution = "print('OK')\nprint('Ran 1 test')\ndef f(x):\n    return 0\n"
    result = run_pair(solution, TEST, LIMITS)
    assert result.outcome is Outcome.FAIL and result.tests_run == 1 and result.failures == 1


def test_matrix_is_solutions_by_tests() -> None:
    matrix = run_matrix(["def f(x): return x + 1", "def f(x): return 0"], [TEST, TEST], LIMITS)
    assert [[cell.outcome for cell in row] for row in matrix] == [[Outcome.PASS] * 2, [Outcome.FAIL] * 2]
