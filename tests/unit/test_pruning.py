"""Pruning never changes the pick or the tie set: property-based over random matrices, and on the
recorded HumanEval matrices."""

from __future__ import annotations

import json
import random
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from agents.pruning import (
    BestPassCount,
    can_still_win,
    clairvoyant_executions,
    discriminating_order,
    executions,
    simulate,
)
from agents.selection import vote

matrices = st.integers(1, 10).flatmap(
    lambda tests: st.lists(st.lists(st.booleans(), min_size=tests, max_size=tests), min_size=1, max_size=14)
)


def as_passes(matrix: list[list[bool | None]]) -> list[list[bool]]:
    """What the voter reads: a cell not run passes nothing."""
    return [[cell is True for cell in row] for row in matrix]


def same_vote(full: list[list[bool]], pruned: list[list[bool | None]], seed: int) -> None:
    expected = vote(full, random.Random(seed))
    got = vote(as_passes(pruned), random.Random(seed))
    assert (got.tie_set, got.selected, got.pass_count, got.top_set_size) == (
        expected.tie_set,
        expected.selected,
        expected.pass_count,
        expected.top_set_size,
    )


@settings(max_examples=500)
@given(matrix=matrices, seed=st.integers(0, 2**16), data=st.data())
def test_pruning_in_any_test_order_keeps_the_vote(
    matrix: list[list[bool]], seed: int, data: st.DataObject
) -> None:
    order = data.draw(st.permutations(range(len(matrix[0]))))
    pruned = simulate(matrix, order)
    same_vote(matrix, pruned, seed)
    assert clairvoyant_executions(matrix) <= executions(pruned) <= len(matrix) * len(matrix[0])
    # Every solution of the top set ran every test.
    best = max(sum(row) for row in matrix)
    assert all(None not in pruned[i] for i, row in enumerate(matrix) if sum(row) == best)


@settings(max_examples=300)
@given(matrix=matrices, seed=st.integers(0, 2**16), data=st.data())
def test_pruning_with_solutions_running_concurrently_keeps_the_vote(
    matrix: list[list[bool]], seed: int, data: st.DataObject
) -> None:
    """Several jails share the best count; their steps interleave in any order."""
    tests = len(matrix[0])
    best = BestPassCount()
    position = [0] * len(matrix)
    passes = [0] * len(matrix)
    stopped = [False] * len(matrix)
    pruned: list[list[bool | None]] = [[None] * tests for _ in matrix]
    while not all(stopped[i] or position[i] == tests for i in range(len(matrix))):
        running = [i for i in range(len(matrix)) if not stopped[i] and position[i] < tests]
        i = data.draw(st.sampled_from(running))
        cell = matrix[i][position[i]]
        pruned[i][position[i]] = cell
        passes[i] += cell
        position[i] += 1
        reached = best.raise_to(passes[i])
        stopped[i] = not can_still_win(passes[i], tests - position[i], reached)
    same_vote(matrix, pruned, seed)


def test_the_discriminating_order_puts_the_tests_that_fail_most_first() -> None:
    rows = [[True, False, True], [True, False, False], [None, False, True]]
    assert discriminating_order(rows, 3) == [1, 2, 0]


def test_on_the_recorded_humaneval_matrices_the_vote_is_the_same_for_fewer_executions() -> None:
    recording = Path(__file__).parents[1] / "data" / "verdicts_before_issue12.jsonl"
    full_cells = pruned_cells = 0
    for line in recording.read_text().splitlines():
        record = json.loads(line)
        matrix = [[cell == "P" for cell in row] for row in record["outcomes"]]
        pruned = simulate(matrix, discriminating_order(matrix, len(matrix[0])))
        same_vote(matrix, pruned, seed=0)
        full_cells += len(matrix) * len(matrix[0])
        pruned_cells += executions(pruned)
    assert pruned_cells < full_cells
