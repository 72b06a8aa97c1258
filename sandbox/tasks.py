"""The sandbox Celery task: execute a chunk of a problem's matrix and write it in bulk.

Where the problem has ground truth, the chunk also judges its solutions against it: by running the
problem's own test program, or from the labels its replayed solutions came with (labels win: they
are the benchmark's verdict, e.g. HumanEval+'s `plus_status`).
"""

from __future__ import annotations

from celery import shared_task
from sqlalchemy import delete, insert, select, update

from agents.ground_truth import ground_truth_test
from orchestrator.config import JobConfig
from orchestrator.db import session_scope
from orchestrator.metrics import observe_executions
from orchestrator.models import ExecutionResult, Problem, Solution, UnitTest
from orchestrator.task_base import ProblemTask, is_active
from sandbox.executor import run_matrix
from sandbox.outcomes import Outcome


@shared_task(base=ProblemTask, bind=True, name="coderm.sandbox.execute_chunk")
def execute_chunk(self: ProblemTask, problem_id: int, part: int, solution_ids: list[int]) -> None:
    """Run the given solutions against every unit test of their problem, and its ground truth."""
    with self.stage(problem_id, "sandbox", part):
        with session_scope(self.database_url) as session:
            if not is_active(session, problem_id):
                return
            problem = session.get(Problem, problem_id)
            assert problem is not None
            limits = JobConfig.model_validate(problem.job.config).sandbox
            ground_truth, labels = problem.ground_truth, problem.replay_labels
            solutions = session.execute(
                select(Solution.id, Solution.code, Solution.index)
                .where(Solution.id.in_(solution_ids))
                .order_by(Solution.index)
            ).all()
            tests = session.execute(
                select(UnitTest.code, UnitTest.valid)
                .where(UnitTest.problem_id == problem_id)
                .order_by(UnitTest.index)
            ).all()

        codes = [code or "" for _, code, _ in solutions]
        runnable = [code or "" for code, valid in tests if valid]
        matrix = run_matrix(codes, runnable, limits)
        observe_executions("unit_test", (cell for row in matrix for cell in row))
        rows = []
        for (solution_id, _, _), results in zip(solutions, matrix, strict=True):
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

        verdicts: list[dict[str, object]] = []
        if labels is not None:
            verdicts = [
                {
                    "id": sid,
                    "correct": index < len(labels) and bool(labels[index]),
                    "ground_truth_outcome": None,
                }
                for sid, _, index in solutions
            ]
        elif ground_truth:
            judged = run_matrix(
                codes,
                [ground_truth_test(ground_truth)],
                limits.model_copy(update={"time_limit_s": limits.ground_truth_time_limit_s}),
            )
            observe_executions("ground_truth", (row[0] for row in judged))
            verdicts = [
                {"id": sid, "correct": row[0].passed, "ground_truth_outcome": row[0].outcome.value}
                for (sid, _, _), row in zip(solutions, judged, strict=True)
            ]

        with session_scope(self.database_url) as session:
            # A redelivered chunk replaces what an interrupted run of it may have written.
            session.execute(delete(ExecutionResult).where(ExecutionResult.solution_id.in_(solution_ids)))
            if rows:
                session.execute(insert(ExecutionResult), rows)
            if verdicts:
                session.execute(update(Solution), verdicts)
