"""How the two unit-test extractions (agents.extract_reference) differ on a job's stored tests."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.extract_reference import ExtractionDisagreements, compare_extractions
from agents.llm.replay import ReplayBackend
from orchestrator.core.models import Problem, UnitTest


def extraction_disagreements(session: Session, job_id: str) -> ExtractionDisagreements:
    """Both extractions re-run on every unit test the job stored (its raw completion; replayed
    tests are code already), whichever extraction the job used."""
    rows = session.execute(
        select(UnitTest.raw, UnitTest.backend)
        .join(Problem)
        .where(Problem.job_id == job_id)
        .execution_options(yield_per=1000)  # a paper-sized job stores 100 tests per problem
    )
    return compare_extractions((raw, backend == ReplayBackend.name) for raw, backend in rows)
