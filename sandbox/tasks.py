"""The sandbox Celery task: execute a chunk of a problem's matrix and write it in bulk.

Where the problem has ground truth, the chunk also judges its solutions against it: by running the
problem's own test program, or from the labels its replayed solutions came with (labels win: they
are the benchmark's verdict, e.g. HumanEval+'s `plus_status`). `judge_ground_truth` does only the
judging, earlier, for the oracle allocation, which needs true pass rates before tests are sampled.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from celery import shared_task
from sqlalchemy import Select, bindparam, case, or_, select, update
from sqlalchemy.orm import Session

from agents.ground_truth import ground_truth_test, label_is_correct
from agents.selection import distinct_test_columns
from orchestrator.core.config import SandboxLimits
from orchestrator.core.db import upsert
from orchestrator.core.models import ExecutionResult, Problem, Solution, UnitTest
from orchestrator.observability.metrics import observe_executions
from orchestrator.runtime.messages import SandboxChunkArguments
from orchestrator.workflow.problem_task import ProblemTask
from sandbox.early_exit import known_from, run_with_early_exit
from sandbox.executor import run_matrix, shared_pool
from sandbox.outcomes import Outcome


def judge_solutions(
    problem: Problem, solutions: Sequence[tuple[int, str | None, int]], limits: SandboxLimits
) -> list[dict[str, object]]:
    """Correctness of (id, code, index) solutions, as rows to update: from labels, or by running."""
    labels, ground_truth = problem.replay_labels, problem.ground_truth
    if labels is not None:
        return [
            {
                "id": sid,
                "correct": index < len(labels) and label_is_correct(labels[index]),
                "ground_truth_outcome": None,
            }
            for sid, _, index in solutions
        ]
    if not ground_truth or not solutions:
        return []
    judged = run_matrix(
        [code or "" for _, code, _ in solutions],
        [ground_truth_test(ground_truth)],
        limits.model_copy(update={"time_limit_s": limits.ground_truth_time_limit_s}),
    )
    observe_executions("ground_truth", (row[0] for row in judged))
    return [
        {"id": sid, "correct": row[0].passed, "ground_truth_outcome": row[0].outcome.value}
        for (sid, _, _), row in zip(solutions, judged, strict=True)
    ]


@dataclass(frozen=True)
class ChunkRows:
    """What a chunk reads of its problem's solutions, in one query."""

    solutions: list[tuple[int, str | None, int, bool | None]]
    """(id, code, index, correct) of the chunk's solutions, by index."""
    stored: int
    """How many of them have their row of the matrix already (a chunk delivered again)."""
    others: list[str]
    """The stored rows (outcome letters) of the problem's other solutions: chunks that finished
    before this one. A stored row is final (a pruned job's chunk never replaces what it committed,
    see `execute_chunk`), so any count in it is one the vote will see: a safe bound to prune by."""


def chunk_rows(session: Session, problem_id: int, solution_ids: list[int], prune: bool) -> ChunkRows:
    """The chunk's solutions and, where the job prunes, what the stored rows say."""
    rows = session.execute(
        _chunk_rows_statement(prune), {"problem_id": problem_id, "solution_ids": solution_ids}
    ).all()
    chunk = set(solution_ids)
    mine = [row for row in rows if row[0] in chunk]
    return ChunkRows(
        [(sid, code, index, correct) for sid, code, index, correct, _ in mine],
        sum(1 for row in mine if row.outcomes is not None),
        [row.outcomes for row in rows if row[0] not in chunk],
    )


@functools.cache
def _chunk_rows_statement(prune: bool) -> Select[Any]:
    # Built once: building a statement costs SQLAlchemy more CPU than running it, and every chunk
    # runs this.
    in_chunk = Solution.id.in_(bindparam("solution_ids", expanding=True))
    return (
        select(
            Solution.id,
            case((in_chunk, Solution.code)),
            Solution.index,
            Solution.correct,
            ExecutionResult.outcomes,
        )
        .outerjoin(ExecutionResult, ExecutionResult.solution_id == Solution.id)
        .where(
            Solution.problem_id == bindparam("problem_id"),
            or_(in_chunk, ExecutionResult.id.is_not(None)) if prune else in_chunk,
        )
        .order_by(Solution.index)
    )


_UNIT_TESTS = (
    select(UnitTest.code, UnitTest.valid)
    .where(UnitTest.problem_id == bindparam("problem_id"))
    .order_by(UnitTest.index)
)


@shared_task(
    base=ProblemTask, bind=True, name="coderm.sandbox.execute_chunk", arguments_model=SandboxChunkArguments
)
def execute_chunk(self: ProblemTask, problem_id: int, part: int, solution_ids: list[int]) -> None:
    """Run the given solutions against every unit test of their problem, and its ground truth.

    Where the job prunes the problem (`JobConfig.prunes`), pairs that cannot change the vote are not
    run (`sandbox.early_exit`), starting from what the problem's finished chunks found; and a chunk
    delivered again after it committed keeps its rows, so that no count another chunk pruned
    against can change.
    """
    step = self.step(problem_id, "sandbox", part)
    with step.read() as loaded:
        if loaded is None:
            return
        session, problem, limits = loaded.session, loaded.problem, loaded.config.sandbox
        prune = loaded.config.prunes(problem.has_ground_truth)
        chunk = chunk_rows(session, problem_id, solution_ids, prune)
        solutions = chunk.solutions
        tests = session.execute(_UNIT_TESTS, {"problem_id": problem_id}).all()
        # The distinct valid tests, which the voter counts (and the sandbox runs once each).
        columns = distinct_test_columns([code or "" if valid else None for code, valid in tests])
    if prune and solutions and chunk.stored == len(solutions):
        with step.write():  # committed before: kept as it is, and the workflow goes on
            pass
        return
    # Solutions the oracle allocation already judged need no second run.
    unjudged = [(sid, code, index) for sid, code, index, correct in solutions if correct is None]
    codes = [code or "" for _, code, _, _ in solutions]
    valid_tests = [code or "" for code, valid in tests if valid]
    if prune:
        others = known_from(chunk.others, columns)
        matrix = run_with_early_exit(shared_pool(), codes, valid_tests, limits, others.best, others.rows)
    else:
        matrix = run_matrix(codes, valid_tests, limits)
    observe_executions(
        "unit_test", (cell for row in matrix for cell in row if cell.outcome is not Outcome.NOT_RUN)
    )
    rows = []
    for (solution_id, _, _, _), results in zip(solutions, matrix, strict=True):
        by_test = iter(results)
        # Invalid tests keep their column, so a row always has one letter per unit test.
        cells = [next(by_test) if valid else None for _, valid in tests]
        rows.append(
            {
                "problem_id": problem_id,
                "solution_id": solution_id,
                "outcomes": "".join(Outcome.INVALID if c is None else c.outcome for c in cells),
                "durations_ms": [0 if c is None else c.duration_ms for c in cells],
                "passed": sum(1 for c in cells if c is not None and c.passed),
            }
        )
    verdicts = judge_solutions(problem, unjudged, limits)
    with step.write() as session:  # the last chunk to finish sends the vote
        # A redelivered chunk replaces what an interrupted run of it may have written.
        if rows:
            replaced = ["problem_id", "outcomes", "durations_ms", "passed"]
            session.execute(upsert(session, ExecutionResult, ["solution_id"], replaced), rows)
        if verdicts:
            session.execute(update(Solution), verdicts)


@shared_task(base=ProblemTask, bind=True, name="coderm.sandbox.judge_ground_truth")
def judge_ground_truth(self: ProblemTask, problem_id: int) -> None:
    """Judge every valid solution against ground truth (before its tests: the oracle allocation)."""
    step = self.step(problem_id, "ground_truth")
    with step.read() as loaded:
        if loaded is None:
            return
        problem, limits = loaded.problem, loaded.config.sandbox
        unjudged = loaded.session.execute(
            select(Solution.id, Solution.code, Solution.index)
            .where(Solution.problem_id == problem_id, Solution.valid, Solution.correct.is_(None))
            .order_by(Solution.index)
        ).all()
    verdicts = judge_solutions(problem, [(sid, code, index) for sid, code, index in unjudged], limits)
    with step.write() as session:  # judged: the oracle may allocate now
        if verdicts:
            session.execute(update(Solution), verdicts)
