"""What every task shares: message validation and its database; per-problem tasks add stage timing
and failure handling.

Tasks are thin: they load by id, call pure logic, and store the result. The cross-cutting parts live
here once rather than in each task.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Task
from celery.exceptions import Reject
from celery.utils.log import get_task_logger
from kombu.exceptions import OperationalError as BrokerOperationalError
from pydantic import BaseModel
from sqlalchemy import delete, exists, select, update
from sqlalchemy.exc import OperationalError as DatabaseOperationalError
from sqlalchemy.orm import Session, joinedload

from orchestrator.config import Settings
from orchestrator.db import session_scope
from orchestrator.errors import InvalidMessageError, TransientBackendError
from orchestrator.evaluation import store_job_metrics
from orchestrator.messages import ProblemArguments, bind_message
from orchestrator.metrics import after_commit, observe_job_completed, observe_problem_finished, observe_stage
from orchestrator.models import (
    FINISHED_PROBLEM_STATES,
    Job,
    JobStatus,
    Problem,
    ProblemStatus,
    StageRun,
    utcnow,
)

# A database or broker that is briefly away (a restart, a failover) is waited for, not failed on.
TRANSIENT_ERRORS = (DatabaseOperationalError, BrokerOperationalError)

LLM_RETRY: dict[str, Any] = {
    "autoretry_for": (TransientBackendError, *TRANSIENT_ERRORS),
    "max_retries": 3,
    "retry_backoff": 30,
    "retry_backoff_max": 600,
    "retry_jitter": True,
}
"""Task options of the LLM samplers. The HTTP client already retries each request a few times
within seconds; a server still down after that gets minutes, as a retry of the whole task."""

logger = get_task_logger(__name__)


class CodermTask(Task):
    """Base of our tasks: a message runs only once it fits the task's `arguments_model`.

    A message that does not fit (a missing, surplus or mistyped argument, a job that breaks the
    problem schema) is rejected without requeueing: logged with its reason, dropped by the broker
    (or dead-lettered where the queue has a dead-letter exchange), never retried, and the worker
    goes on with the next one.
    """

    arguments_model: type[BaseModel]

    @property
    def database_url(self) -> str:
        return str(self.app.conf.coderm_database_url)

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.conf.coderm_settings
        return settings

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # A task may refuse its message too, for what only the database can tell (InvalidMessageError).
        try:
            return super().__call__(**bind_message(self.run, self.arguments_model, args, kwargs))
        except InvalidMessageError as exc:
            logger.error("rejected message %s[%s]: %s", self.name, self.request.id, exc)
            raise Reject(f"invalid message: {exc}", requeue=False) from exc


class ProblemTask(CodermTask):
    """Base of the tasks that take a problem id as their first argument."""

    arguments_model = ProblemArguments

    # Every such task is idempotent: safe to acknowledge late and to run again after a crash.
    acks_late = True
    reject_on_worker_lost = True
    autoretry_for = TRANSIENT_ERRORS
    retry_backoff = 2
    retry_backoff_max = 60
    retry_jitter = True
    max_retries = 20

    @contextmanager
    def stage(self, problem_id: int, stage: str, part: int = 0) -> Iterator[None]:
        """Time one step of a problem; record it as a `StageRun` and in `coderm_stage_duration_seconds`."""
        started_at, began = utcnow(), time.perf_counter()
        with session_scope(self.database_url) as session:
            session.execute(update(Problem).where(Problem.id == problem_id).values(stage=stage))
        yield
        seconds = time.perf_counter() - began
        observe_stage(stage, seconds)
        with session_scope(self.database_url) as session:
            session.execute(
                delete(StageRun).where(
                    StageRun.problem_id == problem_id, StageRun.stage == stage, StageRun.part == part
                )
            )
            session.add(
                StageRun(
                    problem_id=problem_id,
                    stage=stage,
                    part=part,
                    worker=self.request.hostname or socket.gethostname(),
                    started_at=started_at,
                    finished_at=utcnow(),
                    seconds=seconds,
                )
            )

    def continue_problem(self, problem_id: int) -> None:
        """Send whatever this step made possible (orchestrator/progress.py)."""
        from orchestrator.progress import advance, send

        with session_scope(self.database_url) as session:
            step = advance(session, self.database_url, problem_id)
            send(self.app, step.messages)
        if step.allocate_job is not None:
            self.start_allocated(step.allocate_job)

    def start_allocated(self, job_id: str) -> None:
        """Allocate a greedy or oracle job once its last problem got ready (or failed), and go on."""
        from orchestrator.allocation import allocate_job_if_ready

        with session_scope(self.database_url) as session:
            ready = allocate_job_if_ready(session, self.database_url, job_id)
        for problem_id in ready:
            self.continue_problem(problem_id)

    def on_failure(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        problem_id = args[0] if args else kwargs.get("problem_id")
        if problem_id is None:
            return
        with session_scope(self.database_url) as session:
            finish_problem(
                session, problem_id, ProblemStatus.FAILED, error=f"{self.name}: {type(exc).__name__}: {exc}"
            )
            job_id = session.scalar(select(Problem.job_id).where(Problem.id == problem_id))
        # A problem that failed while its job waited to allocate must not keep the others waiting.
        if job_id is not None:
            self.start_allocated(job_id)


def active_problem(session: Session, problem_id: int) -> Problem | None:
    """The problem with its job, in one query; None once it has finished (or been cancelled), as its
    remaining steps then do nothing."""
    return session.scalar(
        select(Problem)
        .options(joinedload(Problem.job))
        .where(Problem.id == problem_id, Problem.status.not_in(FINISHED_PROBLEM_STATES))
    )


def finish_problem(
    session: Session, problem_id: int, status: ProblemStatus, error: str | None = None
) -> None:
    """Mark a problem finished, and its job too once no problem of it is left."""
    job_id = session.scalar(select(Problem.job_id).where(Problem.id == problem_id))
    if job_id is None:
        return
    # Problems of one job finish concurrently, and the job may be cancelled meanwhile: with the job
    # row locked and the problem read afresh, the last problem sees all others and none undoes a cancel.
    session.execute(select(Job.id).where(Job.id == job_id).with_for_update())
    problem = session.get_one(Problem, problem_id, populate_existing=True)
    if problem.status in FINISHED_PROBLEM_STATES:
        return
    problem.status = status
    problem.error = error
    problem.finished_at = utcnow()
    session.flush()
    benchmark = problem.job.benchmark
    after_commit(session, lambda: observe_problem_finished(benchmark, failed=status == ProblemStatus.FAILED))
    unfinished = exists().where(
        Problem.job_id == problem.job_id, Problem.status.not_in(FINISHED_PROBLEM_STATES)
    )
    completed = session.execute(
        update(Job)
        .where(Job.id == problem.job_id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]), ~unfinished)
        .values(status=JobStatus.COMPLETED, finished_at=utcnow())
    )
    if completed.rowcount:  # type: ignore[attr-defined]
        metrics = store_job_metrics(session, problem.job_id)
        if metrics is not None:
            after_commit(session, lambda: observe_job_completed(benchmark, metrics))
