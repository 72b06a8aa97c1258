"""Submitting a job: the one path the CLI, the Python client and the `submit_job` task all take.

`submit` checks what only the database can tell (a probe for greedy and threshold jobs), writes the
job and its problems in one transaction, and sends the first step of every problem's workflow.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from celery import Celery
from sqlalchemy import select

from agents.scaling.probes import load_probe
from orchestrator.core.config import JobConfig
from orchestrator.core.db import session_scope
from orchestrator.core.models import Job, Problem, ProblemStatus
from orchestrator.inputs.problem_files import ProblemSpec
from orchestrator.runtime.celery_app import as_current
from orchestrator.workflow.plan import start_problems


def check_probe_exists(database_url: str, config: JobConfig) -> None:
    """Refuse a greedy or threshold job when there is no probe to predict difficulty with."""
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
    with session_scope(database_url) as session:
        pending = list(
            session.scalars(
                select(Problem.id)
                .where(Problem.job_id == job_id, Problem.status == ProblemStatus.PENDING)
                .order_by(Problem.position)
            )
        )
    # The first steps are sent by name through Celery's current app: make it `app`,
    # even where the caller's process has made a Celery app of its own since.
    with as_current(app), app.producer_or_acquire():  # one broker connection for all of them
        start_problems(app, pending)
    return len(pending)


def submit(
    app: Celery,
    database_url: str,
    problems: Sequence[ProblemSpec],
    config: JobConfig,
    *,
    source: str | None = None,
    idempotency_key: str | None = None,
    benchmark: str | None = None,
) -> str:
    """Write a job and start its problems' workflows; returns the job id.

    With an idempotency key already used, the earlier job's id comes back and its pending problems
    are started again (idempotent steps, so a repeated delivery costs nothing but messages).
    """
    check_probe_exists(database_url, config)
    job_id = create_job(
        database_url, problems, config, source=source, idempotency_key=idempotency_key, benchmark=benchmark
    )
    enqueue_job(app, database_url, job_id)
    return job_id
