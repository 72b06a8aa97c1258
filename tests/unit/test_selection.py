"""The voter's selection rule, on hand-computed matrices."""

from __future__ import annotations

import random

from agents.selection import distinct_test_columns, pass_matrix, vote


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
