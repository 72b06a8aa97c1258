"""What a step needs of its problem's job: its configuration and benchmark, read once per process.

Both are written at submission and never change, and every step of every problem needs the
configuration: reading (and validating) it afresh each time would cost each step a join and a
pydantic validation for nothing.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from sqlalchemy import select

from orchestrator.core.config import JobConfig
from orchestrator.core.db import read_scope
from orchestrator.core.models import Job


@dataclass(frozen=True)
class JobInfo:
    config: JobConfig
    benchmark: str | None


@functools.lru_cache(maxsize=256)
def job_info(database_url: str, job_id: str) -> JobInfo:
    """The configuration and benchmark of job `job_id` (its ids are never reused)."""
    with read_scope(database_url) as session:
        config, benchmark = session.execute(select(Job.config, Job.benchmark).where(Job.id == job_id)).one()
    return JobInfo(JobConfig.model_validate(config), benchmark)
