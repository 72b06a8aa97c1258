"""Serving the metrics: one HTTP endpoint per worker host, however many pool processes it has.

    coderm worker --metrics-port 9808   the worker's main process serves /metrics; its prefork pool
                                        processes record into files under --metrics-dir
                                        (prometheus_client's multiprocess mode), merged per scrape
    coderm run --metrics-port 9808      the embedded run serves its own process' registry

Pool processes come and go (--max-tasks-per-child, crashes, a child killed by the kernel). Their
counters and histograms stay in the sum, as counters must; their `live*` gauges (tasks in progress)
must not. A pool process that exits normally marks itself dead (Celery's worker_process_shutdown);
one that was killed is found at the next scrape, which marks every process whose files remain but
which no longer exists. Files of earlier runs of the worker are removed when it starts.

The queue depth is read from the broker at scrape time by the worker that serves the `orchestrator`
queue (and by the embedded run): a passive queue declare per queue, which RabbitMQ, Redis and the
in-memory broker all answer with the number of ready messages.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.simple_server import WSGIServer

from celery import Celery, Task
from celery.signals import task_postrun, task_prerun, worker_process_shutdown
from prometheus_client import REGISTRY, CollectorRegistry, start_http_server
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from orchestrator.core.errors import ConfigurationError
from orchestrator.observability.metrics import initialize_series, task_finished, task_started
from orchestrator.runtime.celery_app import QUEUES

logger = logging.getLogger(__name__)

_LIVE_GAUGE_FILE = re.compile(r"gauge_live[a-z]+_(\d+)\.db")


@dataclass
class MetricsServer:
    """An endpoint serving `registry` on /metrics from a background thread."""

    registry: CollectorRegistry
    server: WSGIServer
    thread: threading.Thread

    @property
    def port(self) -> int:
        return int(self.server.server_port)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def start_metrics_server(port: int, address: str, multiprocess_dir: Path | None = None) -> MetricsServer:
    """Serve the metrics of this process, or of every process recording under `multiprocess_dir`."""
    if multiprocess_dir is None:
        registry = REGISTRY
    else:
        registry = CollectorRegistry()
        LiveProcessCollector(registry, multiprocess_dir)
    try:
        server, thread = start_http_server(port, address, registry)
    except OSError as exc:
        raise ConfigurationError(f"cannot serve metrics on {address}:{port}: {exc.strerror or exc}") from exc
    return MetricsServer(registry, server, thread)


def serve_worker_metrics(port: int, address: str, directory: Path, queues: Iterable[str]) -> MetricsServer:
    """The endpoint of a `coderm worker`; PROMETHEUS_MULTIPROC_DIR must already point at `directory`."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR") != str(directory):
        raise ConfigurationError("the metrics folder must be set before prometheus_client is imported")
    server = start_metrics_server(port, address, directory)
    # Only once the port is ours: a worker started on a port another one holds must not remove that
    # one's files. Nothing has been recorded yet (every family has labels, so none has a value).
    remove_stale_files(directory)
    initialize_series(queues)
    connect_task_signals()
    worker_process_shutdown.connect(_pool_process_exited, weak=False, dispatch_uid="coderm-metrics")
    return server


def serve_embedded_metrics(port: int, address: str, app: Celery) -> MetricsServer:
    """The endpoint of an embedded run: this process' registry, the in-memory queues' depth."""
    server = start_metrics_server(port, address)
    initialize_series(QUEUES)
    connect_task_signals()
    watch_queue_depth(server, app)
    return server


def watch_queue_depth(server: MetricsServer, app: Celery) -> None:
    server.registry.register(QueueDepthCollector(app))


def remove_stale_files(directory: Path) -> None:
    """Remove the metric files of earlier runs (only prometheus_client's `*.db` files)."""
    for path in directory.glob("*.db"):
        path.unlink(missing_ok=True)


def mark_dead_processes(directory: Path) -> None:
    """Mark dead every process that left `live*` gauge files and no longer exists."""
    pids = {int(m.group(1)) for p in directory.iterdir() if (m := _LIVE_GAUGE_FILE.fullmatch(p.name))}
    for pid in pids:
        if not _process_exists(pid):
            mark_process_dead(pid, str(directory))


def _process_exists(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, under another user
        return True
    return True


class LiveProcessCollector(MultiProcessCollector):
    """prometheus_client's merge of the processes' files, after marking the vanished ones dead."""

    def __init__(self, registry: CollectorRegistry, directory: Path) -> None:
        super().__init__(registry, str(directory))
        self.directory = directory

    def collect(self) -> Iterable[Metric]:
        mark_dead_processes(self.directory)
        return super().collect()


class QueueDepthCollector(Collector):
    """`coderm_queue_messages{queue}` and `coderm_broker_up`, asked of the broker at each scrape."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def describe(self) -> Iterable[Metric]:
        # Describing without collecting: registering must not connect to the broker.
        return self._families()

    def collect(self) -> Iterator[Metric]:
        depth, up = self._families()
        try:
            with self.app.connection_for_read() as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, timeout=5)
                for queue in QUEUES:
                    depth.add_metric([queue], _message_count(connection, queue))
        except Exception as exc:  # a scrape must answer, whatever the broker does
            logger.warning("queue depth unavailable: %s: %s", type(exc).__name__, exc)
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield depth
        yield up

    @staticmethod
    def _families() -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(
                "coderm_queue_messages",
                "Messages waiting in a queue (ready, not yet taken by a worker), asked of the broker.",
                labels=["queue"],
            ),
            GaugeMetricFamily("coderm_broker_up", "1 when the broker answered the queue-depth questions."),
        ]


def _message_count(connection: Any, queue: str) -> int:
    channel = connection.channel()
    try:
        return int(channel.queue_declare(queue=queue, passive=True).message_count)
    except connection.channel_errors:  # not declared yet: no worker consumes it, nothing was sent
        return 0
    finally:
        with suppress(*connection.channel_errors, *connection.connection_errors):
            channel.close()


def connect_task_signals() -> None:
    """Count the tasks in progress by queue, in whichever process runs them."""
    task_prerun.connect(_task_started, weak=False, dispatch_uid="coderm-metrics")
    task_postrun.connect(_task_finished, weak=False, dispatch_uid="coderm-metrics")


def _queue_of(task: Task) -> str:
    delivery = getattr(task.request, "delivery_info", None) or {}
    queue = delivery.get("routing_key")
    return queue if queue in QUEUES else "other"


def _task_started(task: Task, **_: Any) -> None:
    task_started(_queue_of(task))


def _task_finished(task: Task, **_: Any) -> None:
    task_finished(_queue_of(task))


def _pool_process_exited(pid: int, **_: Any) -> None:
    mark_process_dead(pid)
