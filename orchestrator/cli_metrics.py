"""Metrics on the command line: the endpoint options of `worker`, `run` and `eval`.

prometheus_client decides at import whether values live in memory or in per-process files, so a
worker's metrics folder is set here, before anything imports it; the modules that do are imported
inside the functions.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli_jobs import console
from orchestrator.errors import ConfigurationError

if TYPE_CHECKING:
    from celery import Celery

    from orchestrator.metrics_exposition import MetricsServer

_port_option = click.option(
    "--metrics-port",
    type=click.IntRange(1, 65535),
    envvar="CODERM_METRICS_PORT",
    show_envvar=True,
    help="Serve Prometheus metrics on this port at /metrics (default: no endpoint).",
)
_address_option = click.option(
    "--metrics-address",
    default="0.0.0.0",
    show_default=True,
    envvar="CODERM_METRICS_ADDRESS",
    show_envvar=True,
    help="Address the metrics endpoint listens on.",
)
_dir_option = click.option(
    "--metrics-dir",
    type=click.Path(file_okay=False, path_type=Path),
    envvar="CODERM_METRICS_DIR",
    show_envvar=True,
    help="Folder where the pool processes record their metrics (prometheus_client multiprocess mode); "
    "emptied at start, so it must be this worker's alone (default: $CODERM_HOME/metrics/<port>).",
)


def metrics_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--metrics-port and --metrics-address, for the embedded run (`run`, `eval`)."""
    return _port_option(_address_option(command))


def worker_metrics_options(command: Callable[..., Any]) -> Callable[..., Any]:
    return _port_option(_address_option(_dir_option(command)))


def start_worker_metrics(port: int, address: str, directory: Path, queues: list[str]) -> MetricsServer:
    """The worker host's endpoint, serving the main process and every pool process it forks."""
    if "prometheus_client" in sys.modules:
        raise ConfigurationError(
            "prometheus_client was imported before the worker chose its metrics folder, so pool "
            "processes would keep their metrics to themselves; import it later"
        )
    directory.mkdir(parents=True, exist_ok=True)
    # Inherited by the pool processes, which record into files of their own there.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    from orchestrator.metrics_exposition import serve_worker_metrics

    server = serve_worker_metrics(port, address, directory, queues)
    console.print(f"metrics on http://{address}:{server.port}/metrics (files in {directory})")
    return server


def start_embedded_metrics(port: int, address: str, app: Celery) -> MetricsServer:
    from orchestrator.metrics_exposition import serve_embedded_metrics

    server = serve_embedded_metrics(port, address, app)
    console.print(f"metrics on http://{address}:{server.port}/metrics")
    return server
