"""The Celery application: queues, routing and serialisation (DESIGN §5).

Five queues, one per kind of work, so each can be served by the machines that suit it: GPU-side
workers take `policy` and `coderm`, CPU hosts take `sandbox`, anything takes `orchestrator` and `voter`.
Task names start with `coderm.<queue>.`, and the route follows from the name.

The app is built by `create_app`, never at import time.
"""

from __future__ import annotations

import importlib

from celery import Celery
from kombu import Queue

from orchestrator.config import Settings
from orchestrator.errors import ConfigurationError

QUEUES = ("orchestrator", "policy", "coderm", "sandbox", "voter")

TASK_MODULES = (
    "orchestrator.workflow",
    "agents.policy",
    "agents.coderm",
    "sandbox.tasks",
    "agents.voter",
    "agents.difficulty",
)

TASK_ROUTES = {f"coderm.{queue}.*": {"queue": queue} for queue in QUEUES} | {
    # Celery's own chord helper, used by result backends without native chord support.
    "celery.chord_unlock": {"queue": "orchestrator"},
}


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from `settings` (the environment by default), with our tasks loaded."""
    settings = settings or Settings()
    if settings.embedded:
        from orchestrator.embedded import InProcessResultBackend

        broker: str = "memory://"
        backend: object = InProcessResultBackend
    else:
        if not settings.result_backend:
            raise ConfigurationError(
                "CODERM_BROKER_URL is set but CODERM_RESULT_BACKEND is not; the per-problem workflow "
                "joins its parallel steps through the result backend (e.g. redis://host:6379/0)"
            )
        broker, backend = settings.broker_url or "", settings.result_backend

    app = Celery("coderm", broker=broker, backend=backend, set_as_current=True)
    app.conf.update(
        # Only JSON crosses the broker: a pickle would let whoever can publish run code on workers.
        task_serializer="json",
        result_serializer="json",
        accept_content=["json"],
        result_accept_content=["json"],
        task_queues=[Queue(name) for name in QUEUES],
        task_default_queue="orchestrator",
        task_routes=TASK_ROUTES,
        # Tasks are idempotent, so a message is acknowledged only once its work is stored, and a
        # worker that dies mid-task hands the message back to another.
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        # LLM and sandbox tasks run for seconds to minutes: take one at a time so none waits behind them.
        worker_prefetch_multiplier=1,
        broker_connection_retry_on_startup=True,
        broker_transport_options={"polling_interval": 0.05} if settings.embedded else {},
        result_expires=7 * 24 * 3600,
        worker_hijack_root_logger=False,
        coderm_database_url=settings.effective_database_url,
        # Tasks read the deployment settings (model servers, devices) from here: read once per process.
        coderm_settings=settings,
    )
    # Shared tasks find their app through the current app, which is per thread unless set as default;
    # the embedded worker's threads must see this one.
    app.set_default()
    for module in TASK_MODULES:
        importlib.import_module(module)
    return app


def ensure_broker_reachable(app: Celery, timeout_s: float = 5.0) -> None:
    """Fail fast, with a clear message, when the broker cannot be reached (before writing a job)."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
    except Exception as exc:  # kombu raises transport-specific errors
        url = app.connection_for_write().as_uri()  # the password is masked
        raise ConfigurationError(f"the broker at {url} is unreachable: {exc}") from exc
