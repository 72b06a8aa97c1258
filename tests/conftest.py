"""Fixtures that give each test session clean, real services and take them away afterwards.

Postgres: a database of its own (`coderm_test_<hex>`), dropped at the end. RabbitMQ: a virtual host
of its own, so concurrent sessions never consume each other's tasks. Redis: keys are unique per
task, so the shared server is used as it is. Workers are real `coderm worker` processes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from services import (
    WorkerProcess,
    rabbitmq_vhost,
    run_coderm,
    scratch_database,
    services_environment,
    spawn_worker,
    stop_worker,
    wait_ready,
)

DATA = Path(__file__).parent / "data"


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty Postgres database for this session."""
    with scratch_database("coderm_test") as url:
        yield url


@pytest.fixture(scope="session")
def migrated_postgres_url(postgres_url: str) -> str:
    from orchestrator.core.db import upgrade_schema

    upgrade_schema(postgres_url)
    return postgres_url


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ virtual host of this session's own."""
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture(scope="session")
def service_env(
    migrated_postgres_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Environment for `coderm` processes that use the real services."""
    return services_environment(migrated_postgres_url, amqp_url, tmp_path_factory.mktemp("coderm-home"))


@pytest.fixture(scope="session")
def workers(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[WorkerProcess]]:
    """One real `coderm worker` per queue, for the whole session."""
    from orchestrator.runtime.celery_app import QUEUES

    log_dir = tmp_path_factory.mktemp("worker-logs")
    started: list[WorkerProcess] = []
    try:
        started.extend(spawn_worker(service_env, queue, log_dir) for queue in QUEUES)
        for worker in started:
            wait_ready(worker)
        yield started
    finally:
        for worker in started:
            stop_worker(worker)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Callable[[dict[str, str], str], WorkerProcess]]:
    """start_worker(env, queue): a ready `coderm worker -Q queue` in `env`, stopped after the test."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], queue: str) -> WorkerProcess:
        started.append(spawn_worker(env, queue, tmp_path))
        return wait_ready(started[-1])

    try:
        yield start
    finally:
        for worker in started:
            stop_worker(worker)


@pytest.fixture
def embedded_env(tmp_path: Path) -> dict[str, str]:
    """Environment for an embedded `coderm run`: no services, a private CODERM_HOME."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODERM_")}
    env["CODERM_HOME"] = str(tmp_path / "home")
    return env


@pytest.fixture(scope="session")
def coderm_cli():  # type: ignore[no-untyped-def]
    """The `coderm` command as a function: coderm_cli(args, env=..., timeout=...)."""
    return run_coderm
