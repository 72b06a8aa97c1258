"""The Python client and the message contract, against Postgres, RabbitMQ, Redis and real workers."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest
from celery import Celery
from kombu import Connection
from replay_problems import ADD_SOLUTIONS, ADD_TESTS, replay_problems
from services import WorkerProcess, rabbitmq_vhost, spawn_worker, stop_worker, wait_ready
from sqlalchemy import func, select

from orchestrator import client
from orchestrator.core.config import Settings
from orchestrator.core.db import session_scope
from orchestrator.core.models import ExecutionResult, Job, Problem, Selection, Solution, UnitTest
from orchestrator.runtime.celery_app import QUEUES

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def settings_of(env: dict[str, str]) -> Settings:
    return Settings(
        home=Path(env["CODERM_HOME"]),
        database_url=env["CODERM_DATABASE_URL"],
        broker_url=env["CODERM_BROKER_URL"],
        result_backend=env["CODERM_RESULT_BACKEND"],
    )


def wait_for_log(worker: WorkerProcess, needle: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in (log := worker.log_text()):
            return log
        time.sleep(0.2)
    raise AssertionError(f"{needle!r} not in the {worker.queue} worker's log:\n{worker.log_text()[-3000:]}")


def test_submit_wait_results_through_the_client(service_env: dict[str, str], workers: list) -> None:
    settings = settings_of(service_env)
    key = f"client-{uuid.uuid4().hex}"
    job_id = client.submit(
        replay_problems(3), chunk_size=2, idempotency_key=key, source="test_client", settings=settings
    )
    # The same key again: the first job, nothing sent again; with other options, a warning says so.
    assert client.submit(replay_problems(3), chunk_size=2, idempotency_key=key, settings=settings) == job_id
    with pytest.warns(UserWarning, match="differ"):
        assert client.submit(replay_problems(3), idempotency_key=key, settings=settings) == job_id
    progress = client.wait(job_id, timeout=180, poll_s=0.2, settings=settings)
    assert progress.done and progress.status == "completed" and progress.by_status == {"completed": 3}

    # The calling service makes a Celery app of its own, which becomes Celery's current app: the
    # client's next job still goes to coderm's queues.
    Celery("the-calling-service", broker="memory://", set_as_current=True)
    job_id = client.submit(replay_problems(3), chunk_size=2, source="test_client", settings=settings)

    progress = client.wait(job_id, timeout=180, poll_s=0.2, settings=settings)
    assert progress.done and progress.status == "completed" and progress.by_status == {"completed": 3}
    assert client.status(job_id, settings=settings) == progress
    summaries = client.results(job_id, settings=settings)
    assert [s.task_id for s in summaries] == ["add/0", "add/1", "add/2"]
    assert all(s.selected_solution == ADD_SOLUTIONS[1] and s.pass_count == 2 for s in summaries)
    # Cancelling a finished job changes nothing.
    assert client.cancel(job_id, settings=settings) == client.Cancellation(job_id, "completed", 0, 0)


def test_bad_input_to_the_client_writes_nothing(service_env: dict[str, str]) -> None:
    settings = settings_of(service_env)
    key = f"bad-{uuid.uuid4().hex}"
    with pytest.raises(client.InvalidMessageError, match=r"'problems.1.question' Field required"):
        client.submit(
            [{"task_id": "a", "question": "q"}, {"task_id": "b"}], idempotency_key=key, settings=settings
        )
    with pytest.raises(client.InvalidMessageError, match=r"'config.n_tests' Input should be greater"):
        client.submit([{"task_id": "a", "question": "q"}], n_tests=0, idempotency_key=key, settings=settings)
    with pytest.raises(client.NotFoundError, match="no job with id 'nope'"):
        client.status("nope", settings=settings)
    with session_scope(settings.effective_database_url) as session:
        assert session.scalar(select(Job.id).where(Job.idempotency_key == key)) is None


def test_messages_that_break_their_schema_are_rejected_once_with_the_reason(
    service_env: dict[str, str], workers: list
) -> None:
    by_queue = {w.queue: w for w in workers}
    producer = Celery(broker=service_env["CODERM_BROKER_URL"], backend=service_env["CODERM_RESULT_BACKEND"])
    key = f"rejected-{uuid.uuid4().hex}"
    problem = {"task_id": "add", "question": "add", "solutions": ADD_SOLUTIONS, "unit_tests": ADD_TESTS}
    bad = [
        ("coderm.orchestrator.plan_problems", ["seven"], {}, "'problem_ids' Input should be a valid list"),
        ("coderm.orchestrator.plan_problems", [[]], {}, "'problem_ids' List should have at least 1 item"),
        (
            "coderm.orchestrator.plan_problems",
            [],
            {"problem_ids": [1], "priority": "high"},
            "got an unexpected keyword argument 'priority'",
        ),
        ("coderm.voter.select_solution", ["seven"], {}, "'problem_id' Input should be a valid integer"),
        ("coderm.sandbox.execute_chunk", [1, 0, "all"], {}, "'solution_ids' Input should be a valid list"),
        (
            "coderm.orchestrator.submit_job",
            [],
            {"problems": [{"task_id": "x"}], "idempotency_key": key},
            "'problems.0.question' Field required",
        ),
        (
            "coderm.orchestrator.submit_job",
            [],
            {"problems": [problem], "config": {"n_solution": 2}, "idempotency_key": key},
            "'config.n_solution' Extra inputs are not permitted",
        ),
        (  # fits the schema, but only the database can tell there is no such probe
            "coderm.orchestrator.submit_job",
            [],
            {
                "problems": [problem],
                "config": {"scaling": {"policy": "threshold", "probe": 987654}},
                "idempotency_key": key,
            },
            "no probe version 987654: the greedy and threshold policies need one (`coderm probe train`)",
        ),
    ]
    sent = [
        (producer.send_task(name, args=args, kwargs=kwargs, queue=name.split(".")[1]), name, reason)
        for name, args, kwargs, reason in bad
    ]
    # A good job behind them on the same queues: once it is done, every bad message has been handled.
    good = producer.send_task(
        "coderm.orchestrator.submit_job", kwargs={"problems": [problem]}, queue="orchestrator"
    )
    job_id = good.get(timeout=120)
    assert (
        client.wait(job_id, timeout=180, poll_s=0.2, settings=settings_of(service_env)).status == "completed"
    )

    for result, name, reason in sent:
        log = by_queue[name.split(".")[1]].log_text()
        line = f"rejected message {name}[{result.id}]: {reason}"
        assert log.count(line) == 1, f"{line!r} not logged exactly once"  # rejected, never retried
    with session_scope(service_env["CODERM_DATABASE_URL"]) as session:
        assert session.scalar(select(Job.id).where(Job.idempotency_key == key)) is None
    assert all(w.process.poll() is None for w in workers), "a worker died"


def test_a_pickled_message_is_refused_without_being_unpickled(
    service_env: dict[str, str], workers: list, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled"

    class TouchOnUnpickle:
        def __reduce__(self) -> tuple[object, tuple[Path]]:
            return (Path.touch, (marker,))

    task_id = str(uuid.uuid4())
    with Connection(service_env["CODERM_BROKER_URL"]) as connection:
        connection.Producer().publish(
            [[TouchOnUnpickle()], {}, {"callbacks": None, "errbacks": None, "chain": None, "chord": None}],
            serializer="pickle",
            exchange="",
            routing_key="orchestrator",
            headers={
                "lang": "py",
                "task": "coderm.orchestrator.plan_problems",
                "id": task_id,
                "root_id": task_id,
            },
        )
    orchestrator = next(w for w in workers if w.queue == "orchestrator")
    wait_for_log(orchestrator, "Refusing to deserialize untrusted content of type pickle")
    # The worker goes on with the next message.
    job_id = client.submit(replay_problems(1), settings=settings_of(service_env))
    assert (
        client.wait(job_id, timeout=180, poll_s=0.2, settings=settings_of(service_env)).status == "completed"
    )
    assert not marker.exists(), "the pickle was loaded"
    assert f"Task coderm.orchestrator.plan_problems[{task_id}]" not in orchestrator.log_text()
    assert orchestrator.process.poll() is None


def test_a_cancelled_job_does_nothing_when_its_messages_arrive(
    service_env: dict[str, str], tmp_path: Path
) -> None:
    with rabbitmq_vhost() as broker:
        env = {**service_env, "CODERM_BROKER_URL": broker}
        settings = settings_of(env)
        job_id = client.submit(replay_problems(3), settings=settings)  # no worker consumes this vhost yet
        with pytest.raises(
            client.JobTimeoutError, match=rf"job {job_id} is still queued after 0.3 s: 0 of 3"
        ):
            client.wait(job_id, timeout=0.3, poll_s=0.1, settings=settings)

        assert client.cancel(job_id, settings=settings) == client.Cancellation(job_id, "cancelled", 3, 0)
        assert client.cancel(job_id, settings=settings) == client.Cancellation(job_id, "cancelled", 0, 0)

        worker = wait_ready(spawn_worker(env, ",".join(QUEUES), tmp_path))
        try:
            # Queues are first in, first out: when this job is done, the cancelled one's messages were taken.
            later = client.submit(replay_problems(1), settings=settings)
            assert client.wait(later, timeout=180, poll_s=0.2, settings=settings).status == "completed"
        finally:
            stop_worker(worker)
        # Two plans ran (a job's problems are planned in one batch): the cancelled job's, which did
        # nothing, and the later job's.
        plans = [
            line
            for line in worker.log_text().splitlines()
            if "plan_problems[" in line and "succeeded" in line
        ]
        assert len(plans) == 2

    progress = client.status(job_id, settings=settings)
    assert progress.status == "cancelled" and progress.by_status == {"cancelled": 3}
    with session_scope(settings.effective_database_url) as session:
        problem_ids = select(Problem.id).where(Problem.job_id == job_id)
        for model in (Solution, UnitTest, ExecutionResult, Selection):
            count = session.scalar(
                select(func.count()).select_from(model).where(model.problem_id.in_(problem_ids))
            )
            assert count == 0, f"a cancelled problem got {model.__tablename__}"


SLOW_TEST = (
    "import time\nimport unittest\n\nclass TestSlowly(unittest.TestCase):\n"
    "    def test_add(self):\n        time.sleep(100)\n        self.assertEqual(add(1, 2), 3)\n"
)


def test_cancel_with_terminate_stops_a_running_sandbox_chunk(
    service_env: dict[str, str], workers: list
) -> None:
    settings = settings_of(service_env)
    slow = {"task_id": "slow", "question": "add", "solutions": [ADD_SOLUTIONS[1]], "unit_tests": [SLOW_TEST]}
    job_id = client.submit([slow], sandbox={"time_limit_s": 200}, settings=settings)
    with session_scope(settings.effective_database_url) as session:
        problem_id = session.scalar(select(Problem.id).where(Problem.job_id == job_id))
    deadline = time.monotonic() + 120
    while not _in_sandbox(settings, problem_id):
        assert time.monotonic() < deadline, "the sandbox chunk never started"
        time.sleep(0.2)

    cancelled = client.cancel(job_id, terminate=True, settings=settings)
    assert cancelled == client.Cancellation(job_id, "cancelled", 1, 1)
    sandbox = next(w for w in workers if w.queue == "sandbox")
    wait_for_log(sandbox, "Terminating")

    # The sandbox worker (one process) is free again: a new job gets through it; had the chunk run
    # on, this job would have waited for it, and the chunk would have stored its row.
    later = client.submit(replay_problems(1), settings=settings)
    assert client.wait(later, timeout=180, poll_s=0.2, settings=settings).status == "completed"
    with session_scope(settings.effective_database_url) as session:
        assert session.scalar(select(func.count()).where(ExecutionResult.problem_id == problem_id)) == 0
        assert session.get_one(Problem, problem_id).status == "cancelled"
    assert sandbox.process.poll() is None


def _in_sandbox(settings: Settings, problem_id: int) -> bool:
    with session_scope(settings.effective_database_url) as session:
        return session.scalar(select(Problem.stage).where(Problem.id == problem_id)) == "sandbox"


def test_database_tls_comes_from_the_url(service_env: dict[str, str], coderm_cli) -> None:
    # The test server speaks no TLS: a client that requires it must refuse to talk in the clear.
    url = service_env["CODERM_DATABASE_URL"] + "?sslmode=require"
    shown = coderm_cli(["status", "any"], env={**service_env, "CODERM_DATABASE_URL": url}, timeout=60)
    assert shown.returncode == 2
    assert "server does not support SSL, but SSL was required" in shown.stderr


def test_broker_tls_comes_from_the_settings_and_nothing_is_written_without_a_broker(
    service_env: dict[str, str],
) -> None:
    settings = settings_of(service_env).model_copy(update={"broker_use_ssl": True})
    key = f"tls-{uuid.uuid4().hex}"
    with pytest.raises(
        client.ConfigurationError, match=r"the broker at amqp://guest:\*\*@.* is unreachable: .*SSL"
    ):
        client.submit(replay_problems(1), idempotency_key=key, settings=settings)
    with session_scope(settings.effective_database_url) as session:
        assert session.scalar(select(Job.id).where(Job.idempotency_key == key)) is None
