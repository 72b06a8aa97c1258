"""The sandbox Celery task: execute a chunk of a problem's matrix and write it in bulk."""

from __future__ import annotations

from celery import shared_task
from sqlalchemy import delete, insert, select

from orchestrator.config import JobConfig
from orchestrator.db import session_scope
from orchestrator.models import ExecutionResult, Problem, Solution, UnitTest
from orchestrator.task_base import ProblemTask, is_active
from sandbox.executor import run_matrix
from sandbox.outcomes import Outcome


@shared_task(base=ProblemTask, bind=True, name="coderm.sandbox.execute_chunk")
def execute_chunk(self: ProblemTask, problem_id: int, part: int, solution_ids: list[int]) -> None:
    """Run the given solutions against every unit test of their problem."""
    with self.stage(problem_id, "sandbox", part):
        with session_scope(self.database_url) as session:
            if not is_active(session, problem_id):
                return
            problem = session.get(Problem, problem_id)
            assert problem is not None
            limits = JobConfig.model_validate(problem.job.config).sandbox
            solutions = session.execute(
                select(Solution.id, Solution.code)
                .where(Solution.id.in_(solution_ids))
                .order_by(Solution.index)
            ).all()
            tests = session.execute(
                select(UnitTest.code, UnitTest.valid)
                .where(UnitTest.problem_id == problem_id)
                .order_by(UnitTest.index)
            ).all()

        runnable = [code or "" for code, valid in tests if valid]
        matrix = run_matrix([code or "" for _, code in solutions], runnable, limits)
        rows = []
        for (solution_id, _), results in zip(solutions, matrix, strict=True):
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
        with session_scope(self.database_url) as session:
            # A redelivered chunk replaces what an interrupted run of it may have written.
            session.execute(delete(ExecutionResult).where(ExecutionResult.solution_id.in_(solution_ids)))
            if rows:
                session.execute(insert(ExecutionResult), rows)
