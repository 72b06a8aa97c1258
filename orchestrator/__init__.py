"""coderm's orchestrator: the job workflow on Celery, its storage, inputs, results and command line.

The public API is the client's, re-exported here:

    import orchestrator
    job_id = orchestrator.submit(problems, n_solutions=16)
    orchestrator.wait(job_id)

Subpackages, each importing only those below it (pyproject.toml's import-linter contracts):

    cli/            the `coderm` command line
    client.py       the Python API (submit, status, wait, results, cancel)
    workflow/       a job's life: submit, plan, next steps (steps.advance), finish, control
    results/        reading a job back (reports) and scoring it against ground truth (evaluation)
    observability/  Prometheus metrics, their exposition, the Grafana dashboards and their pictures
    runtime/        the Celery app and queues, message schemas, the task base, the embedded worker
    inputs/         problem files, replay files, built-in benchmarks
    core/           configuration, errors, the data model, database sessions and migrations
"""

from __future__ import annotations

from typing import Any

_CLIENT_API = {
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
}

__all__ = sorted(_CLIENT_API)


def __getattr__(name: str) -> Any:
    # The client loads Celery, the workflow and prometheus_client; importing a light module such as
    # orchestrator.core.config must not (a worker sets prometheus_client's folder first).
    if name in _CLIENT_API:
        from orchestrator import client

        return getattr(client, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
