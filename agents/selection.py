"""Selection, as pure functions: the paper's vote (DESIGN §2), and two others to compare it with.

paper     score_i = number of (distinct, valid) unit tests solution i passes; Top = the argmax set;
          among Top, keep the solutions whose pass pattern is shared by the most Top solutions
          (consensus).
codet     CodeT's dual execution agreement: solutions grouped by identical pass pattern; a group
          scores its size times the tests its pattern passes; the best-scoring groups win.
majority  the largest groups of identical pass patterns win, whatever they pass.

Each picks one solution of its final tie set (for the group strategies, every solution of the tied
groups) with a seeded draw. The tie set is kept: the expected accuracy of a uniform pick, the mean
correctness over it, is the problem's best-of-N.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, get_args

from sandbox.outcomes import Outcome

SelectionStrategy = Literal["paper", "codet", "majority"]
STRATEGIES: tuple[SelectionStrategy, ...] = get_args(SelectionStrategy)


@dataclass(frozen=True)
class Vote:
    """The voter's decision over candidate rows 0..n-1 of a pass matrix."""

    selected: int | None
    tie_set: list[int]
    top_set_size: int
    """paper: the argmax set before consensus; the group strategies: the tie set."""
    pass_count: int
    """Tests the selected solution passes."""


def vote(
    pass_matrix: Sequence[Sequence[bool]], rng: random.Random, strategy: SelectionStrategy = "paper"
) -> Vote:
    """The tie set of `strategy`, then a draw from `rng`."""
    if not pass_matrix:
        return Vote(selected=None, tie_set=[], top_set_size=0, pass_count=0)
    top, tie_set = tie_sets(pass_matrix, strategy)
    selected = rng.choice(tie_set)
    return Vote(
        selected=selected, tie_set=tie_set, top_set_size=len(top), pass_count=sum(pass_matrix[selected])
    )


def tie_sets(
    pass_matrix: Sequence[Sequence[bool]], strategy: SelectionStrategy
) -> tuple[list[int], list[int]]:
    """`strategy`'s candidate set before its last tie-break (paper: Top; the group strategies: the
    tie set itself) and its final tie set, over a non-empty pass matrix."""
    if strategy == "paper":
        return _paper(pass_matrix)
    tie_set = _best_groups(pass_matrix, with_passes=strategy == "codet")
    return tie_set, tie_set


def _paper(pass_matrix: Sequence[Sequence[bool]]) -> tuple[list[int], list[int]]:
    """Argmax of tests passed (Top), and those of Top whose pass pattern most of Top share."""
    scores = [sum(row) for row in pass_matrix]
    best = max(scores)
    top = [i for i, score in enumerate(scores) if score == best]
    pattern_counts = Counter(tuple(pass_matrix[i]) for i in top)
    consensus = max(pattern_counts.values())
    return top, [i for i in top if pattern_counts[tuple(pass_matrix[i])] == consensus]


def _best_groups(pass_matrix: Sequence[Sequence[bool]], with_passes: bool) -> list[int]:
    """Every solution of the groups (identical pass patterns) with the highest score: the group's
    size, times the tests its pattern passes when `with_passes` (CodeT)."""
    groups = Counter(tuple(row) for row in pass_matrix)
    scores = {pattern: size * (sum(pattern) if with_passes else 1) for pattern, size in groups.items()}
    best = max(scores.values())
    return [i for i, row in enumerate(pass_matrix) if scores[tuple(row)] == best]


def distinct_test_columns(test_hashes: Sequence[str | None]) -> list[int]:
    """Columns of the valid unit tests, each distinct test text once (duplicates count once)."""
    seen: set[str] = set()
    columns = []
    for column, test_hash in enumerate(test_hashes):
        if test_hash is not None and test_hash not in seen:
            seen.add(test_hash)
            columns.append(column)
    return columns


def pass_matrix(outcome_rows: Sequence[str | None], columns: Sequence[int]) -> list[list[bool]]:
    """Rows of pass/fail over `columns`; a solution that was never executed passes nothing."""
    return [[row is not None and row[c] == Outcome.PASS for c in columns] for row in outcome_rows]
