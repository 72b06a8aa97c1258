"""The base of the per-problem tasks, and the shape of every step they run.

A step whose work takes long reads, works with no transaction open, and writes in one transaction:

    step = self.step(problem_id, "policy")
    with step.read() as loaded:          # the problem marked at this stage and loaded, its job's
        if loaded is None:               # config and benchmark (cached); None once the problem has
            return                       # finished (or was cancelled): nothing to do
        ...                              # read what the work needs (no transaction: reads only)
    ...                                  # the work (sampling, running code): no transaction open
    with step.write() as session:        # store the work; the stage run and the workflow's next
        ...                              # steps (steps.advance) commit in this same transaction

A step whose work is the database's alone (plan, vote) is one transaction: `with step.run() as
loaded:` reads, lets the block work, and records and continues as `write` does; `run_all` does so
for several problems at once (the plan of a batch: `self.steps(problem_ids, "plan")`).

Round trips are what a step costs (every problem takes five steps): `read` is one statement, and
`write` locks and reads the problem once, flushes its changes once (no autoflush: the block flushes
what later queries must see), and hands the locked row to `advance`.

Tasks stay thin: they load by id, call pure logic, and store the result. What every step shares
(timing, continuing the workflow, failing the problem when a step gives up) lives here once.
"""

from __future__ import annotations

import functools
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import chain
from typing import Any

from sqlalchemy import Integer, Update, bindparam, exists, inspect, literal, select, update
from sqlalchemy.orm import Session

from agents.scaling.allocation import allocate_job_if_ready
from orchestrator.core.config import JobConfig
from orchestrator.core.db import read_scope, session_scope, upsert
from orchestrator.core.models import (
    FINISHED_PROBLEM_STATES,
    Problem,
    ProblemStatus,
    Solution,
    StageRun,
    UnitTest,
    utcnow,
)
from orchestrator.observability.metrics import observe_stage
from orchestrator.runtime.messages import ProblemArguments
from orchestrator.runtime.task_base import TRANSIENT_ERRORS, CodermTask
from orchestrator.workflow.finish import finish_problem, lock_job
from orchestrator.workflow.job_info import job_info
from orchestrator.workflow.steps import Advance, advance, lock_problem, lock_problems, send, send_next


@dataclass(frozen=True)
class Loaded:
    """What a step reads first: its problem, and its job's configuration and benchmark."""

    session: Session
    problem: Problem
    config: JobConfig
    benchmark: str | None
    sampled: bool = False
    """Whether the problem has rows of the model `read` was asked about (a sampler's redelivery)."""


class Step:
    """One run of one step of a problem, or of several at once (the plan takes a batch), timed from
    its creation to its commit."""

    def __init__(self, task: ProblemTask, problem_ids: list[int], stage: str, part: int) -> None:
        self.task, self.problem_ids, self.stage, self.part = task, problem_ids, stage, part
        self.started_at, self.began = utcnow(), time.perf_counter()
        self.configs: dict[int, JobConfig] = {}
        self.seconds = 0.0

    @property
    def problem_id(self) -> int:
        """The problem of a step of one (`read` and `write` take one)."""
        (problem_id,) = self.problem_ids
        return problem_id

    @contextmanager
    def read(self, samples: type[Solution] | type[UnitTest] | None = None) -> Iterator[Loaded | None]:
        """The step's reading: the problem marked at this stage and loaded, in one statement (which
        also tells whether it has `samples` already); None once the problem has finished. No
        transaction: the block reads, each query on its own.

        The mark is also what makes the block's reads see what came before: the step that sent this
        one sends before it commits, holding the problem's row lock, and an UPDATE of that row
        waits for the commit. A plain SELECT would not, and could read the problem without the
        samples that transaction wrote (a chunk with no solutions: seen in a load test)."""
        with read_scope(self.task.database_url) as session:
            marked = session.execute(
                _mark_stage(samples), {"problem_id": self.problem_id, "stage": self.stage}
            ).one_or_none()
            yield None if marked is None else self._loaded(session, marked[0], bool(marked[1]))

    @contextmanager
    def write(self) -> Iterator[Session]:
        """The step's writing transaction: what the block writes, the step's `StageRun`, and the
        next steps of the workflow, committed together; the next steps are sent before the commit
        (a lost commit reruns this step, which sends them again: every step is idempotent)."""
        with session_scope(self.task.database_url) as session, session.no_autoflush:
            # The problem's row first: every row written below that references it takes a key-share
            # lock on it, and two steps of one problem (its chunks) that took those before `advance`
            # asks for the row to update would wait on each other. Locked first, they queue.
            problem = lock_problem(session, self.problem_id)
            yield session
            advanced = self._continue(session, {self.problem_id: problem})
        self._after_commit(advanced)

    @contextmanager
    def run(self) -> Iterator[Loaded | None]:
        """`read` and `write` in one transaction, for a step with no work outside the database."""
        with self.run_all() as loaded:
            yield loaded[0] if loaded else None

    @contextmanager
    def run_all(self) -> Iterator[list[Loaded]]:
        """`run` for every problem of the step at once (in id order), leaving out those that have
        finished: one transaction, one statement for their stage runs, one broker connection."""
        with session_scope(self.task.database_url) as session, session.no_autoflush:
            problems = [
                p for p in lock_problems(session, self.problem_ids) if p.status not in FINISHED_PROBLEM_STATES
            ]
            for problem in problems:
                problem.stage = self.stage
            yield [self._loaded(session, problem) for problem in problems]
            advanced = self._continue(session, {problem.id: problem for problem in problems})
        self._after_commit(advanced)

    def _loaded(self, session: Session, problem: Problem, sampled: bool = False) -> Loaded:
        job = job_info(self.task.database_url, problem.job_id)
        self.configs[problem.id] = job.config
        return Loaded(session, problem, job.config, job.benchmark, sampled)

    def _continue(self, session: Session, locked: dict[int, Problem | None]) -> list[Advance]:
        self.seconds = time.perf_counter() - self.began
        _record_stage_runs(session, self, list(locked), self.task.request.hostname or socket.gethostname())
        url = self.task.database_url
        advanced = [
            advance(
                session, url, problem_id, self.configs.get(problem_id), locked=_still_locked(session, problem)
            )
            for problem_id, problem in locked.items()
        ]
        send(self.task.app, chain.from_iterable(each.messages for each in advanced))
        return advanced

    def _after_commit(self, advanced: list[Advance]) -> None:
        for each in advanced:
            observe_stage(self.stage, self.seconds)
            self.task.allocate_after(each)


@functools.cache
def _mark_stage(samples: type[Solution] | type[UnitTest] | None) -> Update:
    """`Step.read`'s statement, built once per kind of sample: building a statement costs SQLAlchemy
    more CPU than running it. Nothing in the session needs updating from it (a fresh one)."""
    problem_id = bindparam("problem_id", type_=Integer)
    # By the id, not correlated: SQLite's RETURNING would resolve `problems.id` in a subquery to
    # the subquery's own `id`.
    sampled = literal(False) if samples is None else exists().where(samples.problem_id == problem_id)
    return (
        update(Problem)
        .where(Problem.id == problem_id, Problem.status.not_in(FINISHED_PROBLEM_STATES))
        .values(stage=bindparam("stage"))
        .returning(Problem, sampled)
        .execution_options(synchronize_session=False)
    )


def _still_locked(session: Session, problem: Problem | None) -> Problem | None:
    """`problem` as `write` and `run` locked it, if `advance` may go by it: on Postgres, while this
    transaction holds the lock (a block that rolled back, on a duplicate sample, let go of it).
    SQLite has no row locks, only the database's, which a transaction takes at its first write: its
    row is read again (what the step changed on it flushed first), now that this one writes."""
    if problem is None or inspect(problem).expired:
        return None
    if session.get_bind().dialect.name != "postgresql":
        session.flush()
        return None
    return problem


def _record_stage_runs(session: Session, step: Step, problem_ids: list[int], worker: str) -> None:
    # One statement; a rerun of the step (a redelivery) replaces the record of the run it repeats.
    if not problem_ids:
        return
    run = {"worker": worker, "started_at": step.started_at, "finished_at": utcnow(), "seconds": step.seconds}
    keys = [{"problem_id": problem_id, "stage": step.stage, "part": step.part} for problem_id in problem_ids]
    session.execute(upsert(session, StageRun, list(keys[0]), list(run)), [key | run for key in keys])


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
        return Step(self, [problem_id], stage, part)

    def steps(self, problem_ids: list[int], stage: str) -> Step:
        """Begin the same step of several problems at once (`Step.run_all`)."""
        return Step(self, problem_ids, stage, 0)

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
        # The first argument names the problem, or (the plan's) a list of problems.
        named = args[0] if args else kwargs.get("problem_id", kwargs.get("problem_ids"))
        if named is None:
            return
        for problem_id in named if isinstance(named, list) else [named]:
            self.fail_problem(problem_id, f"{self.name}: {type(exc).__name__}: {exc}")

    def fail_problem(self, problem_id: int, error: str) -> None:
        """Mark a problem failed (a step of it gave up), and its job finished if it was the last."""
        with session_scope(self.database_url) as session:
            job_id = session.scalar(select(Problem.job_id).where(Problem.id == problem_id))
            if job_id is None:
                return
            # The job's lock before the problem's, in the order `cancel` takes them.
            lock_job(session, job_id)
            problem = lock_problem(session, problem_id)
            if problem is not None:
                benchmark = job_info(self.database_url, job_id).benchmark
                finish_problem(session, problem, ProblemStatus.FAILED, benchmark, error)
        # A problem that failed while its job waited to allocate must not keep the others waiting.
        self.start_allocated(job_id)
