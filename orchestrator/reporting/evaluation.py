"""Scoring jobs against ground truth: what the voter stores per problem, what a job adds up to.

The arithmetic is in `agents.scoring` (pure functions); this module moves data between it and
the database.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.orm import Session

from agents.ground_truth import label_is_correct
from agents.scoring import (
    Confusion,
    JobMetrics,
    ProblemScore,
    ScoredProblem,
    job_metrics,
    score_problem,
)
from orchestrator.core.config import JobConfig
from orchestrator.core.db import upsert
from orchestrator.core.models import Job, Problem, ProblemMetrics, Solution, UnitTest, utcnow
from orchestrator.reporting.pass_matrix import load_pass_matrix


def store_problem_score(
    session: Session,
    problem: Problem,
    samples: Sequence[Any],
    candidates: Sequence[int],
    matrix: Sequence[Sequence[bool]],
    tie_set: Sequence[int],
) -> ProblemScore:
    """Score a voted problem and store it; invalid samples get their correctness (false, or a label)."""
    labels = problem.replay_labels
    correct, judged = [], []
    for position, sample in enumerate(samples):
        if sample.correct is not None:
            correct.append(bool(sample.correct))
        else:
            value = labels is not None and position < len(labels) and label_is_correct(labels[position])
            correct.append(value)
            judged.append({"id": sample.id, "correct": value})
    if judged:
        session.execute(update(Solution), judged)
    score = score_problem(correct, candidates, matrix, tie_set)
    metrics = {
        "problem_id": problem.id,
        "samples": score.samples,
        "correct_samples": score.correct_samples,
        "vanilla": score.vanilla,
        "vanilla_valid": score.vanilla_valid,
        "best_of_n": score.best_of_n,
        "oracle": score.oracle,
        "individual": vars(score.individual),
        "combined": vars(score.combined),
        "created_at": utcnow(),
    }
    # A rerun of the vote (a redelivery) replaces the score it stored before.
    replaced = [column for column in metrics if column != "problem_id"]
    session.execute(upsert(session, ProblemMetrics, ["problem_id"], replaced), metrics)
    return score


def stored_scores(session: Session, job_id: str) -> list[tuple[str, ProblemScore]]:
    """The scores the voter stored for a job's problems, by task id, in file order."""
    rows = session.execute(
        select(Problem.task_id, ProblemMetrics)
        .join(ProblemMetrics, ProblemMetrics.problem_id == Problem.id)
        .where(Problem.job_id == job_id)
        .order_by(Problem.position)
    ).all()
    return [
        (
            task_id,
            ProblemScore(
                samples=m.samples,
                correct_samples=m.correct_samples,
                vanilla=m.vanilla,
                vanilla_valid=m.vanilla if m.vanilla_valid is None else m.vanilla_valid,
                best_of_n=m.best_of_n,
                oracle=m.oracle,
                individual=Confusion(**m.individual),
                combined=Confusion(**m.combined),
            ),
        )
        for task_id, m in rows
    ]


def stored_job_metrics(session: Session, job_id: str) -> JobMetrics | None:
    scores = [score for _, score in stored_scores(session, job_id)]
    return job_metrics(scores) if scores else None


def store_job_metrics(session: Session, job_id: str) -> JobMetrics | None:
    """Write a finished job's metrics on its row, and return them (None when nothing could be scored)."""
    metrics = stored_job_metrics(session, job_id)
    session.execute(
        update(Job).where(Job.id == job_id).values(metrics=metrics.to_json() if metrics else None)
    )
    return metrics


@dataclass(frozen=True)
class TestBudget:
    """How many unit tests a job sampled, against what fixed --n-tests would have sampled."""

    __test__ = False

    problems: int
    sampled: int
    fixed: int
    completion_tokens: int
    without_methods: int  # valid tests whose class defines no test method (they pass every solution)

    @property
    def saved_tokens(self) -> int:
        """Tokens not spent, at the job's own tokens per test, compared with the fixed allocation."""
        per_test = self.completion_tokens / self.sampled if self.sampled else 0.0
        return round((self.fixed - self.sampled) * per_test)


def test_budget(session: Session, job_id: str) -> TestBudget:
    job = session.get_one(Job, job_id)
    fixed = JobConfig.model_validate(job.config).n_tests
    sampled, tokens, without_methods = session.execute(
        select(
            func.count(UnitTest.id),
            func.coalesce(func.sum(UnitTest.completion_tokens), 0),
            func.coalesce(func.sum(case((UnitTest.valid & (UnitTest.test_methods == 0), 1), else_=0)), 0),
        )
        .join(Problem)
        .where(Problem.job_id == job_id)
    ).one()
    return TestBudget(
        job.n_problems, int(sampled or 0), job.n_problems * fixed, int(tokens or 0), int(without_methods or 0)
    )


def scored_problems(session: Session, job_id: str) -> list[ScoredProblem]:
    """Everything re-scoring needs, for the problems of a job that have ground truth.

    A problem's test slots are the unit tests it asked for (its allocation, else the job's
    --n-tests), or the tests stored when there are more: a replayed release may hold fewer
    distinct tests than the slots the reference draws from.
    """
    job_tests = JobConfig.model_validate(session.get_one(Job, job_id).config).n_tests
    scored = []
    problems = session.execute(
        select(Problem.id, Problem.task_id, Problem.n_tests)
        .join(ProblemMetrics, ProblemMetrics.problem_id == Problem.id)
        .where(Problem.job_id == job_id)
        .order_by(Problem.position)
    ).all()
    for problem_id, task_id, asked in problems:
        stored = load_pass_matrix(session, problem_id)
        scored.append(
            ScoredProblem(
                task_id=task_id,
                sample_correct=[bool(sample.correct) for sample in stored.samples],
                candidates=stored.candidates,
                pass_matrix=stored.matrix,
                slots=max(asked or job_tests, stored.tests_stored),
            )
        )
    return scored
