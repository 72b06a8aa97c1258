"""Deciding each problem's number of unit tests, with the job's scaling policy (agents/scaling/budget.py).

`fixed` and `threshold` decide one problem at a time, in its plan step. `greedy` and `oracle` need
the whole job: every problem first gets ready (its features, or for the oracle its solutions judged
against ground truth), and the step that finds all of them ready allocates the budget and starts
their workflows. That step holds the job's row lock, so exactly one of them does it, whatever the
order in which problems finish, fail or are retried.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.ground_truth import label_is_correct
from agents.scaling.budget import allocate_greedy, allocate_threshold, total_budget
from agents.scaling.features import decode
from agents.scaling.probe import TrainedProbe
from agents.scaling.probes import load_probe
from orchestrator.core.config import JobConfig
from orchestrator.core.db import session_scope
from orchestrator.core.errors import ConfigurationError
from orchestrator.core.models import FINISHED_PROBLEM_STATES, Job, Problem, Solution

JOB_LEVEL_POLICIES = ("greedy", "oracle")


@functools.lru_cache(maxsize=8)
def _probe(database_url: str, version: int | None, feature_source: str) -> TrainedProbe:
    with session_scope(database_url) as session:
        return load_probe(session, version, feature_source)[1]


def predicted_pass_rates(database_url: str, config: JobConfig, problems: Sequence[Problem]) -> list[float]:
    """The probe's lambda for each problem, from the features stored with it."""
    missing = [p.task_id for p in problems if p.features is None or p.feature_source is None]
    if missing:
        raise ConfigurationError(f"no features for {missing[:5]}: they are extracted before allocation")
    sources = {p.feature_source or "" for p in problems}
    if len(sources) != 1:
        raise ConfigurationError(f"the job's problems have features of several sources: {sorted(sources)}")
    probe = _probe(database_url, config.scaling.probe, sources.pop())
    features = np.vstack([decode(p.features or b"") for p in problems])
    return [float(rate) for rate in probe.predict(features)]


def true_pass_rate(session: Session, problem: Problem) -> float:
    """The fraction of the problem's samples that are correct (invalid ones are wrong)."""
    if problem.replay_labels is not None:
        labels = problem.replay_labels[: problem.n_solutions or len(problem.replay_labels)]
        return sum(label_is_correct(label) for label in labels) / max(len(labels), 1)
    correct = session.scalars(select(Solution.correct).where(Solution.problem_id == problem.id)).all()
    return sum(bool(c) for c in correct) / max(len(correct), 1)


def plan_tests(database_url: str, config: JobConfig, problem: Problem) -> None:
    """Set a problem's n_tests: fixed at once, threshold once its features are in; job-level
    policies leave it to `allocate_job_if_ready`."""
    scaling = config.scaling
    if problem.allocation is not None or scaling.policy in JOB_LEVEL_POLICIES:
        return
    if scaling.policy == "threshold":
        if problem.features is None:
            return  # planned again once the features are in (orchestrator/workflow/steps.py)
        rate = predicted_pass_rates(database_url, config, [problem])[0]
        problem.predicted_pass_rate = rate
        problem.n_tests = allocate_threshold(rate, scaling.tau, scaling.min_tests, scaling.max_tests)
    else:
        problem.n_tests = config.n_tests
    problem.allocation = scaling.policy


def _ready(session: Session, problem: Problem, policy: str) -> bool:
    if problem.status in FINISHED_PROBLEM_STATES:
        return True
    if policy == "greedy":
        return problem.features is not None
    if problem.replay_labels is not None:
        return True
    unjudged = session.scalar(
        select(Solution.id).where(
            Solution.problem_id == problem.id, Solution.valid, Solution.correct.is_(None)
        )
    )
    sampled = session.scalar(select(Solution.id).where(Solution.problem_id == problem.id).limit(1))
    return sampled is not None and unjudged is None


def allocate_job_if_ready(session: Session, database_url: str, job_id: str) -> list[int]:
    """Allocate a greedy or oracle job's budget once all its problems are ready.

    Returns the problems whose workflows the caller must now start (after its transaction commits):
    none while some problem is not ready, or when another step already allocated.
    """
    job = session.execute(select(Job).where(Job.id == job_id).with_for_update()).scalar_one()
    config = JobConfig.model_validate(job.config)
    policy = config.scaling.policy
    problems = list(
        session.scalars(select(Problem).where(Problem.job_id == job_id).order_by(Problem.position))
    )
    if policy not in JOB_LEVEL_POLICIES or not all(_ready(session, p, policy) for p in problems):
        return []
    live = [p for p in problems if p.status not in FINISHED_PROBLEM_STATES]
    if not live or any(p.allocation is not None for p in live):
        return []
    if policy == "greedy":
        rates = predicted_pass_rates(database_url, config, live)
    else:
        rates = [true_pass_rate(session, p) for p in live]
    average = config.scaling.budget_avg or config.n_tests
    allocation = allocate_greedy(
        rates, total_budget(len(live), average), config.scaling.min_tests, config.scaling.max_tests
    )
    for problem, rate, tests in zip(live, rates, allocation, strict=True):
        problem.predicted_pass_rate = rate
        problem.n_tests = tests
        problem.allocation = policy
    return [p.id for p in live]
