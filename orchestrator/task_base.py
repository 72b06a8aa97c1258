"""What every per-problem task shares: its database, stage timing, and failure handling.

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
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from orchestrator.config import Settings
from orchestrator.db import session_scope
from orchestrator.errors import TransientBackendError
from orchestrator.evaluation import store_job_metrics
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

LLM_RETRY: dict[str, Any] = {
    "autoretry_for": (TransientBackendError,),
    "max_retries": 3,
    "retry_backoff": 30,
    "retry_backoff_max": 600,
    "retry_jitter": True,
}
"""Task options of the LLM samplers. The HTTP client already retries each request a few times
within seconds; a server still down after that gets minutes, as a retry of the whole task."""


class ProblemTask(Task):
    """Base of the tasks that take a problem id as their first argument."""

    # Every such task is idempotent: safe to acknowledge late and to run again after a crash.
    acks_late = True
    reject_on_worker_lost = True

    @property
    def database_url(self) -> str:
        return str(self.app.conf.coderm_database_url)

    @property
    def settings(self) -> Settings:
        settings: Settings = self.app.conf.coderm_settings
        return settings

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

    def start_allocated(self, job_id: str) -> None:
        """Start the workflows of a greedy or oracle job once its last problem got ready (or failed)."""
        from orchestrator.allocation import allocate_job_if_ready
        from orchestrator.workflow import start_problem_workflows

        with session_scope(self.database_url) as session:
            ready = allocate_job_if_ready(session, self.database_url, job_id)
        if ready:
            start_problem_workflows(self.database_url, ready, with_plan=False)

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


def is_active(session: Session, problem_id: int) -> bool:
    """False once a problem has finished (or been cancelled): its remaining steps do nothing."""
    status = session.scalar(select(Problem.status).where(Problem.id == problem_id))
    return status is not None and status not in FINISHED_PROBLEM_STATES


def finish_problem(
    session: Session, problem_id: int, status: ProblemStatus, error: str | None = None
) -> None:
    """Mark a problem finished, and its job too once no problem of it is left."""
    problem = session.get(Problem, problem_id)
    if problem is None or problem.status in FINISHED_PROBLEM_STATES:
        return
    # Problems of one job finish concurrently; locking the job row makes the last one see all others.
    session.execute(select(Job.id).where(Job.id == problem.job_id).with_for_update())
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
