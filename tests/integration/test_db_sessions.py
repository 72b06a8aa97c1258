"""The database layer's round-trip savers, against the real Postgres: pinging only idle pooled
connections, sessions without a transaction, and upserts."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.pool import NullPool

from orchestrator.core import db
from orchestrator.core.config import JobConfig
from orchestrator.core.models import Problem, StageRun, utcnow
from orchestrator.inputs.problem_files import ProblemSpec
from orchestrator.workflow.submit import create_job


def _backend_pid(url: str) -> int:
    with db.session_scope(url) as session:
        return int(session.scalar(text("SELECT pg_backend_pid()")))


def _terminate(url: str, pid: int) -> None:
    """End a backend from a connection of its own, as a database restart would."""
    admin = create_engine(db.get_engine(url).url, poolclass=NullPool)
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_a_pooled_connection_the_database_closed_while_idle_is_replaced(
    migrated_postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = migrated_postgres_url
    db.get_engine(url).dispose()
    pid = _backend_pid(url)
    _terminate(url, pid)  # the connection stays in the pool, dead
    monkeypatch.setattr(db, "PING_AFTER_IDLE_S", 0.0)  # every pooled connection counts as idle
    # Pinged before it is lent: the dead connection is found out and a new one lent instead.
    assert _backend_pid(url) != pid


def test_a_connection_in_steady_use_is_not_pinged(migrated_postgres_url: str) -> None:
    url = migrated_postgres_url
    db.get_engine(url).dispose()
    pid = _backend_pid(url)
    _terminate(url, pid)
    # Returned a moment ago: lent without a ping, so the statement itself meets the closed
    # connection (a step then retries, TRANSIENT_ERRORS), and the pool replaces it afterwards.
    with pytest.raises(OperationalError):
        _backend_pid(url)
    assert _backend_pid(url) != pid


def test_a_read_scope_statement_commits_on_its_own(migrated_postgres_url: str) -> None:
    url = migrated_postgres_url
    job_id = create_job(url, [ProblemSpec(task_id="t", question="q")], JobConfig())
    with db.read_scope(url) as session:
        problem_id = session.scalar(select(Problem.id).where(Problem.job_id == job_id))
        session.execute(text("UPDATE problems SET stage = 'marked' WHERE id = :id"), {"id": problem_id})
        # Seen from another connection before this session ends: no transaction was open.
        with db.session_scope(url) as other:
            assert other.scalar(select(Problem.stage).where(Problem.id == problem_id)) == "marked"


def test_upsert_inserts_then_replaces_the_row_with_the_same_key(migrated_postgres_url: str) -> None:
    url = migrated_postgres_url
    job_id = create_job(url, [ProblemSpec(task_id="t", question="q")], JobConfig())
    key = ["problem_id", "stage", "part"]
    with db.session_scope(url) as session:
        problem_id = session.scalar(select(Problem.id).where(Problem.job_id == job_id))
        for seconds in (1.0, 2.5):
            row = {"problem_id": problem_id, "stage": "vote", "part": 0, "worker": "w", "seconds": seconds}
            row |= {"started_at": utcnow(), "finished_at": utcnow()}
            session.execute(db.upsert(session, StageRun, key, ["worker", "seconds"]), row)
    with db.session_scope(url) as session:
        runs = session.execute(select(StageRun.seconds).where(StageRun.problem_id == problem_id)).all()
    assert [run.seconds for run in runs] == [2.5]
