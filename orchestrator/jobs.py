"""Submitting a job: one transaction that writes the job and its problems, then one workflow each."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from celery import Celery
from sqlalchemy import select

from orchestrator.config import JobConfig
from orchestrator.db import session_scope
from orchestrator.errors import ProblemFileError
from orchestrator.models import Job, Problem, ProblemStatus
from orchestrator.problem_files import ProblemFile, ProblemSpec


def check_problems_fit_config(problem_file: ProblemFile, config: JobConfig) -> None:
    """Refuse, before anything is written, a replay job whose problems carry no samples to replay."""
    for agent, field, option in (
        (config.policy, "solutions", "policy"),
        (config.coderm, "unit_tests", "coderm"),
    ):
        if agent.backend != "replay":
            continue
        for spec, line in zip(problem_file.problems, problem_file.lines, strict=True):
            if getattr(spec, field) is None:
                raise ProblemFileError(
                    str(problem_file.path),
                    line,
                    f"the {option} agent uses the replay backend, but task {spec.task_id!r} has no '{field}'",
                )
    if config.scaling.policy == "oracle":
        for spec, line in zip(problem_file.problems, problem_file.lines, strict=True):
            if spec.ground_truth is None and spec.solution_labels is None:
                raise ProblemFileError(
                    str(problem_file.path),
                    line,
                    f"the oracle allocation needs true pass rates, but task {spec.task_id!r} has no ground "
                    "truth (HumanEval tests, 'ground_truth', or labelled solutions)",
                )


def check_probe_exists(database_url: str, config: JobConfig) -> None:
    """Refuse a greedy or threshold job when there is no probe to predict difficulty with."""
    from orchestrator.probes import load_probe

    if config.scaling.policy in ("greedy", "threshold"):
        with session_scope(database_url) as session:
            load_probe(session, config.scaling.probe)


def create_job(
    database_url: str,
    problems: Sequence[ProblemSpec],
    config: JobConfig,
    source: str | None = None,
    idempotency_key: str | None = None,
    benchmark: str | None = None,
) -> str:
    """Write a job and its problems in one transaction; return the job id.

    With an idempotency key already used, nothing is written and the earlier job's id is returned.
    """
    with session_scope(database_url) as session:
        if idempotency_key is not None:
            existing = session.scalar(select(Job.id).where(Job.idempotency_key == idempotency_key))
            if existing is not None:
                return existing
        job = Job(
            id=uuid.uuid4().hex,
            source=source,
            config=config.model_dump(mode="json"),
            idempotency_key=idempotency_key,
            n_problems=len(problems),
            benchmark=benchmark,
        )
        session.add(job)
        session.add_all(
            Problem(
                job_id=job.id,
                position=position,
                task_id=spec.task_id,
                question=spec.question,
                policy_prompt=spec.policy_prompt,
                coderm_prompt=spec.coderm_prompt,
                reference_code=spec.reference_code,
                entry_point=spec.entry_point,
                ground_truth=spec.ground_truth,
                replay_solutions=spec.solutions,
                replay_unit_tests=spec.unit_tests,
                replay_labels=spec.solution_labels,
            )
            for position, spec in enumerate(problems)
        )
        return job.id


def enqueue_job(app: Celery, database_url: str, job_id: str) -> int:
    """Start the workflow of every pending problem of a job; returns how many were started."""
    from orchestrator.workflow import start_problem_workflows

    with session_scope(database_url) as session:
        pending = list(
            session.scalars(
                select(Problem.id)
                .where(Problem.job_id == job_id, Problem.status == ProblemStatus.PENDING)
                .order_by(Problem.position)
            )
        )
    with app.producer_or_acquire():  # one broker connection for all of them
        start_problem_workflows(database_url, pending)
    return len(pending)
