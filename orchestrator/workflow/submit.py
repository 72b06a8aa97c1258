"""Submitting a job: the one path the CLI, the Python client and the `submit_job` task all take.

`submit` checks what only the database can tell (a probe for greedy and threshold jobs), writes the
job and its problems in one transaction, and sends the first step of every problem's workflow.
Submitting again with a used idempotency key sends nothing: the first job stands, and a submission
that asks for something else (its problems or options differ) is told so, or refused when strict.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from celery import Celery
from sqlalchemy import select, update

from agents.scaling.probes import load_probe
from orchestrator.core.config import JobConfig
from orchestrator.core.db import session_scope
from orchestrator.core.errors import IdempotencyConflictError
from orchestrator.core.models import Job, Problem, ProblemStatus
from orchestrator.inputs.problem_files import ProblemSpec
from orchestrator.runtime.celery_app import as_current
from orchestrator.workflow.plan import start_problems


def check_probe_exists(database_url: str, config: JobConfig) -> None:
    """Refuse a greedy or threshold job when there is no probe to predict difficulty with."""
    if config.scaling.policy in ("greedy", "threshold"):
        with session_scope(database_url) as session:
            load_probe(session, config.scaling.probe)


def content_hash(problems: Sequence[ProblemSpec], config: JobConfig) -> str:
    """What a submission asks for, as a digest of its problems and options (not its file's name)."""
    asked = {
        "problems": [problem.model_dump(mode="json") for problem in problems],
        "config": config.model_dump(mode="json"),
    }
    return hashlib.sha256(json.dumps(asked, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


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
            content_hash=content_hash(problems, config),
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
    """Send the plan step of every pending problem of a job that was never sent it; returns how
    many were sent. Marked sent in the transaction that sends them, so a second call (a repeated
    submission, a redelivered `submit_job`) sends nothing, and one after a crash sends the rest."""
    with session_scope(database_url) as session:
        pending = session.execute(
            select(Problem.id, Problem.progress)
            .where(Problem.job_id == job_id, Problem.status == ProblemStatus.PENDING)
            .order_by(Problem.position)
            .with_for_update()
        ).all()
        unsent = [
            (problem_id, progress or {}) for problem_id, progress in pending if "plan" not in (progress or {})
        ]
        now = time.time()
        if unsent:
            session.execute(
                update(Problem),
                [{"id": problem_id, "progress": progress | {"plan": now}} for problem_id, progress in unsent],
            )
        # The first steps are sent by name through Celery's current app: make it `app`,
        # even where the caller's process has made a Celery app of its own since.
        with as_current(app), app.producer_or_acquire():  # one broker connection for all of them
            start_problems(app, [problem_id for problem_id, _ in unsent])
    return len(unsent)


@dataclass(frozen=True)
class Submission:
    """What submitting did."""

    job_id: str
    repeated: bool = False
    """The idempotency key named a job submitted before: that job stands, nothing was written."""
    differs: bool = False
    """That earlier job's problems or options differ from this submission's."""


def submit(
    app: Celery,
    database_url: str,
    problems: Sequence[ProblemSpec],
    config: JobConfig,
    *,
    source: str | None = None,
    idempotency_key: str | None = None,
    benchmark: str | None = None,
    strict: bool = False,
) -> Submission:
    """Write a job and start its problems' workflows.

    With an idempotency key already used, nothing is written and nothing is sent again (only a
    problem the first submission wrote but never sent, after a crash in between); with `strict`, a
    submission that differs from the first is refused (`IdempotencyConflictError`).
    """
    check_probe_exists(database_url, config)
    if idempotency_key is not None:
        with session_scope(database_url) as session:
            earlier = session.execute(
                select(Job.id, Job.content_hash).where(Job.idempotency_key == idempotency_key)
            ).one_or_none()
        if earlier is not None:
            differs = earlier.content_hash not in (None, content_hash(problems, config))
            if differs and strict:
                raise IdempotencyConflictError(
                    f"idempotency key {idempotency_key!r} names job {earlier.id}, whose problems or options "
                    "differ from this submission's"
                )
            enqueue_job(app, database_url, earlier.id)
            return Submission(earlier.id, repeated=True, differs=differs)
    job_id = create_job(
        database_url, problems, config, source=source, idempotency_key=idempotency_key, benchmark=benchmark
    )
    enqueue_job(app, database_url, job_id)
    return Submission(job_id)
