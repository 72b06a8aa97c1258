"""The sandbox task's early exit on the real Postgres: chunks of a problem share the best pass count
through their stored rows, pruned pairs are stored as N, a pruned chunk delivered again keeps what
it committed, and a problem with ground truth keeps its full matrix."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from celery import Celery
from services import rabbitmq_vhost
from sqlalchemy import select, update

from orchestrator.core.config import JobConfig, Settings
from orchestrator.core.db import session_scope
from orchestrator.core.models import ExecutionResult, Problem, ProblemStatus, Solution, UnitTest
from orchestrator.inputs.problem_files import ProblemSpec
from orchestrator.runtime.celery_app import create_app
from orchestrator.workflow.steps import TASKS
from orchestrator.workflow.submit import create_job

pytestmark = pytest.mark.integration

RIGHT = "def f(x):\n    return x + 1\n"
WRONG = [
    "def f(x):\n    return x\n",
    "def f(x):\n    return 1 if x == 0 else x\n",
    "def f(x):\n    return 2\n",
]
# Test i checks f(i) == i + 1: RIGHT passes all, WRONG[1] test 0, WRONG[2] test 1, WRONG[0] none.
TESTS = [
    f"import unittest\n\nclass T{i}(unittest.TestCase):\n    def test_it(self):\n        self.assertEqual(f({i}), {i + 1})\n"
    for i in range(5)
]


@pytest.fixture(scope="module")
def broker_url() -> Iterator[str]:
    with rabbitmq_vhost() as url:
        yield url


@pytest.fixture
def app(migrated_postgres_url: str, broker_url: str, tmp_path: Any) -> Celery:
    return create_app(Settings(database_url=migrated_postgres_url, broker_url=broker_url, home=tmp_path))


def problem_with_samples(
    url: str, config: JobConfig, ground_truth: str | None = None
) -> tuple[int, list[int]]:
    """A running problem with RIGHT and WRONG as its solutions and TESTS as its unit tests, as the
    samplers store them (its steps marked sent, so that a chunk's commit sends nothing more)."""
    spec = ProblemSpec(task_id="f", question="q", ground_truth=ground_truth)
    job_id = create_job(url, [spec], config)
    with session_scope(url) as session:
        problem_id = session.scalar(select(Problem.id).where(Problem.job_id == job_id))
        assert problem_id is not None
        session.execute(
            update(Problem)
            .where(Problem.id == problem_id)
            .values(
                status=ProblemStatus.RUNNING,
                n_solutions=4,
                n_tests=len(TESTS),
                progress={step: 1.0 for step in ("policy", "coderm", "execute", "vote")},
            )
        )
        common = {"problem_id": problem_id, "raw": "x", "valid": True, "backend": "test", "model": "test"}
        solutions = [
            Solution(index=i, code=code, code_hash=f"s{i}", **common)
            for i, code in enumerate([RIGHT, *WRONG])
        ]
        tests = [UnitTest(index=i, code=code, code_hash=f"t{i}", **common) for i, code in enumerate(TESTS)]
        session.add_all([*solutions, *tests])
        session.flush()
        return problem_id, [solution.id for solution in solutions]


def stored(url: str, problem_id: int) -> dict[int, tuple[int, str, int]]:
    """(row id, outcomes, passed) by solution id."""
    with session_scope(url) as session:
        rows = session.execute(
            select(
                ExecutionResult.solution_id,
                ExecutionResult.id,
                ExecutionResult.outcomes,
                ExecutionResult.passed,
            ).where(ExecutionResult.problem_id == problem_id)
        ).all()
        return {solution_id: (row_id, outcomes, passed) for solution_id, row_id, outcomes, passed in rows}


def test_a_later_chunk_prunes_against_the_stored_best_and_a_redelivery_keeps_its_rows(
    migrated_postgres_url: str, app: Celery
) -> None:
    url = migrated_postgres_url
    problem_id, (right, *wrong) = problem_with_samples(url, JobConfig(chunk_size=1))
    execute = app.tasks[TASKS["execute"]]
    execute.run(problem_id, 0, [right])
    execute.run(problem_id, 1, wrong)
    rows = stored(url, problem_id)
    assert rows[right][1:] == ("PPPPP", 5)
    # Against the best of 5 stored before it started, a wrong solution stops at its first failure
    # (in whatever order its tests ran: that depends on what the other jail found first).
    for solution_id in wrong:
        outcomes, passed = rows[solution_id][1:]
        assert outcomes.count("F") == 1 and "N" in outcomes and passed == outcomes.count("P"), outcomes

    execute.run(problem_id, 1, wrong)  # delivered again after its commit: nothing runs again
    assert stored(url, problem_id) == rows


def test_a_problem_with_ground_truth_keeps_its_full_matrix_unless_told_to_prune(
    migrated_postgres_url: str, app: Celery
) -> None:
    url = migrated_postgres_url
    ground_truth = "assert f(0) == 1 and f(3) == 4\n"
    execute = app.tasks[TASKS["execute"]]
    for config, pruned in (
        (JobConfig(), False),
        (JobConfig(prune=True), True),
        (JobConfig(prune=False), False),
    ):
        problem_id, (right, *wrong) = problem_with_samples(url, config, ground_truth=ground_truth)
        execute.run(problem_id, 0, [right])
        execute.run(problem_id, 1, wrong)
        outcomes = [outcomes for _, outcomes, _ in stored(url, problem_id).values()]
        assert any("N" in row for row in outcomes) is pruned
        with session_scope(url) as session:  # judged against ground truth either way
            correct = session.scalars(select(Solution.correct).where(Solution.problem_id == problem_id)).all()
        assert sorted(correct) == [False, False, False, True]
