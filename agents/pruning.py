"""Early exit that cannot change the answer: stop running a solution once it cannot win the vote.

The voter (agents.selection) picks among the solutions with the most passed tests, then among
those by consensus on their pass patterns. A solution whose passes so far plus its tests still to
run fall short of the best count some solution has *already* reached cannot be among them, so its
remaining tests need not run: they are stored as `not run`. Every solution that ends in the top set
is never pruned (its final count is at least every count reached along the way), so it runs every
test; the top set, the consensus and the pick are exactly those of the full matrix.

Pure functions, so that the property tests and the replay benchmark use the same rules as the
sandbox task.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field


def can_still_win(passes: int, remaining: int, best: int) -> bool:
    """Whether a solution with `passes` so far and `remaining` tests to run may reach `best`."""
    return passes + remaining >= best


@dataclass
class BestPassCount:
    """The best pass count reached so far by any solution of a problem, shared by the threads (or,
    through the database, the workers) that run its solutions."""

    value: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def raise_to(self, passes: int) -> int:
        with self._lock:
            self.value = max(self.value, passes)
            return self.value


def failure_counts(pass_rows: Sequence[Sequence[bool | None]], tests: int) -> list[int]:
    """For each test column, how many of the rows failed it; `None` cells (not run) count as neither."""
    failures = [0] * tests
    for row in pass_rows:
        for column, passed in enumerate(row):
            if passed is False:
                failures[column] += 1
    return failures


def by_failures(columns: Sequence[int], failures: Sequence[int]) -> list[int]:
    """`columns` with the tests that failed the most rows first; ties keep the original order."""
    return sorted(columns, key=lambda column: (-failures[column], column))


def discriminating_order(pass_rows: Sequence[Sequence[bool | None]], tests: int) -> list[int]:
    """Test columns ordered so that pruning bites early: the tests that fail the most of the rows
    seen so far first (a weak solution then shows it cannot win after few runs); ties keep the
    original order. `None` cells (not run) count as neither."""
    return by_failures(range(tests), failure_counts(pass_rows, tests))


def simulate(
    pass_matrix: Sequence[Sequence[bool]], test_order: Sequence[int] | None = None
) -> list[list[bool | None]]:
    """The matrix as pruning leaves it when the solutions run one after another in row order, each
    against the tests in `test_order`: cells not run are None."""
    order = (
        list(test_order) if test_order is not None else list(range(len(pass_matrix[0]) if pass_matrix else 0))
    )
    best = 0
    pruned: list[list[bool | None]] = []
    for row in pass_matrix:
        cells: list[bool | None] = [None] * len(row)
        passes = 0
        for position, column in enumerate(order):
            cells[column] = row[column]
            passes += row[column]
            best = max(best, passes)
            if not can_still_win(passes, len(order) - position - 1, best):
                break
        pruned.append(cells)
    return pruned


def executions(matrix: Sequence[Sequence[bool | None]]) -> int:
    """Cells that ran."""
    return sum(cell is not None for row in matrix for cell in row)


def clairvoyant_executions(pass_matrix: Sequence[Sequence[bool]]) -> int:
    """The fewest cells any early exit could run, knowing the matrix: every test of a top solution,
    and for any other just enough of its failing tests to show it falls short of the best."""
    if not pass_matrix:
        return 0
    tests = len(pass_matrix[0])
    best = max(sum(row) for row in pass_matrix)
    return sum(tests if sum(row) == best else tests - best + 1 for row in pass_matrix)
