"""The Celery application: queues, routing and serialisation (DESIGN §5).

Five queues, one per kind of work, so each can be served by the machines that suit it: GPU-side
workers take `policy` and `coderm`, CPU hosts take `sandbox`, anything takes `orchestrator` and `voter`.
Task names start with `coderm.<queue>.`, and the route follows from the name.

The app is built by `create_app`, never at import time. Credentials live in the URLs and TLS in the
`CODERM_*_SSL_*` settings (`orchestrator.core.config.Settings`), never in code.
"""

from __future__ import annotations

import importlib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from celery import Celery, _state
from kombu import Queue

from orchestrator.core.config import Settings
from orchestrator.core.errors import ConfigurationError

QUEUES = ("orchestrator", "policy", "coderm", "sandbox", "voter")

TASK_MODULES = (
    "orchestrator.workflow.intake",
    "orchestrator.workflow.plan",
    "agents.policy",
    "agents.coderm",
    "sandbox.tasks",
    "agents.voter",
    "agents.scaling.difficulty",
)

TASK_ROUTES = {f"coderm.{queue}.*": {"queue": queue} for queue in QUEUES}


def create_app(settings: Settings | None = None) -> Celery:
    """A Celery app configured from `settings` (the environment by default), with our tasks loaded."""
    settings = settings or Settings()
    # The workflow keeps its state in the database (orchestrator/workflow/steps.py), not in task results:
    # a result backend is optional, for those who watch task states, and never needed to finish a job.
    broker = "memory://" if settings.embedded else settings.broker_url or ""
    backend = None if settings.embedded else settings.result_backend

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
        # Our steps keep their results in the database; storing them again in a result backend would
        # only make a Redis outage fail steps that did their work. (submit_job keeps its result,
        # the job id, for producers that wait for it.)
        task_ignore_result=True,
        # A broker restart (or failover) takes seconds: publishing waits for it rather than failing.
        task_publish_retry_policy={
            "max_retries": 20,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 3,
        },
        worker_hijack_root_logger=False,
        coderm_database_url=settings.effective_database_url,
        # Tasks read the deployment settings (model servers, devices) from here: read once per process.
        coderm_settings=settings,
    )
    if not settings.embedded:
        app.conf.update(celery_tls_config(settings))
    # Shared tasks find their app through the current app, which is per thread unless set as default;
    # the embedded worker's threads must see this one.
    app.set_default()
    for module in TASK_MODULES:
        importlib.import_module(module)
    return app


# Our setting prefix -> Celery's TLS option for that connection.
_TLS_OPTIONS = {"broker": "broker_use_ssl", "result_backend": "redis_backend_use_ssl"}


def celery_tls_config(settings: Settings) -> dict[str, Any]:
    """Celery's TLS options (`broker_use_ssl`, `redis_backend_use_ssl`) from our settings."""
    config: dict[str, Any] = {}
    for prefix, option in _TLS_OPTIONS.items():
        options = _tls_options(
            (settings.broker_url if prefix == "broker" else settings.result_backend) or "",
            getattr(settings, f"{prefix}_use_ssl"),
            {name: getattr(settings, f"{prefix}_ssl_{name}") for name in ("ca_certs", "certfile", "keyfile")},
            f"CODERM_{prefix.upper()}",
        )
        if options is not None:
            config[option] = options
    return config


def _tls_options(
    url: str, enabled: bool, files: dict[str, Path | None], variable: str
) -> dict[str, Any] | None:
    scheme = url.partition("://")[0].lower()
    given = {name: path for name, path in files.items() if path is not None}
    if not (enabled or scheme in ("amqps", "rediss")):
        if given:
            names = ", ".join(f"{variable}_SSL_{name.upper()}" for name in given)
            raise ConfigurationError(
                f"{names} set but TLS is off: set {variable}_USE_SSL=true, or use amqps:// or rediss://"
            )
        return None
    for name, path in given.items():
        if not path.is_file():
            raise ConfigurationError(f"{variable}_SSL_{name.upper()}: no such file {path}")
    if scheme.startswith("redis"):
        # redis-py's names; it verifies the server's name and certificate, with the system's CAs
        # when no CA file is given.
        return {"ssl_cert_reqs": ssl.CERT_REQUIRED} | {f"ssl_{k}": str(v) for k, v in given.items()}
    # py-amqp verifies the hostname only when told the server's name (kombu fills in None), and
    # trusts no CA unless given a file: the system's bundle stands in for a missing one.
    options: dict[str, Any] = {"cert_reqs": ssl.CERT_REQUIRED, "server_hostname": None}
    options["ca_certs"] = str(given.pop("ca_certs", "")) or ssl.get_default_verify_paths().cafile
    return options | {k: str(v) for k, v in given.items()}


def ensure_broker_reachable(app: Celery, timeout_s: float = 5.0) -> None:
    """Fail fast, with a clear message, when the broker cannot be reached (before writing a job)."""
    try:
        with app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, interval_start=0, timeout=timeout_s)
    except Exception as exc:  # kombu raises transport-specific errors
        url = app.connection_for_write().as_uri()  # the password is masked
        raise ConfigurationError(f"the broker at {url} is unreachable: {exc}") from exc


@contextmanager
def as_current(app: Celery) -> Iterator[Celery]:
    """`app` as Celery's current app (of this thread) for the block, and the one before it after.

    Canvases built from shared tasks send through the current app: a process that made a Celery
    app of its own after ours (a service using `orchestrator.client`) would route them by its own.
    """
    previous = _state.get_current_app()
    app.set_current()
    try:
        yield app
    finally:
        previous.set_current()
