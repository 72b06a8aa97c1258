"""Creating jobs and finishing problems against the real Postgres."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from orchestrator.core.config import JobConfig
from orchestrator.core.db import session_scope
from orchestrator.core.models import Job, Problem, ProblemStatus
from orchestrator.inputs.problem_files import ProblemSpec
from orchestrator.workflow.finish import finish_problem
from orchestrator.workflow.steps import lock_problem
from orchestrator.workflow.submit import create_job

pytestmark = pytest.mark.integration


def specs(count: int) -> list[ProblemSpec]:
    return [ProblemSpec(task_id=f"t{i}", question="q") for i in range(count)]


def test_job_and_problems_are_written_together(migrated_postgres_url: str) -> None:
    job_id = create_job(migrated_postgres_url, specs(3), JobConfig(n_solutions=5), source="x.jsonl")
    with session_scope(migrated_postgres_url) as session:
        job = session.get_one(Job, job_id)
        assert job.status == "queued" and job.n_problems == 3 and job.config["n_solutions"] == 5
        positions = session.scalars(select(Problem.position).where(Problem.job_id == job_id)).all()
        assert sorted(positions) == [0, 1, 2]


def test_idempotency_key_returns_the_first_job(migrated_postgres_url: str) -> None:
    key = f"key-{uuid.uuid4().hex}"
    first = create_job(migrated_postgres_url, specs(2), JobConfig(), idempotency_key=key)
    second = create_job(migrated_postgres_url, specs(2), JobConfig(), idempotency_key=key)
    assert first == second
    with session_scope(migrated_postgres_url) as session:
        assert session.scalar(select(Job.n_problems).where(Job.idempotency_key == key)) == 2


def test_the_job_completes_when_its_last_problem_finishes(migrated_postgres_url: str) -> None:
    job_id = create_job(migrated_postgres_url, specs(2), JobConfig())
    with session_scope(migrated_postgres_url) as session:
        ids = session.scalars(
            select(Problem.id).where(Problem.job_id == job_id).order_by(Problem.position)
        ).all()
        finish_problem(session, lock_problem(session, ids[0]), ProblemStatus.COMPLETED, None)
    with session_scope(migrated_postgres_url) as session:
        assert session.get_one(Job, job_id).status == "queued"
        finish_problem(session, lock_problem(session, ids[1]), ProblemStatus.FAILED, None, error="boom")
    with session_scope(migrated_postgres_url) as session:
        job = session.get_one(Job, job_id)
        assert job.status == "completed" and job.finished_at is not None
        assert session.get_one(Problem, ids[1]).error == "boom"
        # Finishing again changes nothing.
        finish_problem(session, lock_problem(session, ids[1]), ProblemStatus.COMPLETED, None)
        assert session.get_one(Problem, ids[1]).status == "failed"
