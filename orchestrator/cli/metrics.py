"""Metrics on the command line: the endpoint options of `worker`, `run` and `eval`, and `coderm dashboards`.

prometheus_client decides at import whether values live in memory or in per-process files, so a
worker's metrics folder is set here, before anything imports it; the modules that do are imported
inside the functions.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from orchestrator.cli.output import console
from orchestrator.core.errors import ConfigurationError

if TYPE_CHECKING:
    from celery import Celery

    from orchestrator.observability.exposition import MetricsServer

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
    from orchestrator.observability.exposition import serve_worker_metrics

    server = serve_worker_metrics(port, address, directory, queues)
    console.print(f"metrics on http://{address}:{server.port}/metrics (files in {directory})")
    return server


def start_embedded_metrics(port: int, address: str, app: Celery) -> MetricsServer:
    from orchestrator.observability.exposition import serve_embedded_metrics

    server = serve_embedded_metrics(port, address, app)
    console.print(f"metrics on http://{address}:{server.port}/metrics")
    return server


def _require(module: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigurationError(
            f"coderm dashboards needs {module}, of the 'dashboards' extra: pip install 'coderm[dashboards]'"
        )


@click.group("dashboards")
def dashboards_cli() -> None:
    """The Grafana dashboards: write their JSON, or draw their panels from a Prometheus."""


@dashboards_cli.command()
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("ops/grafana/dashboards"),
    show_default=True,
    envvar="CODERM_DASHBOARDS_DIR",
    show_envvar=True,
    help="Folder to write throughput.json and accuracy.json to.",
)
def generate(out: Path) -> None:
    """Write the dashboards' JSON (Grafana's dashboard model) from observability/dashboards.py."""
    _require("grafana_foundation_sdk")
    from orchestrator.observability.dashboards import write_dashboards

    for path in write_dashboards(out):
        console.print(f"wrote {path}")


@dashboards_cli.command()
@click.option(
    "--prometheus-url",
    default="http://127.0.0.1:9090",
    show_default=True,
    envvar="CODERM_PROMETHEUS_URL",
    show_envvar=True,
    help="Prometheus to query (its HTTP API).",
)
@click.option(
    "--dashboards",
    "dashboards_dir",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=Path("ops/grafana/dashboards"),
    show_default=True,
    envvar="CODERM_DASHBOARDS_DIR",
    show_envvar=True,
    help="Folder of the dashboards' JSON.",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs/dashboards"),
    show_default=True,
    envvar="CODERM_DASHBOARD_IMAGES_DIR",
    show_envvar=True,
    help="Folder to write one PNG per dashboard to.",
)
@click.option(
    "--minutes",
    type=click.FloatRange(min=0, min_open=True),
    default=60.0,
    show_default=True,
    envvar="CODERM_DASHBOARD_MINUTES",
    show_envvar=True,
    help="Time range drawn: the last so many minutes.",
)
@click.option(
    "--scrape-interval",
    type=click.FloatRange(min=0, min_open=True),
    default=15.0,
    show_default=True,
    envvar="CODERM_SCRAPE_INTERVAL",
    show_envvar=True,
    help="Prometheus' scrape interval in seconds: $__rate_interval becomes four of them, as in Grafana.",
)
def render(
    prometheus_url: str, dashboards_dir: Path, out: Path, minutes: float, scrape_interval: float
) -> None:
    """Draw every panel of the dashboards from Prometheus into PNGs (matplotlib), without Grafana."""
    _require("matplotlib")
    from orchestrator.observability.dashboard_images import render_dashboards
    from orchestrator.observability.prometheus_api import PrometheusClient, QueryWindow

    end = time.time()
    window = QueryWindow(start=end - 60 * minutes, end=end, scrape_interval=scrape_interval)
    with PrometheusClient(prometheus_url) as prometheus:
        for path in render_dashboards(prometheus, dashboards_dir, out, window):
            console.print(f"wrote {path}")
