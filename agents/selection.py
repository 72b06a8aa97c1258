"""Selection, exactly as the paper does it (DESIGN §2), as pure functions.

score_i = number of (distinct, valid) unit tests solution i passes; Top = the argmax set; among Top,
keep the solutions whose pass pattern is shared by the most Top solutions (consensus); pick one of
those with a seeded draw. The final tie set is kept: the expected accuracy of the pick is the mean
correctness over it.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.outcomes import Outcome


@dataclass(frozen=True)
class Vote:
    """The voter's decision over candidate rows 0..n-1 of a pass matrix."""

    selected: int | None
    tie_set: list[int]
    top_set_size: int
    pass_count: int


def vote(pass_matrix: Sequence[Sequence[bool]], rng: random.Random) -> Vote:
    """Argmax of tests passed, consensus on identical pass patterns, then a draw from `rng`."""
    if not pass_matrix:
        return Vote(selected=None, tie_set=[], top_set_size=0, pass_count=0)
    scores = [sum(row) for row in pass_matrix]
    best = max(scores)
    top = [i for i, score in enumerate(scores) if score == best]
    pattern_counts = Counter(tuple(pass_matrix[i]) for i in top)
    consensus = max(pattern_counts.values())
    tie_set = [i for i in top if pattern_counts[tuple(pass_matrix[i])] == consensus]
    return Vote(selected=rng.choice(tie_set), tie_set=tie_set, top_set_size=len(top), pass_count=best)


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
