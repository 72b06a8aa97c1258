"""A problem's pass matrix as stored: the one load the voter and the evaluation share."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from agents.selection import distinct_test_columns, pass_matrix
from orchestrator.core.models import ExecutionResult, Solution, UnitTest


@dataclass(frozen=True)
class StoredMatrix:
    """A problem's samples in order, and the pass matrix of its valid ones over its distinct tests."""

    samples: Sequence[Any]
    """(id, valid, correct, outcomes) of every sample, by index."""
    candidates: list[int]
    """Positions in `samples` of the valid ones: the rows of `matrix`."""
    tests_stored: int
    """Unit tests stored for the problem, duplicates included."""
    tests_used: int
    """Distinct unit tests: the columns of `matrix` (a duplicate counts once)."""
    matrix: list[list[bool]]


# Built once (every vote runs them): building a statement costs SQLAlchemy more CPU than running it.
_SAMPLES = (
    select(Solution.id, Solution.valid, Solution.correct, ExecutionResult.outcomes)
    .outerjoin(ExecutionResult, ExecutionResult.solution_id == Solution.id)
    .where(Solution.problem_id == bindparam("problem_id"))
    .order_by(Solution.index)
)
_TEST_HASHES = (
    select(UnitTest.code_hash).where(UnitTest.problem_id == bindparam("problem_id")).order_by(UnitTest.index)
)


def load_pass_matrix(session: Session, problem_id: int) -> StoredMatrix:
    """Read a problem's samples, outcomes and tests in two queries and build its pass matrix."""
    samples = session.execute(_SAMPLES, {"problem_id": problem_id}).all()
    test_hashes = session.scalars(_TEST_HASHES, {"problem_id": problem_id}).all()
    candidates = [position for position, sample in enumerate(samples) if sample.valid]
    columns = distinct_test_columns(test_hashes)
    matrix = pass_matrix([samples[p].outcomes for p in candidates], columns)
    return StoredMatrix(samples, candidates, len(test_hashes), len(columns), matrix)
