"""Faults against the real services, mid-job. Each test ends with every problem of its job finished
exactly once, with complete data: every sample, one matrix row per valid solution, one selection.

The problems are slow on purpose (each solution sleeps a little per call), so that the fault lands
while the job runs.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from replay_problems import ADD_TESTS
from services import REDIS_URL, WorkerProcess, run_coderm, spawn_worker, stop_worker, wait_ready
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from orchestrator.core.models import ExecutionResult, Job, Problem, Selection, Solution, UnitTest

pytestmark = [pytest.mark.faults, pytest.mark.integration]

QUEUES = ("orchestrator", "policy", "coderm", "sandbox", "voter")
SLOW_RIGHT = "import time\n\ndef add(a, b):\n    time.sleep(0.15)\n    return a + b\n"
SLOW_WRONG = "import time\n\ndef add(a, b):\n    time.sleep(0.15)\n    return a - b\n"


def write_problems(path: Path, count: int = 6, solutions: bool = True) -> Path:
    lines = []
    for i in range(count):
        problem: dict[str, object] = {
            "task_id": f"add/{i}",
            "question": "Write add(a, b).",
            "unit_tests": ADD_TESTS,
        }
        if solutions:
            problem["solutions"] = [SLOW_RIGHT, SLOW_WRONG, SLOW_RIGHT + f"# {i}\n", SLOW_WRONG + f"# {i}\n"]
        lines.append(json.dumps(problem))
    path.write_text("\n".join(lines) + "\n")
    return path


class Workers:
    """A worker per queue, each in a session of its own so a SIGKILL takes its whole pool."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env, self.log_dir = env, log_dir
        self.running: dict[str, WorkerProcess] = {}

    def start(self, queue: str, env: dict[str, str] | None = None) -> WorkerProcess:
        worker = spawn_worker(env or self.env, queue, self.log_dir, launcher=("setsid",))
        self.running[queue] = worker
        return worker

    def start_all(self) -> None:
        for queue in QUEUES:
            self.start(queue)
        for worker in self.running.values():
            wait_ready(worker)

    def kill(self, queue: str) -> None:
        worker = self.running.pop(queue)
        os.killpg(worker.process.pid, signal.SIGKILL)
        worker.process.wait()

    def stop_all(self) -> None:
        for worker in self.running.values():
            try:
                os.killpg(worker.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                continue
        for worker in self.running.values():
            try:
                worker.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(worker.process.pid, signal.SIGKILL)
                stop_worker(worker)


@pytest.fixture
def workers(fault_env: dict[str, str], tmp_path: Path) -> Iterator[Workers]:
    pool = Workers(fault_env, tmp_path)
    try:
        yield pool
    finally:
        pool.stop_all()


def submit(env: dict[str, str], problems: Path, *options: str) -> str:
    submitted = run_coderm(["submit", str(problems), "--chunk-size", "1", *options], env=env, timeout=120)
    assert submitted.returncode == 0, submitted.stderr
    return submitted.stdout.strip()


def wait_until(condition, timeout: float = 120, every: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if condition():
                return
        except Exception:  # noqa: BLE001 - the database may be restarting
            pass
        time.sleep(every)
    raise AssertionError(f"not reached within {timeout} s")


def query(url: str, statement):  # type: ignore[no-untyped-def]
    engine = create_engine(url, pool_pre_ping=True)
    try:
        with Session(engine) as session:
            return session.execute(statement).all()
    finally:
        engine.dispose()


def job_status(url: str, job_id: str) -> str:
    return str(query(url, select(Job.status).where(Job.id == job_id))[0][0])


def assert_finished_exactly_once(url: str, job_id: str, solutions: int = 4, tests: int = 3) -> None:
    wait_until(lambda: job_status(url, job_id) == "completed", timeout=240)
    problems = query(url, select(Problem.id, Problem.status, Problem.error).where(Problem.job_id == job_id))
    assert problems and all(status == "completed" for _, status, _ in problems), problems
    for problem_id, _, _ in problems:
        assert (
            query(url, select(func.count(Solution.id)).where(Solution.problem_id == problem_id))[0][0]
            == solutions
        )
        assert (
            query(url, select(func.count(UnitTest.id)).where(UnitTest.problem_id == problem_id))[0][0]
            == tests
        )
        valid = query(url, select(Solution.id).where(Solution.problem_id == problem_id, Solution.valid))
        rows = query(
            url,
            select(ExecutionResult.solution_id, ExecutionResult.outcomes).where(
                ExecutionResult.problem_id == problem_id
            ),
        )
        assert sorted(r[0] for r in rows) == sorted(v[0] for v in valid)  # one row per valid solution
        assert all(len(outcomes) == tests for _, outcomes in rows)
        assert len(query(url, select(Selection.problem_id).where(Selection.problem_id == problem_id))) == 1


def sandbox_busy(worker: WorkerProcess) -> bool:
    return worker.log_text().count("Task coderm.sandbox.execute_chunk[") >= 2


def test_sigkill_of_a_sandbox_worker_mid_chunk(
    fault_env: dict[str, str], workers: Workers, tmp_path: Path
) -> None:
    workers.start_all()
    job_id = submit(fault_env, write_problems(tmp_path / "p.jsonl"))
    sandbox = workers.running["sandbox"]
    wait_until(lambda: sandbox_busy(sandbox))
    workers.kill("sandbox")  # its pool, jails and the chunk it ran die; the message goes back
    wait_ready(workers.start("sandbox"))
    assert_finished_exactly_once(fault_env["CODERM_DATABASE_URL"], job_id)


def test_sigkill_of_a_policy_worker_mid_request(
    fault_env: dict[str, str], workers: Workers, tmp_path: Path
) -> None:
    from fake_llm_server import FakeLLMServer

    def responder(prompt: str, k: int) -> str:
        return f"```python\n{SLOW_RIGHT if k % 2 else SLOW_WRONG}# sample {k}\n```"

    with FakeLLMServer("fake-org/Policy-8B", responder) as server:
        server.state.delay_s = 2.0  # every generation takes 2 s, as a GPU would
        env = dict(fault_env, CODERM_POLICY_URL=server.url)
        workers.env = env
        workers.start_all()
        problems = write_problems(tmp_path / "p.jsonl", count=3, solutions=False)
        job_id = submit(env, problems, "--policy-backend", "sglang", "--coderm-backend", "replay", "-n", "4")
        wait_until(lambda: server.state.requests >= 3)  # requests are in flight
        workers.kill("policy")
        wait_ready(workers.start("policy", env))
        assert_finished_exactly_once(env["CODERM_DATABASE_URL"], job_id)


def test_rabbitmq_restarts_during_a_job(fault_env: dict[str, str], workers: Workers, tmp_path: Path) -> None:
    workers.start_all()
    job_id = submit(fault_env, write_problems(tmp_path / "p.jsonl"))
    wait_until(lambda: sandbox_busy(workers.running["sandbox"]))
    subprocess.run(["rabbitmqctl", "-q", "stop_app"], check=True, capture_output=True)
    time.sleep(2)
    subprocess.run(["rabbitmqctl", "-q", "start_app"], check=True, capture_output=True)
    assert_finished_exactly_once(fault_env["CODERM_DATABASE_URL"], job_id)


def test_redis_restarts_during_a_job(fault_env: dict[str, str], workers: Workers, tmp_path: Path) -> None:
    workers.start_all()
    job_id = submit(fault_env, write_problems(tmp_path / "p.jsonl"))
    wait_until(lambda: sandbox_busy(workers.running["sandbox"]))
    subprocess.run(["redis-cli", "-u", REDIS_URL, "shutdown", "nosave"], capture_output=True)
    time.sleep(1)
    subprocess.run(
        ["redis-server", "--daemonize", "yes", "--bind", "127.0.0.1", "-::1", "--port", "6379", "--save", "",
         "--appendonly", "no", "--dir", "/var/lib/redis", "--logfile", "/var/log/redis/ci.log"],
        check=True,
        capture_output=True,
    )  # fmt: skip
    assert_finished_exactly_once(fault_env["CODERM_DATABASE_URL"], job_id)


def test_postgres_restarts_during_a_job(fault_env: dict[str, str], workers: Workers, tmp_path: Path) -> None:
    workers.start_all()
    job_id = submit(fault_env, write_problems(tmp_path / "p.jsonl"))
    wait_until(lambda: sandbox_busy(workers.running["sandbox"]))
    cluster = sorted(os.listdir("/etc/postgresql"))[-1]
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster, "main", "restart"],
        check=True,
        capture_output=True,
    )
    assert_finished_exactly_once(fault_env["CODERM_DATABASE_URL"], job_id)


def test_an_llm_server_that_fails_for_a_while(
    fault_env: dict[str, str], workers: Workers, tmp_path: Path
) -> None:
    from fake_llm_server import FakeLLMServer, Fault

    def responder(prompt: str, k: int) -> str:
        return f"```python\n{SLOW_RIGHT}# sample {k}\n```"

    with FakeLLMServer("fake-org/Policy-8B", responder) as server:
        # 500s, a hang past the client's timeout, a dropped connection and garbage, then health.
        server.fail_next(
            Fault("status", status=500),
            Fault("status", status=503),
            Fault("delay", seconds=4.0),
            Fault("drop"),
            Fault("garbage"),
            Fault("status", status=502),
        )
        env = dict(
            fault_env, CODERM_POLICY_URL=server.url, CODERM_LLM_TIMEOUT_S="2", CODERM_LLM_BACKOFF_S="0.2"
        )
        workers.env = env
        workers.start_all()
        problems = write_problems(tmp_path / "p.jsonl", count=3, solutions=False)
        job_id = submit(env, problems, "--policy-backend", "sglang", "--coderm-backend", "replay", "-n", "4")
        assert_finished_exactly_once(env["CODERM_DATABASE_URL"], job_id)
        assert not server.state.faults  # every fault was met


def test_a_full_temporary_folder_under_the_sandbox(
    fault_env: dict[str, str], workers: Workers, tmp_path: Path
) -> None:
    """The sandbox worker's TMPDIR is full, and a solution fills the jail's own /tmp as well."""
    full = tmp_path / "full"
    full.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(full)], check=True)
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={full / 'fill'}", "bs=64k"], capture_output=True)
        for queue in QUEUES:
            workers.start(queue, dict(fault_env, TMPDIR=str(full)) if queue == "sandbox" else None)
        for worker in workers.running.values():
            wait_ready(worker)
        filler = (
            "def add(a, b):\n    with open('/tmp/fill', 'wb') as out:\n        try:\n"
            "            while True:\n                out.write(b'x' * 65536)\n        except OSError:\n"
            "            pass\n    return a + b\n"
        )
        problems = tmp_path / "p.jsonl"
        problems.write_text(
            json.dumps(
                {
                    "task_id": "fill",
                    "question": "add",
                    "solutions": [filler, SLOW_RIGHT, SLOW_WRONG, filler + "#"],
                    "unit_tests": ADD_TESTS,
                }
            )
            + "\n"  # fmt: skip
        )
        job_id = submit(fault_env, problems)
        assert_finished_exactly_once(fault_env["CODERM_DATABASE_URL"], job_id)
        rows = query(fault_env["CODERM_DATABASE_URL"], select(ExecutionResult.outcomes))
        assert all(outcomes == "PPI" for (outcomes,) in rows if outcomes.startswith("P")), rows
    finally:
        workers.stop_all()
        workers.running.clear()
        subprocess.run(["umount", "-l", str(full)], capture_output=True)
