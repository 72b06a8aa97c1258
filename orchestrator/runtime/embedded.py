"""The embedded default: the same tasks and workflow, run by a worker inside this process.

`coderm run` without `CODERM_BROKER_URL` uses kombu's in-memory broker and a thread-pool worker in a
background thread, so no service has to run.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from celery import Celery
from celery.worker import WorkController

from orchestrator.runtime.celery_app import QUEUES


@contextmanager
def embedded_worker(app: Celery, concurrency: int = 4) -> Iterator[WorkController]:
    """A worker on every queue, in a background thread, for as long as the block runs."""
    worker = app.WorkController(
        pool_cls="threads",
        concurrency=concurrency,
        queues=list(QUEUES),
        loglevel="WARNING",
        without_heartbeat=True,
        without_mingle=True,
        without_gossip=True,
    )
    thread = threading.Thread(target=worker.start, name="coderm-embedded-worker", daemon=True)
    thread.start()
    try:
        yield worker
    finally:
        worker.stop(in_sighandler=False)
        thread.join(timeout=30)
