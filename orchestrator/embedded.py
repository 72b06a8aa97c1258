"""The embedded default: the same tasks and canvas, run by a worker inside this process.

`coderm run` without `CODERM_BROKER_URL` uses kombu's in-memory broker and a thread-pool worker in a
background thread, so no service has to run. Results (needed by the canvas' chords) stay in this
process' memory.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from celery import Celery
from celery.backends.base import KeyValueStoreBackend
from celery.worker import WorkController


class InProcessResultBackend(KeyValueStoreBackend):
    """Task results in a dict shared by every thread of this process.

    Celery's `cache+memory://` backend would do, but it keeps only the 5,000 most recent keys, and a
    large job evicts the counters of chords that are still open. This one keeps everything until the
    process ends, which for `coderm run` is the end of the job.
    """

    supports_native_join = True
    implements_incr = True
    _store: dict[bytes, Any] = {}
    _lock = threading.Lock()

    def get(self, key: bytes) -> Any:
        return self._store.get(key)

    def mget(self, keys: list[bytes]) -> list[Any]:
        return [self._store.get(key) for key in keys]

    def set(self, key: bytes, value: Any) -> None:
        self._store[key] = value

    def delete(self, key: bytes) -> None:
        self._store.pop(key, None)

    def incr(self, key: bytes) -> int:
        with self._lock:
            value = int(self._store.get(key) or 0) + 1
            self._store[key] = value
            return value


@contextmanager
def embedded_worker(app: Celery, concurrency: int = 4) -> Iterator[WorkController]:
    """A worker on every queue, in a background thread, for as long as the block runs."""
    from orchestrator.celery_app import QUEUES

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
