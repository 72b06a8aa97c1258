"""A job's life: one transaction that writes the job and its problems, one workflow per problem,
and cancellation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from celery import Celery
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from orchestrator.celery_app import as_current
from orchestrator.config import JobConfig
from orchestrator.db import session_scope
from orchestrator.errors import ProblemFileError
from orchestrator.models import FINISHED_PROBLEM_STATES, Job, JobStatus, Problem, ProblemStatus, utcnow
from orchestrator.problem_files import ProblemFile, ProblemSpec
from orchestrator.reports import get_job


def config_gaps(problems: Sequence[ProblemSpec], config: JobConfig) -> Iterator[tuple[int, str]]:
    """Problems that `config` cannot run: (position, what they lack) for each.

    A replay backend needs the problem's samples; the oracle allocation needs true pass rates.
    """
    for agent, field, option in (
        (config.policy, "solutions", "policy"),
        (config.coderm, "unit_tests", "coderm"),
    ):
        if agent.backend != "replay":
            continue
        for position, spec in enumerate(problems):
            if getattr(spec, field) is None:
                yield (
                    position,
                    f"the {option} agent uses the replay backend, but task {spec.task_id!r} has no '{field}'",
                )
    if config.scaling.policy == "oracle":
        for position, spec in enumerate(problems):
            if spec.ground_truth is None and spec.solution_labels is None:
                yield (
                    position,
                    f"the oracle allocation needs true pass rates, but task {spec.task_id!r} has no ground "
                    "truth (HumanEval tests, 'ground_truth', or labelled solutions)",
                )


def check_probe_exists(database_url: str, config: JobConfig) -> None:
    """Refuse a greedy or threshold job when there is no probe to predict difficulty with."""
    from orchestrator.probes import load_probe

    if config.scaling.policy in ("greedy", "threshold"):
        with session_scope(database_url) as session:
            load_probe(session, config.scaling.probe)


def check_problems_fit_config(problem_file: ProblemFile, config: JobConfig) -> None:
    """Refuse, before anything is written, a job whose problems its config cannot run."""
    for position, reason in config_gaps(problem_file.problems, config):
        raise ProblemFileError(str(problem_file.path), problem_file.lines[position], reason)


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
    from orchestrator.workflow import start_problems

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
    """Unfinished problems whose next steps were sent again."""


def resume_job(app: Celery, database_url: str, job_id: str) -> Resumption:
    """Send again what every unfinished problem of a job needs next, as the database tells it.

    For a broker that lost its queues, or messages lost any other way: each problem forgets which
    steps it had sent and goes on from what its data says is done. Steps whose messages were in
    fact still queued run twice; they are idempotent, so that costs work, never data.
    """
    from orchestrator.allocation import allocate_job_if_ready
    from orchestrator.progress import NO_TESTS, advance, send
    from orchestrator.workflow import start_problems

    with session_scope(database_url) as session:
        job = get_job(session, job_id)
        if job.status not in (JobStatus.QUEUED, JobStatus.RUNNING):
            return Resumption(job_id, job.status, 0)
        unfinished = list(
            session.scalars(
                select(Problem)
                .where(Problem.job_id == job_id, Problem.status.not_in(FINISHED_PROBLEM_STATES))
                .order_by(Problem.position)
            )
        )
        for problem in unfinished:
            problem.progress = {k: v for k, v in (problem.progress or {}).items() if k == NO_TESTS}
        pending = [p.id for p in unfinished if p.status == ProblemStatus.PENDING]
        running = [p.id for p in unfinished if p.status == ProblemStatus.RUNNING]
    with as_current(app):
        start_problems(app, pending)
        for problem_id in running:
            with session_scope(database_url) as session:
                send(app, advance(session, database_url, problem_id).messages)
        with session_scope(database_url) as session:
            allocated = allocate_job_if_ready(session, database_url, job_id)
        for problem_id in allocated:
            with session_scope(database_url) as session:
                send(app, advance(session, database_url, problem_id).messages)
    return Resumption(job_id, JobStatus.RUNNING, len(unfinished))
