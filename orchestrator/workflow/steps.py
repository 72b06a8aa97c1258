"""What a problem does next, decided from the database (DESIGN §5, the per-problem workflow).

    plan ─┬─ policy.sample_solutions ──┬─ sandbox.execute_chunk x chunks ─ voter.select_solution
          └─ coderm.sample_unit_tests ─┘

Every step ends by calling `advance`, which locks the problem's row, reads what is done, and sends
the steps that have become possible: the two samplers after the plan (CodeRM waits for the policy
when only a policy sample can go in its prompt), the sandbox chunks once both have stored their
samples, the voter once every valid solution has its row of the matrix. The joins live in Postgres,
the system of record, not in the Celery result backend: a Redis that restarts empty, a broker that
redelivers, a worker killed mid-step, all leave the database saying what is done, and `advance`
(or `coderm resume`) carries on from there. Each step is idempotent, so a step sent twice costs
work, never data.

Dynamic scaling adds steps before the tests (agents/scaling/allocation.py): `threshold` and `greedy`
need the prompt's features; `oracle` judges the policy's solutions against ground truth first.
`greedy` and `oracle` then wait until the whole job is ready, and the step that finds it ready
allocates the budget and advances every problem.

`progress` on the problem row records when each step was sent (so a step is sent once, and `coderm
resume` can tell a step just sent from one lost long ago), and whether CodeRM found nothing to write
tests for.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from itertools import chain
from typing import Any, cast

from celery import Celery
from sqlalchemy import Integer, Table, bindparam, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from agents.scaling.allocation import plan_tests
from orchestrator.core.config import JobConfig, ScalingPolicy
from orchestrator.core.db import session_scope
from orchestrator.core.models import (
    FINISHED_PROBLEM_STATES,
    ExecutionResult,
    Problem,
    ProblemStatus,
    Solution,
    UnitTest,
)
from orchestrator.workflow.job_info import job_info
from orchestrator.workflow.rules import coderm_waits_for_policy

TASKS = {
    "plan": "coderm.orchestrator.plan_problems",
    "features": "coderm.policy.extract_features",
    "policy": "coderm.policy.sample_solutions",
    "judge": "coderm.sandbox.judge_ground_truth",
    "coderm": "coderm.coderm.sample_unit_tests",
    "execute": "coderm.sandbox.execute_chunk",
    "vote": "coderm.voter.select_solution",
}

NO_TESTS = "no tests"
"""Marker: CodeRM had no solution to show (no reference code, no valid policy sample)."""


def sent_recently(progress: dict[str, Any], cutoff: float) -> dict[str, Any]:
    """`progress` without the steps sent before `cutoff` (epoch seconds, as `time.time`), nor those
    of an unknown time; what is done (`NO_TESTS`) stays."""
    return {
        step: at
        for step, at in progress.items()
        if step == NO_TESTS or (isinstance(at, int | float) and at >= cutoff)
    }


@dataclass(frozen=True)
class ProblemState:
    """What is done for one problem, as `next_steps` needs it."""

    policy: ScalingPolicy
    planned: bool
    tests_decided: bool
    has_features: bool
    solutions_sampled: bool
    solutions_judged: bool
    tests_sampled: bool
    coderm_waits: bool
    execution_complete: bool
    sent: frozenset[str]


def next_steps(state: ProblemState) -> list[str]:
    """The steps that have become possible and were not sent yet, in the order to send them."""
    if not state.planned:
        return []
    steps = []
    if state.policy in ("greedy", "threshold") and not state.has_features:
        steps.append("features")
    # Solutions: once the number of tests is decided; the oracle samples first, to learn the pass rate.
    if state.policy == "oracle" or state.tests_decided:
        steps.append("policy")
    if state.policy == "oracle" and state.solutions_sampled and not state.solutions_judged:
        steps.append("judge")
    if state.tests_decided and (state.solutions_sampled or not state.coderm_waits):
        steps.append("coderm")
    if state.solutions_sampled and state.tests_sampled:
        steps.append("execute")
        if state.execution_complete and "execute" in state.sent:
            steps.append("vote")
    return [step for step in steps if step not in state.sent]


# The statements every step runs, built once: building a statement (and its cache key) costs
# SQLAlchemy more CPU than running it, and each of them runs for every step of every problem.
_PROBLEM_ID = bindparam("problem_id", type_=Integer)
_VALID = (Solution.problem_id == _PROBLEM_ID, Solution.valid)
_EXECUTED = select(ExecutionResult.id).where(ExecutionResult.solution_id == Solution.id).exists()
# One round trip for everything the rows say.
_DONE = select(
    select(Solution.id).where(Solution.problem_id == _PROBLEM_ID).exists(),
    select(Solution.id).where(*_VALID, Solution.correct.is_(None)).exists(),
    select(UnitTest.id).where(UnitTest.problem_id == _PROBLEM_ID).exists(),
    select(Solution.id).where(*_VALID, ~_EXECUTED).exists(),
)
_VALID_SOLUTIONS = select(Solution.id, Solution.code_hash).where(*_VALID).order_by(Solution.index)
_PROBLEMS = cast(Table, Problem.__table__)
_MARK_SENT = update(_PROBLEMS).where(_PROBLEMS.c.id == _PROBLEM_ID).values(progress=bindparam("sent"))
_LOCK_PROBLEMS = (
    select(Problem)
    .where(Problem.id.in_(bindparam("problem_ids", expanding=True)))
    .order_by(Problem.id)
    .with_for_update()
    .execution_options(populate_existing=True)
)


def _state(session: Session, problem: Problem, config: JobConfig) -> ProblemState:
    any_solution, any_unjudged, any_test, any_unexecuted = session.execute(
        _DONE, {"problem_id": problem.id}
    ).one()
    progress = problem.progress or {}
    return ProblemState(
        policy=config.scaling.policy,
        planned=problem.status == ProblemStatus.RUNNING,
        tests_decided=problem.n_tests is not None,
        has_features=problem.features is not None,
        solutions_sampled=any_solution,
        solutions_judged=problem.replay_labels is not None or not any_unjudged,
        tests_sampled=NO_TESTS in progress or any_test,
        coderm_waits=coderm_waits_for_policy(problem, config),
        execution_complete=not any_unexecuted,
        sent=frozenset(progress),
    )


@dataclass(frozen=True)
class Message:
    """A step to send: the task's name and its arguments."""

    task: str
    args: tuple[object, ...]


def chunk_solutions(solutions: list[tuple[int, str | None]], size: int) -> list[list[int]]:
    """Solution ids in chunks of at most `size` distinct codes, every copy of a code in its chunk.

    `solutions` are (id, code hash) in order. Samples repeat, and a chunk runs each distinct code
    once: keeping the copies together means no two chunks run the same code.
    """
    copies: dict[str | None, list[int]] = {}
    for solution_id, code_hash in solutions:
        copies.setdefault(code_hash, []).append(solution_id)
    groups = list(copies.values())
    return [list(chain.from_iterable(groups[start : start + size])) for start in range(0, len(groups), size)]


def ready_to_allocate(state: ProblemState) -> bool:
    """A greedy or oracle problem that has what its job's allocation needs, and no allocation yet."""
    if state.tests_decided or not state.planned:
        return False
    if state.policy == "greedy":
        return state.has_features
    return state.policy == "oracle" and state.solutions_sampled and state.solutions_judged


@dataclass(frozen=True)
class Advance:
    messages: list[Message]
    allocate_job: str | None = None
    """The job to try allocating, when this problem just became ready for it."""


def lock_problems(session: Session, problem_ids: list[int]) -> list[Problem]:
    """The problems' rows, locked until the transaction ends and read afresh (also where this
    session holds them already: a concurrent step may have changed them since). Locked in id order,
    so that two transactions that lock some of the same rows queue rather than deadlock."""
    return list(session.scalars(_LOCK_PROBLEMS, {"problem_ids": problem_ids}))


def lock_problem(session: Session, problem_id: int) -> Problem | None:
    """`lock_problems` of one problem: None where there is no such problem."""
    return next(iter(lock_problems(session, [problem_id])), None)


def advance(
    session: Session,
    database_url: str,
    problem_id: int,
    config: JobConfig | None = None,
    *,
    locked: Problem | None = None,
) -> Advance:
    """Lock the problem, decide its next steps, mark them sent; the caller sends the messages.

    The caller sends them before its transaction commits: if the commit is lost, the step that
    called `advance` runs again and sends them again, which the steps' idempotence absorbs.
    `config` is the job's, and `locked` the problem (`lock_problem`), where the caller has them.
    """
    # The problem's row only: the job's is shared by all its problems.
    problem = locked or lock_problem(session, problem_id)
    if problem is None or problem.status in FINISHED_PROBLEM_STATES:
        return Advance([])
    config = config or job_info(database_url, problem.job_id).config
    if problem.status == ProblemStatus.RUNNING and problem.n_tests is None:
        plan_tests(database_url, config, problem)  # threshold, once the features are in
    messages = []
    progress = dict(problem.progress or {})
    state = _state(session, problem, config)
    now = time.time()
    for step in next_steps(state):
        progress[step] = now
        if step != "execute":
            messages.append(Message(TASKS[step], (problem_id,)))
            continue
        valid = session.execute(_VALID_SOLUTIONS, {"problem_id": problem_id}).all()
        chunks = chunk_solutions(list(valid), config.chunk_size)
        messages.extend(Message(TASKS["execute"], (problem_id, part, ids)) for part, ids in enumerate(chunks))
        if not chunks:  # nothing to execute: straight to the vote
            progress["vote"] = now
            messages.append(Message(TASKS["vote"], (problem_id,)))
    if progress != problem.progress:
        # A statement of its own, not the ORM's flush: every step marks what it sends, and the
        # unit of work costs several times the UPDATE. The row is then as the session holds it.
        session.execute(_MARK_SENT, {"problem_id": problem_id, "sent": progress})
        set_committed_value(problem, "progress", progress)
    return Advance(messages, problem.job_id if ready_to_allocate(state) else None)


def mark_no_tests(problem: Problem) -> None:
    """Record that CodeRM had nothing to write tests for; `problem` is locked (`lock_problem`)."""
    problem.progress = dict(problem.progress or {}) | {NO_TESTS: "done"}


def send(app: Celery, messages: Iterable[Message]) -> None:
    """Send the messages on one broker connection; the routes follow from the task names."""
    messages = list(messages)
    if not messages:
        return
    with app.producer_or_acquire() as producer:
        for message in messages:
            app.send_task(message.task, args=message.args, producer=producer)


def send_next(app: Celery, database_url: str, problem_id: int) -> Advance:
    """`advance` and `send` in a transaction of their own: for a problem that no step of its own
    moves on (allocation, resume)."""
    with session_scope(database_url) as session:
        advanced = advance(session, database_url, problem_id)
        send(app, advanced.messages)
    return advanced
