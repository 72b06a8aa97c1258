"""The base of the per-problem tasks: it times each step, continues the workflow after it, and
fails the problem when a step gives up.

Tasks are thin: they load by id, call pure logic, and store the result. What every step shares
lives here once rather than in each task.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session, joinedload

from agents.scaling.allocation import allocate_job_if_ready
from orchestrator.core.db import session_scope
from orchestrator.core.models import FINISHED_PROBLEM_STATES, Problem, ProblemStatus, StageRun, utcnow
from orchestrator.observability.metrics import observe_stage
from orchestrator.runtime.messages import ProblemArguments
from orchestrator.runtime.task_base import TRANSIENT_ERRORS, CodermTask
from orchestrator.workflow.finish import finish_problem
from orchestrator.workflow.steps import advance, send


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
        """Send whatever this step made possible (orchestrator/workflow/steps.py)."""

        with session_scope(self.database_url) as session:
            step = advance(session, self.database_url, problem_id)
            send(self.app, step.messages)
        if step.allocate_job is not None:
            self.start_allocated(step.allocate_job)

    def start_allocated(self, job_id: str) -> None:
        """Allocate a greedy or oracle job once its last problem got ready (or failed), and go on."""

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
