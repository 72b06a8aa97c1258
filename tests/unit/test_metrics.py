"""The paper's accuracies and test-quality figures, on matrices computed by hand."""

from __future__ import annotations

import pytest

from agents.scoring import Confusion, ScoredProblem, draw_subset, job_metrics, rescore, score_problem

T, F = True, False


def test_a_problem_with_an_invalid_sample_and_a_consensus_tie() -> None:
    # Samples 0 and 3 are correct, 1 is wrong, 2 is invalid (no row). Rows: samples 0, 1, 3.
    score = score_problem(
        sample_correct=[T, F, F, T],
        candidates=[0, 1, 3],
        pass_matrix=[[T, T, F], [T, F, F], [T, T, F]],
        tie_set=[0, 2],
    )
    assert score.vanilla == 0.5 and score.best_of_n == 1.0 and score.oracle
    assert score.samples == 4 and score.correct_samples == 2
    assert score.individual == Confusion(tp=4, fp=1, tn=2, fn=2)
    assert score.combined == Confusion(tp=2, fp=0, tn=1, fn=0)


def test_quality_follows_the_papers_definitions_and_names_the_textbook_ones() -> None:
    quality = Confusion(tp=4, fp=1, tn=2, fn=2).quality()
    assert quality.acc == pytest.approx(6 / 9)
    assert quality.f1 == pytest.approx(2 * 0.8 * (4 / 6) / (0.8 + 4 / 6))
    assert quality.far == pytest.approx(1 / 5)  # FP / (FP + TP), as printed in the paper
    assert quality.frr == pytest.approx(2 / 4)  # FN / (FN + TN), as printed in the paper
    assert quality.false_positive_rate == pytest.approx(1 / 3)  # FP / (FP + TN)
    assert quality.false_negative_rate == pytest.approx(2 / 6)  # FN / (FN + TP)


def test_a_tie_between_a_right_and_a_wrong_solution_is_worth_half() -> None:
    score = score_problem([T, F], [0, 1], [[T], [T]], tie_set=[0, 1])
    assert score.best_of_n == 0.5


def test_all_fail_all_pass_no_valid_and_no_tests() -> None:
    all_fail = score_problem([F, F], [0, 1], [[F, F], [F, F]], tie_set=[0, 1])
    assert (all_fail.vanilla, all_fail.best_of_n, all_fail.oracle) == (0.0, 0.0, False)
    assert all_fail.combined == Confusion(tn=0, fp=2)  # everyone ties at the maximum, zero
    all_pass = score_problem([T, T], [0, 1], [[T], [T]], tie_set=[0, 1])
    assert all_pass.best_of_n == 1.0 and all_pass.individual == Confusion(tp=2)
    no_valid = score_problem([F, F], [], [], tie_set=[])
    assert (no_valid.vanilla, no_valid.best_of_n, no_valid.oracle) == (0.0, 0.0, False)
    assert no_valid.individual == Confusion() and no_valid.combined == Confusion()
    no_tests = score_problem([T, F], [0, 1], [[], []], tie_set=[0, 1])
    assert no_tests.best_of_n == 0.5 and no_tests.individual == Confusion()
    assert no_tests.combined == Confusion(tp=1, fp=1)


def test_empty_denominators_give_zero_not_an_error() -> None:
    assert Confusion().quality().acc == 0.0 and Confusion(tn=3).quality().f1 == 0.0


def test_job_figures_average_accuracies_and_pool_counts() -> None:
    a = score_problem([T, F, F, T], [0, 1, 3], [[T, T, F], [T, F, F], [T, T, F]], [0, 2])
    b = score_problem([F, F], [], [], [])
    metrics = job_metrics([a, b])
    assert metrics.problems == 2
    assert metrics.vanilla == 0.25 and metrics.best_of_n == 0.5 and metrics.oracle == 0.5
    assert metrics.individual == Confusion(tp=4, fp=1, tn=2, fn=2).quality()
    assert metrics.to_json()["best_of_n"] == 50.0
    assert metrics.to_json()["individual"]["far"] == 20.0  # type: ignore[index]


PROBLEM = ScoredProblem(
    task_id="p",
    sample_correct=[T, F, T],
    candidates=[0, 1, 2],
    # Test 0 tells right from wrong; test 1 passes everyone; test 2 prefers the wrong one.
    pass_matrix=[[T, T, F], [F, T, T], [T, T, F]],
)


def test_a_subset_keeps_the_first_solutions_and_draws_tests() -> None:
    import random

    subset = draw_subset(PROBLEM, n_solutions=2, n_slots=2, rng=random.Random(1))
    assert subset.sample_correct == [T, F] and subset.candidates == [0, 1]
    assert all(len(row) == 2 for row in subset.pass_matrix) and len(subset.pass_matrix) == 2


def test_repeats_average_the_draws_and_are_reproducible() -> None:
    # One test per vote: best-of-N is 1 when test 0 is drawn, 2/3 for test 1 (all three tie) and 0 for
    # test 2 (only the wrong solution passes); each is drawn a third of the time.
    metrics, _ = rescore([PROBLEM], n_solutions=3, n_slots=1, repeats=300, seed=0)
    assert metrics.best_of_n == pytest.approx((1 + 2 / 3 + 0) / 3, abs=0.05)
    again, _ = rescore([PROBLEM], n_solutions=3, n_slots=1, repeats=300, seed=0)
    assert again == metrics
    all_tests, scores = rescore([PROBLEM], n_solutions=3, n_slots=3, repeats=5, seed=0)
    assert all_tests.best_of_n == 1.0 and scores[0].best_of_n == 1.0


def test_draws_are_of_slots_and_an_invalid_or_duplicate_slot_is_an_empty_test() -> None:
    # One distinct valid test that tells right from wrong, in 4 slots (the other samples were invalid
    # or repeated it): a vote on 1 slot finds it a quarter of the time, as the reference's draw of
    # ut_num of its 100 ids does; otherwise no test is drawn and both solutions tie.
    problem = ScoredProblem(
        task_id="p", sample_correct=[T, F], candidates=[0, 1], pass_matrix=[[T], [F]], slots=4
    )
    metrics, _ = rescore([problem], n_solutions=2, n_slots=1, repeats=400, seed=0)
    assert metrics.best_of_n == pytest.approx(0.25 * 1 + 0.75 * 0.5, abs=0.04)
    everything, _ = rescore([problem], n_solutions=2, n_slots=4, repeats=3, seed=0)
    assert everything.best_of_n == 1.0


def test_slots_are_at_least_the_distinct_tests() -> None:
    assert PROBLEM.test_slots == 3
    assert ScoredProblem("p", [T], [0], [[T, F]], slots=5).test_slots == 5


def test_one_rescore_gives_every_strategys_best_of_n_on_the_same_draws() -> None:
    from agents.selection import STRATEGIES

    metrics, _ = rescore([PROBLEM], n_solutions=3, n_slots=1, repeats=50, seed=0)
    for strategy in STRATEGIES:
        alone, _ = rescore([PROBLEM], n_solutions=3, n_slots=1, repeats=50, seed=0, strategy=strategy)
        assert metrics.best_of_n_by_strategy[strategy] == pytest.approx(alone.best_of_n)
