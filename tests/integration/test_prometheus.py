"""Real workers, scraped by a real Prometheus, answer every dashboard panel and every rule.

Five `coderm worker --metrics-port` processes (the sandbox one with two prefork pool processes) work
on a RabbitMQ virtual host of this module's own, so no other worker of the session takes their
tasks. Prometheus runs with the committed ops/prometheus configuration and rules, its targets
pointed at the workers and its intervals shortened to one second. A replayed job whose solutions
carry ground-truth labels gives the accuracy families data.
"""

from __future__ import annotations

import json
import math
import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from celery import Celery
from services import (
    REPO,
    WorkerProcess,
    free_port,
    prometheus_server,
    rabbitmq_vhost,
    run_coderm,
    scrape,
    services_environment,
    spawn_worker,
    stop_worker,
    wait_ready,
)
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from orchestrator.core.models import Job
from orchestrator.observability.dashboard_images import PanelQuery, panel_queries, render_dashboards
from orchestrator.observability.prometheus_api import PrometheusClient, QueryWindow
from orchestrator.runtime.celery_app import QUEUES

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SCRAPE_S = 1.0
OPS = REPO / "ops"
PROBLEMS = 6

ADD_TESTS = [
    "import unittest\n\nclass TestAdd(unittest.TestCase):\n    def test_small(self):\n        self.assertEqual(add(1, 2), 3)\n",
    "import unittest\n\nclass TestZero(unittest.TestCase):\n    def test_zero(self):\n        self.assertEqual(add(0, 0), 0)\n",
]
# (solution, plus_status): the voter's pick (the only one passing both tests) is the one correct
# solution, so best-of-N accuracy is 1 and vanilla accuracy 1/4 on every problem.
ADD_SOLUTIONS = [
    {"solution": "def add(a, b):\n    return a + b\n", "plus_status": "pass"},
    {"solution": "def add(a, b):\n    return a - b\n", "plus_status": "fail"},
    {"solution": "def add(a, b):\n    return 0\n", "plus_status": "fail"},
    {"solution": "def add(a, b)\n    return a + b\n", "plus_status": "fail"},  # does not compile
]
SLEEPER = "import time\ntime.sleep(4)\n\ndef add(a, b):\n    return a + b\n"


def comparison_as_bool(expr: str) -> str:
    """An alert's `figure OP threshold` as `figure OP bool threshold`: data whether it fires or not.

    The rules' convention (ops/prometheus/rules/coderm.yml) is one comparison outside any brackets;
    anything else fails here, so that no alert escapes the check.
    """
    depth, quoted, found = 0, False, []
    for index, char in enumerate(expr):
        if char == '"':
            quoted = not quoted
        elif quoted:
            continue
        elif char in "([{":
            depth += 1
        elif char in ")]}":
            depth -= 1
        elif (
            depth == 0
            and expr[index - 1] not in "=!<>"  # the second character of an operator already found
            and (match := re.match(r"==|!=|>=|<=|>|<", expr[index:]))
        ):
            found.append((index, match.group()))
    assert len(found) == 1, f"alert expression needs exactly one top-level comparison: {expr}"
    index, operator = found[0]
    return f"{expr[: index + len(operator)]} bool{expr[index + len(operator) :]}"


@pytest.fixture(scope="module")
def metrics_env(
    migrated_postgres_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, str]]:
    with rabbitmq_vhost() as broker:
        yield services_environment(migrated_postgres_url, broker, tmp_path_factory.mktemp("metrics-home"))


@pytest.fixture(scope="module")
def stale_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sandbox worker's metrics folder, holding the unreadable leftovers of an earlier run."""
    folder = tmp_path_factory.mktemp("sandbox-metrics")
    (folder / "counter_4242.db").write_bytes(b"left by a dead run")
    (folder / "gauge_livesum_4242.db").write_bytes(b"left by a dead run")
    return folder


@pytest.fixture(scope="module")
def metrics_workers(
    metrics_env: dict[str, str], stale_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, tuple[WorkerProcess, int]]]:
    """queue -> (worker, metrics port); the sandbox worker has two prefork pool processes."""
    log_dir = tmp_path_factory.mktemp("metrics-worker-logs")
    started: dict[str, tuple[WorkerProcess, int]] = {}
    try:
        for queue in QUEUES:
            port = free_port()
            args = ["--metrics-port", str(port), "--metrics-address", "127.0.0.1"]
            args += ["-c", "2", "--metrics-dir", str(stale_dir)] if queue == "sandbox" else ["-c", "1"]
            started[queue] = (spawn_worker(metrics_env, queue, log_dir, tuple(args)), port)
        for worker, _ in started.values():
            wait_ready(worker)
        yield started
    finally:
        for worker, _ in started.values():
            stop_worker(worker)


@pytest.fixture(scope="module")
def prometheus(
    metrics_workers: dict[str, tuple[WorkerProcess, int]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrometheusClient]:
    """Prometheus with the committed config and rules, scraping the workers every second."""
    home = tmp_path_factory.mktemp("prometheus")
    targets = [(queue, port) for queue, (_, port) in metrics_workers.items()]
    with prometheus_server(home, targets, SCRAPE_S) as url, PrometheusClient(url) as client:
        deadline = time.monotonic() + 60
        while not _all_targets_up(client, len(metrics_workers)):
            assert time.monotonic() < deadline, (home / "prometheus.log").read_text()
            time.sleep(0.2)
        yield client


def _all_targets_up(client: PrometheusClient, count: int) -> bool:
    try:
        active = client.api("targets")["activeTargets"]
    except Exception:  # not listening yet
        return False
    workers = [t for t in active if t["labels"]["job"] == "coderm-workers"]
    return len(workers) == count and all(t["health"] == "up" for t in workers)


def submit(env: dict[str, str], path: Path, problems: list[dict[str, object]], *args: str) -> str:
    path.write_text("".join(json.dumps(p) + "\n" for p in problems))
    submitted = run_coderm(["submit", str(path), *args], env=env, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    return submitted.stdout.strip()


def wait_for_job(env: dict[str, str], job_id: str, timeout: float = 120) -> None:
    engine = create_engine(env["CODERM_DATABASE_URL"])
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with Session(engine) as session:
                if session.scalar(select(Job.status).where(Job.id == job_id)) == "completed":
                    return
            time.sleep(0.3)
    finally:
        engine.dispose()
    raise AssertionError(f"job {job_id} did not complete within {timeout} s")


def wait_for_value(client: PrometheusClient, expr: str, expected: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = client.query(expr)
        if result and float(result[0]["value"][1]) == expected:
            return
        time.sleep(SCRAPE_S / 2)
    raise AssertionError(f"{expr} did not reach {expected} within {timeout} s: {client.query(expr)}")


def wait_for_data(client: PrometheusClient, expr: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not client.query(expr):
        assert time.monotonic() < deadline, f"{expr} has no data after {timeout} s"
        time.sleep(SCRAPE_S / 2)


def test_a_worker_removes_stale_files_and_serves_its_queues(
    metrics_workers: dict[str, tuple[WorkerProcess, int]], stale_dir: Path
) -> None:
    assert not (stale_dir / "counter_4242.db").exists()
    assert not (stale_dir / "gauge_livesum_4242.db").exists()
    samples = scrape(metrics_workers["sandbox"][1])
    assert samples[("coderm_worker_up", (("queue", "sandbox"),))] == 1
    assert ("coderm_worker_up", (("queue", "policy"),)) not in samples
    # Known label sets exist from the start, at zero.
    assert samples[("coderm_sandbox_executions_total", (("kind", "unit_test"), ("outcome", "timeout")))] == 0
    # Only the worker that serves `orchestrator` asks the broker for the queues' depth.
    assert ("coderm_broker_up", ()) not in samples
    orchestrator = scrape(metrics_workers["orchestrator"][1])
    assert orchestrator[("coderm_broker_up", ())] == 1
    assert {labels for name, labels in orchestrator if name == "coderm_queue_messages"} == {
        (("queue", queue),) for queue in QUEUES
    }


def test_every_dashboard_query_and_rule_answers_with_data(
    prometheus: PrometheusClient, metrics_env: dict[str, str], tmp_path: Path
) -> None:
    # Every target has been scraped (with its series at zero) before the work begins.
    started = time.time()
    problems = [
        {
            "task_id": f"add/{i}",
            "question": "add(a, b) returns a + b",
            "solutions": ADD_SOLUTIONS,
            "unit_tests": ADD_TESTS,
        }
        for i in range(PROBLEMS)
    ]
    # Two jobs, one after the other: series that appear with the first (those of a backend and
    # model) hold their first value there, and only the second job's work shows in their rates.
    done = 0
    for batch in (problems[: PROBLEMS // 2], problems[PROBLEMS // 2 :]):
        job_id = submit(metrics_env, tmp_path / "labelled.jsonl", batch, "--chunk-size", "1")
        wait_for_job(metrics_env, job_id)
        done += len(batch)
        for agent in ("policy", "coderm"):  # one request each per problem
            wait_for_value(prometheus, f'sum(coderm_llm_requests_total{{agent="{agent}"}})', done)
    # What the panels show is what happened. Each worker is scraped at its own moment, so each
    # figure is awaited; the recording rules (evaluated every second) come last.
    expected = {
        "sum(coderm_problems_completed_total)": PROBLEMS,
        # 6 problems x 3 solutions that compile x 2 tests; the right solution passes both tests,
        # the two wrong ones the zero test.
        'sum(coderm_sandbox_executions_total{kind="unit_test"})': 6 * 3 * 2,
        'sum(coderm_sandbox_executions_total{outcome="pass"})': 6 * 4,
        'sum(coderm_llm_samples_total{agent="policy",valid="false"})': 6,
        'sum(coderm_problems_evaluated_total{benchmark="custom"})': 6,
        'coderm:best_of_n_accuracy:ratio1h{benchmark="custom"}': 1.0,
        'coderm:vanilla_accuracy:ratio1h{benchmark="custom"}': 0.25,
        'coderm:job_accuracy_ratio:latest{method="vanilla"}': 0.25,
        'coderm:job_accuracy_ratio:latest{method="best_of_n"}': 1.0,
        'coderm:job_accuracy_ratio:latest{method="oracle"}': 1.0,
    }
    for expr, value in expected.items():
        wait_for_value(prometheus, expr, value)
    groups = yaml.safe_load((OPS / "prometheus" / "rules" / "coderm.yml").read_text())["groups"]
    rules = [rule for group in groups for rule in group["rules"]]
    for rule in rules:  # every recorded series, before the alerts and panels that read them
        if "record" in rule:
            wait_for_data(prometheus, rule["record"])
    # Whole seconds, so that the range queries' last step falls on `end`, after all of the above.
    end = time.time()
    window = QueryWindow(start=end - math.ceil(end - started + 5), end=end, scrape_interval=SCRAPE_S)

    empty = []
    dashboards = sorted((OPS / "grafana" / "dashboards").glob("*.json"))
    queries: list[PanelQuery] = [
        q for path in dashboards for q in panel_queries(json.loads(path.read_text()))
    ]
    assert len(queries) > 20
    for query in queries:
        expr = window.substitute(query.expr)
        result = (
            prometheus.query_range(expr, window) if query.is_range else prometheus.query(expr, at=window.end)
        )
        if not result:
            empty.append(f"{query.dashboard} / {query.panel}: {expr}")

    for rule in rules:
        expr = comparison_as_bool(rule["expr"]) if "alert" in rule else rule["expr"]
        if not prometheus.query(expr, at=window.end):
            empty.append(f"rule {rule.get('alert') or rule.get('record')}: {expr}")
    loaded = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
    assert len(loaded) == len(rules)
    assert [(r["name"], r.get("lastError")) for r in loaded if r["health"] != "ok"] == []
    assert empty == [], "queries without data:\n" + "\n".join(empty)

    # The pictures of the README come from such a run: CODERM_DASHBOARD_IMAGES_DIR=docs/dashboards.
    out = Path(os.environ.get("CODERM_DASHBOARD_IMAGES_DIR") or tmp_path / "images")
    images = render_dashboards(prometheus, OPS / "grafana" / "dashboards", out, window)
    assert [p.name for p in images] == ["accuracy.png", "throughput.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in images)


def _pool_process_running(env: dict[str, str], task_name: str) -> int:
    """The pid of the pool process running `task_name`, as the workers tell Celery's inspect."""
    app = Celery(broker=env["CODERM_BROKER_URL"], set_as_current=False)
    try:
        active = app.control.inspect(timeout=5).active() or {}
    finally:
        app.close()
    pids = [task["worker_pid"] for tasks in active.values() for task in tasks if task["name"] == task_name]
    assert len(pids) == 1, active
    return int(pids[0])


def test_a_killed_pool_process_stops_counting_its_task_in_progress(
    metrics_workers: dict[str, tuple[WorkerProcess, int]], metrics_env: dict[str, str], tmp_path: Path
) -> None:
    worker, port = metrics_workers["sandbox"]
    in_progress = ("coderm_tasks_in_progress", (("queue", "sandbox"),))
    before = scrape(port)
    problem = {"task_id": "slow", "question": "add", "solutions": [SLEEPER], "unit_tests": ADD_TESTS[:1]}
    job_id = submit(metrics_env, tmp_path / "slow.jsonl", [problem], "--time-limit", "30")

    deadline = time.monotonic() + 60
    while scrape(port)[in_progress] != 1:
        assert time.monotonic() < deadline, "the sandbox task never started"
        time.sleep(0.1)
    busy = _pool_process_running(metrics_env, "coderm.sandbox.execute_chunk")
    os.kill(busy, signal.SIGKILL)  # no worker_process_shutdown: only the next scrape can tell

    # The message goes back to the queue and a new pool process runs the chunk again.
    wait_for_job(metrics_env, job_id)
    after = scrape(port)
    assert after[in_progress] == 0
    assert worker.process.poll() is None
    executed = ("coderm_sandbox_executions_total", (("kind", "unit_test"), ("outcome", "pass")))
    assert after[executed] >= before[executed] + 1
