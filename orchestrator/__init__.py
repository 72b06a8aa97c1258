"""coderm's orchestrator: the job workflow on Celery, its storage, inputs, reports and command line.

The public API is the client's, re-exported here:

    import orchestrator
    job_id = orchestrator.submit(problems, n_solutions=16)
    orchestrator.wait(job_id)

Subpackages, each importing only those below it (pyproject.toml's import-linter contracts):

    cli/            the `coderm` command line
    client.py       the Python API (submit, status, wait, results, cancel)
    workflow/       a job's life: submit, plan, next steps (steps.advance), finish, control
    reporting/      reading a job back (reports) and scoring it against ground truth (evaluation)
    observability/  Prometheus metrics, their exposition, the Grafana dashboards and their pictures
    runtime/        the Celery app and queues, message schemas, the task base, the embedded worker
    inputs/         problem files, replay files, built-in benchmarks
    core/           configuration, errors, the data model, database sessions and migrations
"""

from __future__ import annotations

import importlib
from typing import Any


def __getattr__(name: str) -> Any:
    # The client loads Celery, the workflow and prometheus_client; importing a light module such as
    # orchestrator.core.config must not (a worker sets prometheus_client's folder first), so the
    # client's names (its __all__) are looked up on first use.
    if not name.startswith("_"):
        client = importlib.import_module("orchestrator.client")
        if name in client.__all__:
            return getattr(client, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")
