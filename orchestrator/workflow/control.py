"""Controlling a running job: cancel it, or resume it after lost messages."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from agents.scaling.allocation import allocate_job_if_ready
from orchestrator.core.config import RESUME_GRACE_S
from orchestrator.core.db import session_scope
from orchestrator.core.models import FINISHED_PROBLEM_STATES, Job, JobStatus, Problem, ProblemStatus, utcnow
from orchestrator.reporting.reports import get_job
from orchestrator.runtime.celery_app import as_current
from orchestrator.workflow.steps import send_next, sent_recently
from orchestrator.workflow.submit import enqueue_job


@dataclass(frozen=True)
class Cancellation:
    """What cancelling a job did."""

    job_id: str
    status: str
    """The job's status afterwards: `cancelled`, or `completed` if it had finished before."""
    cancelled_problems: int
    """Problems this call marked cancelled (those already finished keep their results)."""
    revoked_tasks: int
    """Tasks of those problems that workers held (running, prefetched or scheduled) and were told to drop."""


def cancel_job(
    database_url: str, job_id: str, app: Celery | None = None, terminate: bool = False
) -> Cancellation:
    """Cancel a job: its unfinished problems and the job are marked cancelled, then the tasks that
    workers hold for those problems are revoked (with `terminate`, running ones are also stopped).

    Marking is what stops the work: every task checks that its problem is still active before it
    does anything, so messages still in the queues, which cannot be revoked without their ids,
    do nothing when they arrive. Revoking only saves the workers from finishing what they hold.
    Without `app` (the embedded mode) nothing is revoked.
    """
    with session_scope(database_url) as session:
        status, cancelled = mark_job_cancelled(session, job_id)
    revoked = revoke_problem_tasks(app, set(cancelled), terminate) if app is not None and cancelled else 0
    return Cancellation(job_id, status, len(cancelled), revoked)


def mark_job_cancelled(session: Session, job_id: str) -> tuple[str, list[int]]:
    """Mark a queued or running job and its unfinished problems cancelled; returns the job's status
    and the ids of the problems cancelled."""
    # The same lock as `finish_problem` takes: a problem finishing now is either seen finished here
    # or finds the job cancelled.
    session.execute(select(Job.id).where(Job.id == job_id).with_for_update())
    job = get_job(session, job_id)
    if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
        return job.status, []
    now = utcnow()
    cancelled = session.scalars(
        update(Problem)
        .where(Problem.job_id == job_id, Problem.status.not_in(FINISHED_PROBLEM_STATES))
        .values(status=ProblemStatus.CANCELLED, error="cancelled", finished_at=now)
        .returning(Problem.id)
    ).all()
    job.status, job.finished_at = JobStatus.CANCELLED, now
    return job.status, list(cancelled)


def revoke_problem_tasks(
    app: Celery, problem_ids: set[int], terminate: bool = False, timeout_s: float = 1.0
) -> int:
    """Revoke the tasks of these problems that any worker holds; returns how many.

    Workers are asked what they run, have prefetched and have scheduled (retries waiting for their
    countdown); each question waits `timeout_s` for the answers.
    """
    inspector = app.control.inspect(timeout=timeout_s)
    held: list[dict[str, Any]] = []
    for replies in (inspector.active(), inspector.reserved(), inspector.scheduled()):
        for requests in (replies or {}).values():
            # A scheduled entry wraps its request.
            held.extend(entry.get("request", entry) for entry in requests)
    ids = sorted({request["id"] for request in held if _problem_of(request) in problem_ids})
    if ids:
        app.control.revoke(ids, terminate=terminate)
    return len(ids)


def _problem_of(request: dict[str, Any]) -> int | None:
    """The problem a held task works on: the first argument of every per-problem task."""
    if not str(request.get("name", "")).startswith("coderm."):
        return None
    args, kwargs = request.get("args") or [], request.get("kwargs") or {}
    candidate = args[0] if args else kwargs.get("problem_id")
    return candidate if isinstance(candidate, int) and not isinstance(candidate, bool) else None


@dataclass(frozen=True)
class Resumption:
    """What resuming a job did."""

    job_id: str
    status: str
    restarted: int
    """Unfinished problems that were sent a step again."""
    messages: int
    """Steps sent (a sandbox chunk counts as one)."""
    recent: int
    """Unfinished problems left alone: what they wait for was sent within the grace period."""


def resume_job(app: Celery, database_url: str, job_id: str, grace_s: float = RESUME_GRACE_S) -> Resumption:
    """Send again what every unfinished problem of a job needs next, as the database tells it.

    For a broker that lost its queues, or messages lost any other way: each problem forgets the
    steps it sent more than `grace_s` seconds ago and goes on from what its data says is done; a
    step sent more recently is taken to be on its way (0 forgets them all). A step whose message was
    in fact still queued runs twice; steps are idempotent, so that costs work, never data.
    """
    cutoff = time.time() - grace_s
    with session_scope(database_url) as session:
        job = get_job(session, job_id)
        if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            return Resumption(job_id, job.status, 0, 0, 0)
        unfinished = list(
            session.scalars(
                select(Problem)
                .where(Problem.job_id == job_id, Problem.status.not_in(FINISHED_PROBLEM_STATES))
                .order_by(Problem.position)
            )
        )
        for problem in unfinished:
            problem.progress = sent_recently(problem.progress or {}, cutoff)
        running = [p.id for p in unfinished if p.status == ProblemStatus.RUNNING]
    sent: dict[int, int] = {}
    with as_current(app):
        for problem_id in running:
            sent[problem_id] = len(send_next(app, database_url, problem_id).messages)
        with session_scope(database_url) as session:
            allocated = allocate_job_if_ready(session, database_url, job_id)
        for problem_id in allocated:
            sent[problem_id] = sent.get(problem_id, 0) + len(
                send_next(app, database_url, problem_id).messages
            )
    planned = enqueue_job(app, database_url, job_id)  # the pending problems whose plan was not sent lately
    restarted = sum(1 for count in sent.values() if count) + planned
    return Resumption(
        job_id, JobStatus.RUNNING, restarted, sum(sent.values()) + planned, len(unfinished) - restarted
    )
