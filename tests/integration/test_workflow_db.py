"""The workflow's database side on the real Postgres and RabbitMQ: `advance`, the chunk messages,
a step's one writing transaction, the job-level allocation, repeated submissions and `resume`.

The steps' pure rules (`next_steps`) are tested in tests/unit/test_progress.py; here the same
decisions are read from rows, with the row locks and transactions they rely on.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import kombu
import pytest
from celery import Celery
from services import rabbitmq_vhost
from sqlalchemy import select, update

from agents.scaling.allocation import allocate_job_if_ready
from orchestrator.core.config import JobConfig, Settings
from orchestrator.core.db import session_scope
from orchestrator.core.errors import IdempotencyConflictError
from orchestrator.core.models import ExecutionResult, Problem, ProblemStatus, Solution, StageRun, UnitTest
from orchestrator.inputs.problem_files import ProblemSpec
from orchestrator.runtime.celery_app import QUEUES, create_app
from orchestrator.workflow import steps
from orchestrator.workflow.control import resume_job
from orchestrator.workflow.steps import TASKS, advance
from orchestrator.workflow.submit import create_job, submit

pytestmark = pytest.mark.integration

REFERENCE = "def f(x):\n    return x\n"


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def app(migrated_postgres_url: str, broker_url: str, tmp_path: Any) -> Iterator[Celery]:
    app = create_app(Settings(database_url=migrated_postgres_url, broker_url=broker_url, home=tmp_path))
    drain(app)  # what an earlier test left in the queues
    yield app
    drain(app)


def drain(app: Celery) -> list[tuple[str, list[Any]]]:
    """Every message waiting in coderm's queues, as (task name, args), taken off the broker."""
    taken = []
    with kombu.Connection(app.conf.broker_url) as connection:
        channel = connection.default_channel
        for queue in QUEUES:
            kombu.Queue(queue, channel=channel).declare()
            while (message := channel.basic_get(queue, no_ack=True)) is not None:
                args = json.loads(message.body)[0]
                taken.append((message.headers["task"], args))
    return sorted(taken, key=lambda item: (item[0], item[1]))


def running_problems(url: str, count: int, config: JobConfig, **fields: Any) -> list[int]:
    """A job of `count` problems, planned and running as `plan_problems` leaves them."""
    specs = [ProblemSpec(task_id=f"t{i}", question="q", reference_code=REFERENCE) for i in range(count)]
    job_id = create_job(url, specs, config)
    with session_scope(url) as session:
        session.execute(
            update(Problem)
            .where(Problem.job_id == job_id)
            .values(
                {
                    "status": ProblemStatus.RUNNING,
                    "n_solutions": config.n_solutions,
                    "n_tests": config.n_tests,
                }
                | fields
            )
        )
        return list(
            session.scalars(select(Problem.id).where(Problem.job_id == job_id).order_by(Problem.position))
        )


def add_samples(
    url: str, problem_id: int, model: type[Solution] | type[UnitTest], hashes: list[str | None]
) -> list[int]:
    """Samples with these code hashes (None: an invalid sample)."""
    with session_scope(url) as session:
        rows = [
            model(
                problem_id=problem_id,
                index=index,
                raw="x",
                code=None if code_hash is None else f"# {code_hash}",
                valid=code_hash is not None,
                code_hash=code_hash,
                backend="test",
                model="test",
            )
            for index, code_hash in enumerate(hashes)
        ]
        session.add_all(rows)
        session.flush()
        return [row.id for row in rows]


def advance_and_send(url: str, app: Celery, problem_id: int) -> list[tuple[str, list[Any]]]:
    steps.send_next(app, url, problem_id)
    return drain(app)


def test_advance_sends_each_sampler_once_and_marks_it_sent(migrated_postgres_url: str, app: Celery) -> None:
    url = migrated_postgres_url
    (problem_id,) = running_problems(url, 1, JobConfig(n_solutions=4, n_tests=4))
    assert advance_and_send(url, app, problem_id) == [
        (TASKS["coderm"], [problem_id]),
        (TASKS["policy"], [problem_id]),
    ]
    assert advance_and_send(url, app, problem_id) == []
    with session_scope(url) as session:
        assert set(session.get_one(Problem, problem_id).progress or {}) == {"policy", "coderm"}


def test_chunks_keep_copies_of_a_solution_together_and_leave_out_invalid_ones(
    migrated_postgres_url: str, app: Celery
) -> None:
    url = migrated_postgres_url
    (problem_id,) = running_problems(url, 1, JobConfig(n_solutions=6, n_tests=2, chunk_size=2))
    advance_and_send(url, app, problem_id)
    ids = add_samples(url, problem_id, Solution, ["a", "b", "a", None, "c", "b"])
    add_samples(url, problem_id, UnitTest, ["t1", "t2"])
    sent = advance_and_send(url, app, problem_id)
    # Distinct codes a, b, c in chunks of two: [a, a, b, b] and [c]; the invalid sample runs nowhere.
    assert sent == [
        (TASKS["execute"], [problem_id, 0, [ids[0], ids[2], ids[1], ids[5]]]),
        (TASKS["execute"], [problem_id, 1, [ids[4]]]),
    ]
    # The vote waits for every valid solution's row of the matrix.
    with session_scope(url) as session:
        session.add_all(
            ExecutionResult(
                problem_id=problem_id, solution_id=sid, outcomes="PP", durations_ms=[1, 1], passed=2
            )
            for sid in (ids[0], ids[2], ids[1], ids[5])
        )
    assert advance_and_send(url, app, problem_id) == []
    with session_scope(url) as session:
        session.add(
            ExecutionResult(
                problem_id=problem_id, solution_id=ids[4], outcomes="FF", durations_ms=[1, 1], passed=0
            )
        )
    assert advance_and_send(url, app, problem_id) == [(TASKS["vote"], [problem_id])]


def test_concurrent_advances_of_one_problem_send_its_steps_once(
    migrated_postgres_url: str, app: Celery
) -> None:
    url = migrated_postgres_url
    (problem_id,) = running_problems(url, 1, JobConfig(n_solutions=2, n_tests=2))
    second: list[Any] = []
    with session_scope(url) as session:
        first = advance(session, url, problem_id).messages
        # The problem's row is locked until this transaction ends: the second advance waits, then
        # finds both samplers sent.
        thread = threading.Thread(target=lambda: second.extend(_advance(url, problem_id)))
        thread.start()
        thread.join(timeout=1)
        assert thread.is_alive()
    thread.join(timeout=30)
    assert [m.task for m in first] == [TASKS["policy"], TASKS["coderm"]]
    assert second == []


def _advance(url: str, problem_id: int) -> list[steps.Message]:
    with session_scope(url) as session:
        return advance(session, url, problem_id).messages


def test_a_step_commits_its_work_stage_run_and_next_steps_together(
    migrated_postgres_url: str, app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = migrated_postgres_url
    config = JobConfig(n_solutions=2, n_tests=2, policy={"backend": "replay"})
    (problem_id,) = running_problems(url, 1, config, replay_solutions=[REFERENCE, "no code here"])
    advance_and_send(url, app, problem_id)
    sample_solutions = app.tasks[TASKS["policy"]]

    # A failure after the work, while deciding what follows: nothing of the step is kept.
    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("the database went away")

    monkeypatch.setattr("orchestrator.workflow.problem_task.advance", fail)
    with pytest.raises(RuntimeError):
        sample_solutions.run(problem_id)
    with session_scope(url) as session:
        assert session.scalars(select(Solution.id).where(Solution.problem_id == problem_id)).all() == []
        assert session.scalars(select(StageRun.id).where(StageRun.problem_id == problem_id)).all() == []
    assert drain(app) == []

    monkeypatch.undo()
    sample_solutions.run(problem_id)
    with session_scope(url) as session:
        valid = session.scalars(
            select(Solution.valid).where(Solution.problem_id == problem_id).order_by(Solution.index)
        ).all()
        assert valid == [True, False]
        (stage,) = session.scalars(select(StageRun).where(StageRun.problem_id == problem_id)).all()
        assert stage.stage == "policy" and stage.seconds > 0
    # Tests are not sampled yet: nothing follows the policy alone.
    assert drain(app) == []

    # A redelivered step stores nothing twice and records one run of the stage.
    sample_solutions.run(problem_id)
    with session_scope(url) as session:
        assert len(session.scalars(select(Solution.id).where(Solution.problem_id == problem_id)).all()) == 2
        assert len(session.scalars(select(StageRun.id).where(StageRun.problem_id == problem_id)).all()) == 1


def test_a_plan_step_plans_its_batch_in_one_transaction_and_fails_it_together(
    migrated_postgres_url: str, app: Celery, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = migrated_postgres_url
    monkeypatch.setattr("orchestrator.workflow.plan.PLAN_BATCH", 2)
    specs = [ProblemSpec(task_id=f"t{i}", question="q", reference_code=REFERENCE) for i in range(5)]
    submit(app, url, specs, JobConfig(n_solutions=2, n_tests=3))
    batches = [args[0] for _, args in drain(app)]
    assert sorted(len(batch) for batch in batches) == [1, 2, 2]
    first, *others = sorted(batches, key=len, reverse=True)
    cancelled = first[1]
    with session_scope(url) as session:
        session.execute(update(Problem).where(Problem.id == cancelled).values(status=ProblemStatus.CANCELLED))

    plan_problems = app.tasks[TASKS["plan"]]
    plan_problems.run(first)
    planned = first[0]
    with session_scope(url) as session:
        problems = {p.id: p for p in session.scalars(select(Problem).where(Problem.id.in_(first)))}
        assert (problems[planned].status, problems[planned].n_tests, problems[planned].stage) == (
            ProblemStatus.RUNNING,
            3,
            "plan",
        )
        assert problems[cancelled].status == ProblemStatus.CANCELLED and problems[cancelled].stage is None
        stages = session.execute(
            select(StageRun.problem_id, StageRun.stage).where(StageRun.problem_id.in_(first))
        )
        assert stages.all() == [(planned, "plan")]
    assert drain(app) == [(TASKS["coderm"], [planned]), (TASKS["policy"], [planned])]

    # A batch whose plan gave up fails every problem of it.
    failing = others[0]
    plan_problems.on_failure(RuntimeError("gave up"), "task-id", (failing,), {}, None)
    with session_scope(url) as session:
        errors = session.scalars(select(Problem.error).where(Problem.id.in_(failing))).all()
        assert errors == [f"{TASKS['plan']}: RuntimeError: gave up"] * len(failing)
        assert session.get_one(Problem, planned).status == ProblemStatus.RUNNING


def test_the_oracle_allocates_once_when_every_problem_is_ready(migrated_postgres_url: str) -> None:
    url = migrated_postgres_url
    config = JobConfig(n_solutions=4, n_tests=4, scaling={"policy": "oracle", "min_tests": 1, "max_tests": 8})
    ids = running_problems(url, 3, config, n_tests=None)
    # Problem 0 is easy (all its samples right), problem 1 hard (one right); problem 2 has no labels
    # and unjudged samples, so it is not ready and nothing is allocated.
    with session_scope(url) as session:
        session.execute(update(Problem).where(Problem.id == ids[0]).values(replay_labels=["pass"] * 4))
        session.execute(
            update(Problem).where(Problem.id == ids[1]).values(replay_labels=["pass", "fail", "fail", "fail"])
        )
    add_samples(url, ids[2], Solution, ["a", "b"])
    with session_scope(url) as session:
        assert allocate_job_if_ready(session, url, session.get_one(Problem, ids[0]).job_id) == []
    # Judged: problem 2 is ready too, and the budget (3 x 4 tests) goes where it gains most.
    with session_scope(url) as session:
        session.execute(update(Solution).where(Solution.problem_id == ids[2]).values(correct=False))
    with session_scope(url) as session:
        job_id = session.get_one(Problem, ids[0]).job_id
        assert allocate_job_if_ready(session, url, job_id) == ids
    with session_scope(url) as session:
        problems = [session.get_one(Problem, i) for i in ids]
        assert [p.allocation for p in problems] == ["oracle"] * 3
        assert sum(p.n_tests or 0 for p in problems) <= 12
        assert problems[1].n_tests > problems[0].n_tests
        assert [p.predicted_pass_rate for p in problems] == [1.0, 0.25, 0.0]
        # Allocated once: a later ready problem's step finds nothing left to do.
        assert allocate_job_if_ready(session, url, job_id) == []


def test_resume_sends_again_what_the_rows_say_is_next(migrated_postgres_url: str, app: Celery) -> None:
    url = migrated_postgres_url
    running, pending = running_problems(url, 2, JobConfig(n_solutions=2, n_tests=2))
    with session_scope(url) as session:
        session.execute(update(Problem).where(Problem.id == pending).values(status=ProblemStatus.PENDING))
        job_id = session.get_one(Problem, running).job_id
    advance_and_send(url, app, running)
    add_samples(url, running, Solution, ["a"])
    # The broker lost the coderm message: progress says sent, no test exists. Sent just now, so
    # resume trusts it to arrive, and only sends the plan the pending problem was never sent.
    first = resume_job(app, url, job_id)
    assert (first.restarted, first.recent) == (1, 1)
    assert drain(app) == [(TASKS["plan"], [[pending]])]
    # Without a grace period it sends again everything the rows say is next.
    resumed = resume_job(app, url, job_id, grace_s=0)
    assert resumed.restarted == 2
    # The policy step runs again too (its samples are stored, so it only continues the workflow).
    assert drain(app) == [
        (TASKS["coderm"], [running]),
        (TASKS["plan"], [[pending]]),
        (TASKS["policy"], [running]),
    ]
    with session_scope(url) as session:
        assert set(session.get_one(Problem, running).progress) == {"policy", "coderm"}
    # Resuming again at once sends nothing: every step it would send was sent within the grace.
    again = resume_job(app, url, job_id)
    assert (again.restarted, again.messages, again.recent) == (0, 0, 2)
    assert drain(app) == []


def test_a_repeated_submission_sends_nothing_and_a_different_one_is_told(
    migrated_postgres_url: str, app: Celery
) -> None:
    url = migrated_postgres_url
    key = f"key-{uuid.uuid4().hex}"
    specs = [ProblemSpec(task_id=f"t{i}", question="q", reference_code=REFERENCE) for i in range(3)]
    first = submit(app, url, specs, JobConfig(n_solutions=2), idempotency_key=key)
    assert not first.repeated and [(task, len(args[0])) for task, args in drain(app)] == [(TASKS["plan"], 3)]
    again = submit(app, url, specs, JobConfig(n_solutions=2), idempotency_key=key)
    assert (again.job_id, again.repeated, again.differs) == (first.job_id, True, False)
    assert drain(app) == []
    changed = submit(app, url, specs[:2], JobConfig(n_solutions=2), idempotency_key=key)
    assert (changed.job_id, changed.repeated, changed.differs) == (first.job_id, True, True)
    assert drain(app) == []
    with pytest.raises(IdempotencyConflictError, match=first.job_id):
        submit(app, url, specs, JobConfig(n_solutions=3), idempotency_key=key, strict=True)
    assert drain(app) == []


def test_a_repeated_submission_sends_what_the_first_wrote_but_never_sent(
    migrated_postgres_url: str, app: Celery
) -> None:
    url = migrated_postgres_url
    key = f"key-{uuid.uuid4().hex}"
    specs = [ProblemSpec(task_id=f"t{i}", question="q", reference_code=REFERENCE) for i in range(2)]
    # The first submission died between writing the job and sending its first steps.
    job_id = create_job(url, specs, JobConfig(), idempotency_key=key)
    again = submit(app, url, specs, JobConfig(), idempotency_key=key)
    assert again.job_id == job_id and again.repeated
    assert [(task, len(args[0])) for task, args in drain(app)] == [(TASKS["plan"], 2)]


def test_chunks_of_one_problem_write_at_once_without_a_deadlock(
    migrated_postgres_url: str, app: Celery
) -> None:
    # Rows that reference the problem take a key-share lock on its row; `advance` then wants it for
    # update. Two chunks writing at once must queue on the problem, not wait on each other.
    url = migrated_postgres_url
    (problem_id,) = running_problems(url, 1, JobConfig(n_solutions=2, n_tests=1))
    first, second = add_samples(url, problem_id, Solution, ["a", "b"])
    add_samples(url, problem_id, UnitTest, ["t"])
    execute = app.tasks[TASKS["execute"]]
    first_wrote, errors = threading.Event(), []

    def write(part: int, solution_id: int, hold_s: float) -> None:
        try:
            with execute.step(problem_id, "sandbox", part).write() as session:
                session.add(
                    ExecutionResult(
                        problem_id=problem_id,
                        solution_id=solution_id,
                        outcomes="P",
                        durations_ms=[1],
                        passed=1,
                    )
                )
                session.flush()
                if part == 0:
                    first_wrote.set()
                time.sleep(hold_s)
        except Exception as exc:  # a deadlock is reported in one of the two
            errors.append(exc)

    other = threading.Thread(target=lambda: (first_wrote.wait(10), write(1, second, 0)))
    other.start()
    write(0, first, 1.0)
    other.join(30)
    assert errors == []
    # The second to write saw both rows: it, and only it, sent the vote.
    assert [task for task, _ in drain(app)].count(TASKS["vote"]) == 1


def test_a_step_reads_what_the_step_that_sent_it_wrote(migrated_postgres_url: str, app: Celery) -> None:
    # A step is sent before its sender commits. Its first statement marks the problem, which waits
    # on the row lock the sender holds; its reads then see the sender's rows, not a problem without them.
    url = migrated_postgres_url
    (problem_id,) = running_problems(url, 1, JobConfig(n_solutions=2, n_tests=1))
    execute = app.tasks[TASKS["execute"]]
    seen: list[int] = []

    def read() -> None:
        with execute.step(problem_id, "sandbox", 0).read() as loaded:
            assert loaded is not None
            seen.append(
                len(
                    loaded.session.scalars(select(Solution.id).where(Solution.problem_id == problem_id)).all()
                )
            )

    with session_scope(url) as sender:
        steps.lock_problem(sender, problem_id)
        sender.add_all(
            Solution(problem_id=problem_id, index=i, raw="x", valid=True, backend="test", model="test")
            for i in range(2)
        )
        sender.flush()
        reader = threading.Thread(target=read)
        reader.start()
        reader.join(timeout=1)
        assert reader.is_alive()  # waiting for the sender's commit
    reader.join(timeout=30)
    assert seen == [2]
