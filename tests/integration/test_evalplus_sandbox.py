"""EvalPlus ground truth in the jail, as `judge_solutions` runs it (sandbox/tasks.py): the program
after each solution, under the ground-truth time limit."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents.evalplus import EvalPlusTask
from agents.ground_truth import ground_truth_test
from orchestrator.core.config import SandboxLimits
from orchestrator.inputs.evalplus_files import fitted_program, read_evalplus_file
from sandbox.executor import run_matrix
from sandbox.outcomes import Outcome

pytestmark = pytest.mark.integration

LIMITS = SandboxLimits()
GROUND_TRUTH_LIMITS = LIMITS.model_copy(update={"time_limit_s": LIMITS.ground_truth_time_limit_s})


def judge(task: EvalPlusTask, solutions: list[str]) -> list[bool]:
    program = fitted_program(task)
    assert program is not None
    rows = run_matrix(solutions, [ground_truth_test(program)], GROUND_TRUTH_LIMITS)
    return [row[0].outcome is Outcome.PASS for row in rows]


@pytest.fixture(scope="module")
def tasks(data_dir: Path) -> dict[str, EvalPlusTask]:
    return read_evalplus_file(data_dir / "evalplus" / "HumanEvalPlus.jsonl", "humaneval")


def test_right_and_wrong_solutions(tasks: dict[str, EvalPlusTask]) -> None:
    close = "def has_close_elements(numbers, threshold):\n    s = sorted(numbers)\n    return any(b - a {} threshold for a, b in zip(s, s[1:]))\n"
    assert judge(tasks["HumanEval/0"], [close.format("<"), close.format("<=")]) == [True, False]
    truncate = "def truncate_number(number):\n    return {}\n"
    assert judge(
        tasks["HumanEval/2"],
        [
            truncate.format("number % 1.0"),
            truncate.format("round(number - int(number), 9)"),  # within atol: numpy.allclose in the jail
            truncate.format("round(number - int(number), 2)"),
            truncate.format("float('0.' + str(number).split('.')[1])"),  # raises on the plus input 1e-07
        ],
    ) == [True, True, False, False]


def test_hostile_solutions_do_not_pass(tasks: dict[str, EvalPlusTask]) -> None:
    close = tasks["HumanEval/0"]
    hostile = [
        # empties its input, so that a reference run after it on the same list would agree
        "def has_close_elements(numbers, threshold):\n    numbers.clear()\n    return False\n",
        # makes deep copies shallow first, then empties its input
        "import copy\ncopy.deepcopy = lambda x, memo=None: x\n"
        "def has_close_elements(numbers, threshold):\n    numbers.clear()\n    return False\n",
        # makes the task it is judged on one without inputs
        "import json\n_loads = json.loads\n"
        "json.loads = lambda s, **k: {**_loads(s, **k), 'base_input': [], 'plus_input': []}\n"
        "def has_close_elements(numbers, threshold):\n    return False\n",
        # replaces the reference's sorted(), which it calls by name
        "import builtins\nbuiltins.sorted = lambda xs: [0.0] * len(xs)\n"
        "def has_close_elements(numbers, threshold):\n    return len(numbers) > 1\n",
    ]
    assert judge(close, hostile) == [False] * len(hostile)
