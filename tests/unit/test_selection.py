"""The voter's selection rule, on hand-computed matrices."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from agents.scoring import best_of_n_by_strategy
from agents.selection import STRATEGIES, SelectionStrategy, distinct_test_columns, pass_matrix, vote


def rng() -> random.Random:
    return random.Random("0/task")


def test_argmax_of_tests_passed_wins() -> None:
    decision = vote([[True, False, False], [True, True, True], [False, True, False]], rng())
    assert decision.selected == 1 and decision.tie_set == [1] and decision.pass_count == 3
    assert decision.top_set_size == 1


def test_consensus_breaks_ties_between_pass_patterns() -> None:
    # Rows 0, 1 and 3 pass two tests each; 0 and 3 share a pattern, so the tie set is {0, 3}.
    matrix = [[True, True, False], [False, True, True], [False, False, False], [True, True, False]]
    decision = vote(matrix, rng())
    assert decision.top_set_size == 3
    assert decision.tie_set == [0, 3]
    assert decision.selected in (0, 3)


def test_equal_consensus_keeps_every_largest_pattern_group() -> None:
    matrix = [[True, False], [False, True], [True, False], [False, True]]
    assert vote(matrix, rng()).tie_set == [0, 1, 2, 3]


def test_all_fail_and_all_pass_tie_everything() -> None:
    assert vote([[False, False]] * 3, rng()).tie_set == [0, 1, 2]
    assert vote([[True, True]] * 3, rng()).pass_count == 2


def test_no_candidates_means_no_selection() -> None:
    decision = vote([], rng())
    assert decision.selected is None and decision.tie_set == [] and decision.pass_count == 0


def test_no_tests_ties_all_valid_solutions() -> None:
    assert vote([[], [], []], rng()).tie_set == [0, 1, 2]


def test_the_draw_is_deterministic_for_a_seed() -> None:
    matrix = [[True]] * 10
    picks = {vote(matrix, random.Random("7/t")).selected for _ in range(5)}
    assert len(picks) == 1


def test_duplicate_and_invalid_tests_count_once_or_not_at_all() -> None:
    assert distinct_test_columns(["a", None, "b", "a", "c"]) == [0, 2, 4]


def test_pass_matrix_reads_outcome_letters_and_missing_rows() -> None:
    assert pass_matrix(["PFP", None, "TPP"], [0, 2]) == [[True, True], [False, False], [False, True]]


# CodeT and majority, beside the paper's vote.

# Rows 0-2 share a pattern passing one test; rows 3-4 pass all three. CodeT scores the groups 3 x 1
# and 2 x 3: the two strong solutions win; majority takes the three weak ones; the paper takes 3-4.
GROUPS = [
    [True, False, False],
    [True, False, False],
    [True, False, False],
    [True, True, True],
    [True, True, True],
]


def test_codet_scores_a_group_by_its_size_times_its_passes() -> None:
    decision = vote(GROUPS, rng(), "codet")
    assert decision.tie_set == [3, 4] and decision.pass_count == 3


def test_majority_takes_the_largest_group_whatever_it_passes() -> None:
    decision = vote(GROUPS, rng(), "majority")
    assert decision.tie_set == [0, 1, 2] and decision.pass_count == 1


def test_tied_groups_are_all_kept() -> None:
    # One solution passing both tests and two passing the first only score 1 x 2 = 2 x 1 under CodeT:
    # all three are tied. Majority keeps the larger group.
    matrix = [[True, True], [True, False], [True, False]]
    assert vote(matrix, rng(), "codet").tie_set == [0, 1, 2]
    assert vote(matrix, rng(), "majority").tie_set == [1, 2]


matrices = st.integers(1, 6).flatmap(
    lambda tests: st.lists(st.lists(st.booleans(), min_size=tests, max_size=tests), min_size=1, max_size=12)
)


@given(matrices, st.sampled_from(STRATEGIES))
def test_a_tie_set_is_whole_groups_and_holds_the_pick(
    matrix: list[list[bool]], strategy: SelectionStrategy
) -> None:
    decision = vote(matrix, rng(), strategy)
    assert decision.selected in decision.tie_set
    assert decision.pass_count == sum(matrix[decision.selected])
    tied = {tuple(matrix[i]) for i in decision.tie_set}
    if strategy != "paper":  # the paper's consensus also keeps whole groups, within the top count
        assert decision.tie_set == [i for i, row in enumerate(matrix) if tuple(row) in tied]


@given(matrices, st.sampled_from(STRATEGIES), st.randoms(use_true_random=False))
def test_the_tie_set_does_not_depend_on_the_order_of_solutions(
    matrix: list[list[bool]], strategy: SelectionStrategy, shuffler: random.Random
) -> None:
    order = list(range(len(matrix)))
    shuffler.shuffle(order)
    shuffled = [matrix[i] for i in order]
    tie_set = vote(matrix, rng(), strategy).tie_set
    assert sorted(order[i] for i in vote(shuffled, rng(), strategy).tie_set) == tie_set


@given(matrices)
def test_codet_is_the_paper_when_no_two_solutions_behave_alike(matrix: list[list[bool]]) -> None:
    distinct = [list(row) for row in dict.fromkeys(tuple(row) for row in matrix)]
    assert vote(distinct, rng(), "codet").tie_set == vote(distinct, rng(), "paper").tie_set


@given(matrices, st.lists(st.booleans(), min_size=12, max_size=12))
def test_every_strategys_best_of_n_is_the_mean_correctness_over_its_vote(
    matrix: list[list[bool]], correct: list[bool]
) -> None:
    truth = correct[: len(matrix)]
    scores = best_of_n_by_strategy(truth, matrix)
    for strategy in STRATEGIES:
        tie_set = vote(matrix, rng(), strategy).tie_set
        assert scores[strategy] == sum(truth[i] for i in tie_set) / len(tie_set)
