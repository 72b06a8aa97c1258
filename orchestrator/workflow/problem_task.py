"""The base of the per-problem tasks, and the shape of every step they run.

A step whose work takes long is two transactions around that work:

    step = self.step(problem_id, "policy")
    with step.read() as loaded:          # the problem, its job and config, loaded once
        if loaded is None:               # the problem has finished (or was cancelled): nothing to do
            return
        ...                              # read what the work needs
    ...                                  # the work (sampling, running code): no transaction open
    with step.write() as session:        # store the work; the stage run and the workflow's next
        ...                              # steps (steps.advance) commit in this same transaction

A step whose work is the database's alone (plan, vote) is one transaction: `with step.run() as
loaded:` reads, lets the block work, and records and continues as `write` does.

Tasks stay thin: they load by id, call pure logic, and store the result. What every step shares
(timing, continuing the workflow, failing the problem when a step gives up) lives here once.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, joinedload

from agents.scaling.allocation import allocate_job_if_ready
from orchestrator.core.config import JobConfig
from orchestrator.core.db import session_scope
from orchestrator.core.models import FINISHED_PROBLEM_STATES, Problem, ProblemStatus, StageRun, utcnow
from orchestrator.observability.metrics import observe_stage
from orchestrator.runtime.messages import ProblemArguments
from orchestrator.runtime.task_base import TRANSIENT_ERRORS, CodermTask
from orchestrator.workflow.finish import finish_problem
from orchestrator.workflow.steps import Advance, advance, send, send_next


@dataclass(frozen=True)
class Loaded:
    """What a step reads first: its problem (with its job) and the job's configuration."""

    session: Session
    problem: Problem
    config: JobConfig


class Step:
    """One run of one step of a problem, timed from its creation to its commit."""

    def __init__(self, task: ProblemTask, problem_id: int, stage: str, part: int) -> None:
        self.task, self.problem_id, self.stage, self.part = task, problem_id, stage, part
        self.started_at, self.began = utcnow(), time.perf_counter()
        self.config: JobConfig | None = None
        self.seconds = 0.0

    @contextmanager
    def read(self) -> Iterator[Loaded | None]:
        """The step's reading transaction: the problem marked at this stage, and loaded with its
        job and config; None once the problem has finished."""
        with session_scope(self.task.database_url) as session:
            yield self._load(session)

    @contextmanager
    def write(self) -> Iterator[Session]:
        """The step's writing transaction: what the block writes, the step's `StageRun`, and the
        next steps of the workflow, committed together; the next steps are sent before the commit
        (a lost commit reruns this step, which sends them again: every step is idempotent)."""
        with session_scope(self.task.database_url) as session:
            # The problem's row first: every row written below that references it takes a key-share
            # lock on it, and two steps of one problem (its chunks) that took those before `advance`
            # asks for the row to update would wait on each other. Locked first, they queue.
            session.execute(select(Problem.id).where(Problem.id == self.problem_id).with_for_update())
            yield session
            advanced = self._continue(session)
        self._after_commit(advanced)

    @contextmanager
    def run(self) -> Iterator[Loaded | None]:
        """`read` and `write` in one transaction, for a step with no work outside the database."""
        with session_scope(self.task.database_url) as session:
            loaded = self._load(session)
            yield loaded
            if loaded is None:
                return
            advanced = self._continue(session)
        self._after_commit(advanced)

    def _load(self, session: Session) -> Loaded | None:
        problem = active_problem(session, self.problem_id)
        if problem is None:
            return None
        problem.stage = self.stage
        self.config = JobConfig.model_validate(problem.job.config)
        return Loaded(session, problem, self.config)

    def _continue(self, session: Session) -> Advance:
        self.seconds = time.perf_counter() - self.began
        _record_stage_run(session, self, self.task.request.hostname or socket.gethostname())
        advanced = advance(session, self.task.database_url, self.problem_id, self.config)
        send(self.task.app, advanced.messages)
        return advanced

    def _after_commit(self, advanced: Advance) -> None:
        observe_stage(self.stage, self.seconds)
        self.task.allocate_after(advanced)


def _record_stage_run(session: Session, step: Step, worker: str) -> None:
    # One statement; a rerun of the step (a redelivery) replaces the record of the run it repeats.
    run = {"worker": worker, "started_at": step.started_at, "finished_at": utcnow(), "seconds": step.seconds}
    key = {"problem_id": step.problem_id, "stage": step.stage, "part": step.part}
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(
        insert(StageRun).values(**key, **run).on_conflict_do_update(index_elements=list(key), set_=run)
    )


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

    def step(self, problem_id: int, stage: str, part: int = 0) -> Step:
        """Begin a step of `problem_id` (`part` tells the sandbox chunks apart)."""
        return Step(self, problem_id, stage, part)

    def continue_problem(self, problem_id: int) -> None:
        """Send whatever the database says a problem can do next, for a problem that an allocation
        moved on rather than a step of its own."""
        self.allocate_after(send_next(self.app, self.database_url, problem_id))

    def allocate_after(self, advanced: Advance) -> None:
        if advanced.allocate_job is not None:
            self.start_allocated(advanced.allocate_job)

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
