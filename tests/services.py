"""Real services and processes for the tests: RabbitMQ virtual hosts, `coderm` commands and workers,
metrics endpoints. Plain functions, shared by the fixtures of conftest.py and the tests that start
processes of their own (imported as `services`: every test folder may have a conftest of its own).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

ADMIN_POSTGRES_URL = os.environ.get(
    "CODERM_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
RABBITMQ_URL = os.environ.get("CODERM_TEST_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672")
REDIS_URL = os.environ.get("CODERM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CODERM = str(Path(sys.executable).with_name("coderm"))
REPO = Path(__file__).parent.parent


@contextmanager
def scratch_database(prefix: str) -> Iterator[str]:
    """The URL of a new, empty Postgres database, dropped afterwards.

    The admin engine keeps no pooled connections: the fault tests restart Postgres, and a pooled
    connection from before a restart would fail the drop at the end of the session.
    """
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(ADMIN_POSTGRES_URL, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def rabbitmq_vhost() -> Iterator[str]:
    """The URL of a new RabbitMQ virtual host, deleted afterwards."""
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


def services_environment(database_url: str, broker_url: str, home: Path) -> dict[str, str]:
    """Environment for `coderm` processes that use the real services, and nothing else of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CODERM_")}
    env.update(
        CODERM_HOME=str(home),
        CODERM_DATABASE_URL=database_url,
        CODERM_BROKER_URL=broker_url,
        CODERM_RESULT_BACKEND=REDIS_URL,
    )
    return env


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """The samples a metrics endpoint on this machine serves: (name, sorted labels) -> value."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10).raise_for_status().text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def process_parents() -> dict[int, int]:
    """pid -> parent pid of every process on this machine, from /proc (they come and go meanwhile)."""
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    table[int(entry)] = int(stat.read().rsplit(b")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    return table


def free_port() -> int:
    """A TCP port nothing listens on now (the OS picks it)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class WorkerProcess:
    queue: str
    process: subprocess.Popen[bytes]
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def spawn_worker(
    env: dict[str, str],
    queue: str,
    log_dir: Path,
    extra_args: tuple[str, ...] = ("-c", "1"),
    launcher: Sequence[str] = (),
) -> WorkerProcess:
    """Start `coderm worker -Q queue` (one pool process unless `extra_args` say), behind `launcher`
    (a command that execs its arguments, e.g. on another host); `wait_ready` waits."""
    name = f"{queue.replace(',', '-')}-{uuid.uuid4().hex[:6]}"
    log = log_dir / f"worker-{name}.log"
    process = subprocess.Popen(
        [*launcher, CODERM, "worker", "-Q", queue, "-n", f"{name}@%h", *extra_args],
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


def unavailable(reason: str) -> NoReturn:
    """Skip a test that needs something this machine lacks; under CI (`CODERM_CI`, which .ci/run
    sets) fail instead, as CI installs everything the tests use."""
    if os.environ.get("CODERM_CI"):
        pytest.fail(f"{reason}, which CI should have installed (.ci/run)")
    pytest.skip(reason)


def run_coderm(
    args: list[str], env: dict[str, str] | None = None, timeout: float = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed `coderm` command and capture what it prints."""
    return subprocess.run([CODERM, *args], env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
