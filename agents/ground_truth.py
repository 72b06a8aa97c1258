"""Ground truth as a unit test, so the sandbox judges correctness the way it runs every other pair.

A problem's ground truth is a test program (HumanEval's `check` function and its call, or a plain
program of asserts): a solution is correct iff the program runs to its end within the time limit.
The program runs inside a test method, in the solution's own globals, as if appended to it.
"""

from __future__ import annotations

GROUND_TRUTH_CLASS = "CodermGroundTruth"


def ground_truth_test(program: str) -> str:
    """A unittest class that passes iff `program`, run after the solution, raises nothing."""
    return (
        "import unittest\n\n\n"
        f"_CODERM_GROUND_TRUTH = {program!r}\n\n\n"
        f"class {GROUND_TRUTH_CLASS}(unittest.TestCase):\n"
        "    def test_ground_truth(self):\n"
        "        exec(compile(_CODERM_GROUND_TRUTH, '<ground truth>', 'exec'), globals())\n"
    )


def label_is_correct(label: object) -> bool:
    """A replayed label: CodeRM's `plus_status` ('pass'/'fail') or a boolean."""
    return label is True or (
        isinstance(label, str) and label.lower() in ("pass", "passed", "true", "correct")
    )
