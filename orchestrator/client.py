"""The Python API of coderm: submit jobs, follow them, read their results, cancel them.

    from orchestrator import client

    job_id = client.submit(
        [{"task_id": "add", "question": "Write add(a, b) that returns a + b."}],
        n_solutions=16,
        n_tests=16,
    )
    progress = client.wait(job_id, timeout=3600)
    for problem in client.results(job_id):
        print(problem.task_id, problem.status, problem.selected_solution)

It talks to a distributed deployment: the database, broker and result backend named by the
`CODERM_*` environment variables (or by `settings=Settings(...)`), with `coderm worker` processes
doing the work. Problems are `ProblemSpec`s or plain dicts of the same fields; job options are the
fields of `JobConfig`. Bad input raises `InvalidMessageError` before anything is written; every
error is a `CodermError` (see `orchestrator.core.errors`).

The client builds coderm's Celery app in this process, which becomes Celery's current app. A service
with a Celery app of its own can enqueue by task name instead, without importing coderm
(docs/enqueueing.md).
"""

from __future__ import annotations

import functools
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery

from orchestrator.core.config import JobConfig, Settings
from orchestrator.core.db import ensure_schema_current, session_scope
from orchestrator.core.errors import (
    CodermError,
    ConfigurationError,
    IdempotencyConflictError,
    InvalidMessageError,
    JobTimeoutError,
    NotFoundError,
)
from orchestrator.inputs.problem_files import ProblemSpec
from orchestrator.reporting.reports import (
    JobProgress,
    ProblemSummary,
    follow_job,
    job_progress,
    problem_summaries,
)
from orchestrator.runtime.celery_app import create_app, ensure_broker_reachable
from orchestrator.runtime.messages import JobRequest, job_request
from orchestrator.workflow.control import Cancellation, cancel_job
from orchestrator.workflow.submit import submit as submit_job

__all__ = [
    "Cancellation",
    "CodermError",
    "ConfigurationError",
    "IdempotencyConflictError",
    "InvalidMessageError",
    "JobConfig",
    "JobProgress",
    "JobRequest",
    "JobTimeoutError",
    "NotFoundError",
    "ProblemSpec",
    "ProblemSummary",
    "Settings",
    "cancel",
    "results",
    "status",
    "submit",
    "wait",
]


def submit(
    problems: Sequence[ProblemSpec | Mapping[str, Any]],
    *,
    idempotency_key: str | None = None,
    source: str | None = None,
    settings: Settings | None = None,
    strict: bool = False,
    **config: Any,
) -> str:
    """Submit a job and start its problems' workflows; returns the job id.

    `config` takes `JobConfig`'s fields (`n_solutions=16`, `policy={"backend": "replay"}`, ...). The
    job and its problems are written in one transaction, once the broker has been reached and the
    database found migrated, so a failure leaves nothing behind. With an `idempotency_key` already
    used, the first job's id comes back and nothing is sent again; if that job's problems or options
    differ from these, a `UserWarning` says so, or with `strict` an `IdempotencyConflictError` is
    raised.
    """
    settings = _distributed(settings, "submit")
    request = job_request(problems, config, idempotency_key, source)
    app = _app(settings)
    ensure_broker_reachable(app)
    ensure_schema_current(settings.effective_database_url)
    submitted = submit_job(
        app,
        settings.effective_database_url,
        request.problems,
        request.config,
        source=request.source,
        idempotency_key=request.idempotency_key,
        strict=strict,
    )
    if submitted.differs:
        warnings.warn(
            f"idempotency key {idempotency_key!r} names job {submitted.job_id}, whose problems or options "
            "differ from these; the first job stands",
            stacklevel=2,
        )
    return submitted.job_id


def status(job_id: str, *, settings: Settings | None = None) -> JobProgress:
    """How far a job has come: its status and its problems counted by status."""
    with session_scope((settings or Settings()).effective_database_url) as session:
        return job_progress(session, job_id)


def results(job_id: str, *, settings: Settings | None = None) -> list[ProblemSummary]:
    """One summary per problem, in the job's order: status, samples, the selected solution, timings."""
    with session_scope((settings or Settings()).effective_database_url) as session:
        return problem_summaries(session, job_id)


def wait(
    job_id: str, timeout: float | None, *, poll_s: float = 1.0, settings: Settings | None = None
) -> JobProgress:
    """Wait until the job is done (completed or cancelled) and return its final progress.

    `timeout` is in seconds; `None` waits for as long as it takes. Raises `JobTimeoutError` (a
    `TimeoutError`) when the job is still going once `timeout` seconds have passed (checked every
    `poll_s` seconds); the job itself goes on.
    """
    deadline = None if timeout is None else time.monotonic() + timeout
    database_url = (settings or Settings()).effective_database_url
    progress = None
    for progress in follow_job(database_url, job_id, poll_s):
        if not progress.done and deadline is not None and time.monotonic() >= deadline:
            counts = ", ".join(f"{name} {count}" for name, count in sorted(progress.by_status.items()))
            raise JobTimeoutError(
                f"job {job_id} is still {progress.status} after {timeout:g} s: "
                f"{progress.finished} of {progress.total} problems finished ({counts})"
            )
    assert progress is not None  # follow_job yields at least once
    return progress


def cancel(job_id: str, *, terminate: bool = False, settings: Settings | None = None) -> Cancellation:
    """Cancel a job: unfinished problems are marked cancelled and skipped by every task still to
    come, and the tasks workers hold for them are revoked. With `terminate`, tasks already running
    are stopped too (their worker process gets SIGTERM; prefork pools only). Problems that finished
    keep their results; cancelling a finished job changes nothing.
    """
    settings = settings or Settings()
    app = None if settings.embedded else _app(settings)
    return cancel_job(settings.effective_database_url, job_id, app, terminate=terminate)


def _distributed(settings: Settings | None, action: str) -> Settings:
    settings = settings or Settings()
    if settings.embedded:
        raise ConfigurationError(
            f"{action} needs a broker: set CODERM_BROKER_URL, CODERM_RESULT_BACKEND and "
            "CODERM_DATABASE_URL (or pass settings=Settings(...))"
        )
    return settings


@functools.lru_cache(maxsize=8)
def _app(settings: Settings) -> Celery:
    """One Celery app (and broker connection pool) per deployment, reused by every call."""
    return create_app(settings)
