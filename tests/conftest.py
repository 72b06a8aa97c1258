"""Fixtures that give each test session clean, real services and take them away afterwards.

Postgres: a database of its own (`coderm_test_<hex>`), dropped at the end. RabbitMQ: a virtual host
of its own, so concurrent sessions never consume each other's tasks. Redis: keys are unique per
task, so the shared server is used as it is. Workers are real `coderm worker` processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

ADMIN_POSTGRES_URL = os.environ.get(
    "CODERM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RABBITMQ_URL = os.environ.get("CODERM_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("CODERM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CODERM = str(Path(sys.executable).with_name("coderm"))
DATA = Path(__file__).parent / "data"
REPO = Path(__file__).parent.parent


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh, empty Postgres database for this session."""
    name = f"coderm_test_{uuid.uuid4().hex[:12]}"
    admin = create_engine(ADMIN_POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def migrated_postgres_url(postgres_url: str) -> str:
    from orchestrator.db import upgrade_schema

    upgrade_schema(postgres_url)
    return postgres_url


@pytest.fixture(scope="session")
def amqp_url() -> Iterator[str]:
    """A RabbitMQ virtual host of this session's own."""
    vhost = f"coderm-test-{uuid.uuid4().hex[:12]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True, capture_output=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"{RABBITMQ_URL}/{vhost}"
    finally:
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], capture_output=True)


@pytest.fixture(scope="session")
def service_env(
    migrated_postgres_url: str, amqp_url: str, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, str]:
    """Environment for `coderm` processes that use the real services."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODERM_")}
    env.update(
        CODERM_HOME=str(tmp_path_factory.mktemp("coderm-home")),
        CODERM_DATABASE_URL=migrated_postgres_url,
        CODERM_BROKER_URL=amqp_url,
        CODERM_RESULT_BACKEND=REDIS_URL,
    )
    return env


@dataclass
class WorkerProcess:
    queue: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def spawn_worker(env: dict[str, str], queue: str, log_dir: Path) -> WorkerProcess:
    """Start `coderm worker -Q queue`; `wait_ready` waits for it."""
    log = log_dir / f"worker-{queue}-{uuid.uuid4().hex[:6]}.log"
    process = subprocess.Popen(
        [CODERM, "worker", "-Q", queue, "-c", "1", "-n", f"{queue}-{uuid.uuid4().hex[:6]}@%h"],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    return WorkerProcess(queue, process, log)


def wait_ready(worker: WorkerProcess, timeout: float = 60) -> WorkerProcess:
    """Wait until Celery reports the worker ready."""
    process, queue = worker.process, worker.queue
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if " ready." in worker.log_text():
            return worker
        if process.poll() is not None:
            raise RuntimeError(f"worker for {queue} exited early:\n{worker.log_text()}")
        time.sleep(0.2)
    process.kill()
    raise RuntimeError(f"worker for {queue} not ready after {timeout} s:\n{worker.log_text()}")


def stop_worker(worker: WorkerProcess) -> None:
    worker.process.terminate()
    try:
        worker.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        worker.process.kill()
        worker.process.wait()


@pytest.fixture(scope="session")
def workers(
    service_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[list[WorkerProcess]]:
    """One real `coderm worker` per queue, for the whole session."""
    from orchestrator.celery_app import QUEUES

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


def run_coderm(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `coderm` command and capture what it prints."""
    return subprocess.run([CODERM, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)


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
