"""The sandbox Celery task: execute a chunk of a problem's matrix and write it in bulk.

Where the problem has ground truth, the chunk also judges its solutions against it: by running the
problem's own test program, or from the labels its replayed solutions came with (labels win: they
are the benchmark's verdict, e.g. HumanEval+'s `plus_status`). `judge_ground_truth` does only the
judging, earlier, for the oracle allocation, which needs true pass rates before tests are sampled.
"""

from __future__ import annotations

from collections.abc import Sequence

from celery import shared_task
from sqlalchemy import delete, insert, select, update

from agents.ground_truth import ground_truth_test, label_is_correct
from orchestrator.core.config import SandboxLimits
from orchestrator.core.models import ExecutionResult, Problem, Solution, UnitTest
from orchestrator.observability.metrics import observe_executions
from orchestrator.runtime.messages import SandboxChunkArguments
from orchestrator.workflow.problem_task import ProblemTask
from sandbox.executor import run_matrix
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


@shared_task(
    base=ProblemTask, bind=True, name="coderm.sandbox.execute_chunk", arguments_model=SandboxChunkArguments
)
def execute_chunk(self: ProblemTask, problem_id: int, part: int, solution_ids: list[int]) -> None:
    """Run the given solutions against every unit test of their problem, and its ground truth."""
    step = self.step(problem_id, "sandbox", part)
    with step.read() as loaded:
        if loaded is None:
            return
        session, problem, limits = loaded.session, loaded.problem, loaded.config.sandbox
        solutions = session.execute(
            select(Solution.id, Solution.code, Solution.index, Solution.correct)
            .where(Solution.id.in_(solution_ids))
            .order_by(Solution.index)
        ).all()
        tests = session.execute(
            select(UnitTest.code, UnitTest.valid)
            .where(UnitTest.problem_id == problem_id)
            .order_by(UnitTest.index)
        ).all()
    # Solutions the oracle allocation already judged need no second run.
    unjudged = [(sid, code, index) for sid, code, index, correct in solutions if correct is None]
    matrix = run_matrix(
        [code or "" for _, code, _, _ in solutions],
        [code or "" for code, valid in tests if valid],
        limits,
    )
    observe_executions("unit_test", (cell for row in matrix for cell in row))
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
        session.execute(delete(ExecutionResult).where(ExecutionResult.solution_id.in_(solution_ids)))
        if rows:
            session.execute(insert(ExecutionResult), rows)
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
