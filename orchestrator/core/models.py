"""The data model: jobs, problems, samples, the execution matrix and selections.

Postgres is the system of record; the embedded default uses the same schema in SQLite. Tasks pass
ids between each other and read and write these tables, so any worker on any host can pick up any
step of a problem.

    Job 1--* Problem 1--* Solution
                     1--* UnitTest
                     1--* ExecutionResult   (one row per solution: its outcome against every test)
                     1--1 Selection         (the voter's pick)
                     1--1 ProblemMetrics    (where ground truth exists: accuracy and test quality)
                     1--* StageRun          (when each step ran, where, and how long it took)
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, declared_attr, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


class ProblemStatus(enum.StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


FINISHED_PROBLEM_STATES = (ProblemStatus.COMPLETED, ProblemStatus.FAILED, ProblemStatus.CANCELLED)
FINISHED_JOB_STATES = (JobStatus.COMPLETED, JobStatus.CANCELLED)


class Base(DeclarativeBase):
    # Named constraints keep Alembic migrations identical on Postgres and SQLite.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class Job(Base):
    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    source: Mapped[str | None] = mapped_column(String(1024))
    config: Mapped[dict[str, Any]]
    idempotency_key: Mapped[str | None] = mapped_column(String(256), unique=True)
    # What the submission asked for (workflow.submit.content_hash), to tell a repeat from a change.
    content_hash: Mapped[str | None] = mapped_column(String(64))
    n_problems: Mapped[int] = mapped_column(Integer)
    benchmark: Mapped[str | None] = mapped_column(String(64))
    # Job-level evaluation (agents.scoring.JobMetrics as JSON), written when the job completes.
    metrics: Mapped[dict[str, Any] | None]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    problems: Mapped[list[Problem]] = relationship(back_populates="job", order_by="Problem.position")


class Problem(Base):
    __tablename__ = "problems"
    __table_args__ = (UniqueConstraint("job_id", "task_id", name="uq_problems_job_id_task_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    task_id: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), default=ProblemStatus.PENDING, index=True)
    stage: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)

    # What the agents need. A ready-made prompt (the CodeRM benchmark files) wins over the templates.
    question: Mapped[str] = mapped_column(Text)
    policy_prompt: Mapped[str | None] = mapped_column(Text)
    coderm_prompt: Mapped[str | None] = mapped_column(Text)
    reference_code: Mapped[str | None] = mapped_column(Text)
    entry_point: Mapped[str | None] = mapped_column(String(256))
    ground_truth: Mapped[str | None] = mapped_column(Text)
    replay_solutions: Mapped[list[Any] | None]
    replay_unit_tests: Mapped[list[Any] | None]
    # Correctness of each replayed solution as its source labelled it (CodeRM's `plus_status`).
    replay_labels: Mapped[list[Any] | None]

    # The plan: how many samples of each kind this problem gets.
    n_solutions: Mapped[int | None] = mapped_column(Integer)
    n_tests: Mapped[int | None] = mapped_column(Integer)
    # Dynamic scaling: the policy that chose n_tests, and what it went by. The features (float32
    # bytes) are the policy model's hidden state of the prompt, kept so probes can be retrained.
    allocation: Mapped[str | None] = mapped_column(String(16))
    predicted_pass_rate: Mapped[float | None] = mapped_column(Float)
    features: Mapped[bytes | None] = mapped_column(LargeBinary)
    feature_source: Mapped[str | None] = mapped_column(String(512))
    # Which steps of the workflow were sent (orchestrator/workflow/steps.py), so each is sent once.
    progress: Mapped[dict[str, Any] | None]

    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    job: Mapped[Job] = relationship(back_populates="problems")
    solutions: Mapped[list[Solution]] = relationship(order_by="Solution.index", viewonly=True)
    unit_tests: Mapped[list[UnitTest]] = relationship(order_by="UnitTest.index", viewonly=True)
    selection: Mapped[Selection | None] = relationship(viewonly=True)

    @property
    def has_ground_truth(self) -> bool:
        """A test program or labels to score its solutions by: the voter scores it (test quality
        too), and the sandbox runs its whole matrix unless the job says otherwise."""
        return self.ground_truth is not None or self.replay_labels is not None


class _Sample:
    """Columns shared by everything an LLM wrote: enough to audit and re-score without the model."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    index: Mapped[int] = mapped_column(Integer)
    raw: Mapped[str] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(Text)
    valid: Mapped[bool] = mapped_column(Boolean)
    invalid_reason: Mapped[str | None] = mapped_column(String(64))
    code_hash: Mapped[str | None] = mapped_column(String(64))
    finish_reason: Mapped[str | None] = mapped_column(String(32))
    prompt_tokens: Mapped[int | None] = mapped_column(Integer)
    completion_tokens: Mapped[int | None] = mapped_column(Integer)
    # The sample's time, queued and generating, and the queued part where the server reports it.
    latency_s: Mapped[float | None] = mapped_column(Float)
    queue_s: Mapped[float | None] = mapped_column(Float)
    backend: Mapped[str] = mapped_column(String(32))
    model: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @declared_attr
    def problem_id(cls) -> Mapped[int]:
        return mapped_column(ForeignKey("problems.id", ondelete="CASCADE"), index=True)


class Solution(_Sample, Base):
    __tablename__ = "solutions"
    __table_args__ = (UniqueConstraint("problem_id", "index", name="uq_solutions_problem_id_index"),)

    # The code as extracted from the completion, where the code run (`code`) differs from it: a
    # LiveCodeBench `class Solution` answer put in the function form its tests call
    # (agents/function_form.py). None when `code` is the extracted code itself.
    extracted_code: Mapped[str | None] = mapped_column(Text)
    # Ground truth, where the problem has it: the outcome against its own tests, and what that means.
    ground_truth_outcome: Mapped[str | None] = mapped_column(String(1))
    correct: Mapped[bool | None] = mapped_column(Boolean)


class UnitTest(_Sample, Base):
    __tablename__ = "unit_tests"
    __table_args__ = (UniqueConstraint("problem_id", "index", name="uq_unit_tests_problem_id_index"),)

    # A class without test methods passes every solution, as in the paper's harness; this flags it.
    test_methods: Mapped[int | None] = mapped_column(Integer)


class ExecutionResult(Base):
    """One solution against every unit test of its problem: a row of the execution matrix.

    `outcomes` holds one letter per unit test, in the order of `UnitTest.index` (see
    `sandbox.outcomes.Outcome`); `durations_ms` the matching wall times. Storing a row per solution
    rather than per pair keeps a 100 x 100 problem at 100 rows, written in bulk.
    """

    __tablename__ = "execution_results"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id", ondelete="CASCADE"), index=True)
    solution_id: Mapped[int] = mapped_column(ForeignKey("solutions.id", ondelete="CASCADE"), unique=True)
    outcomes: Mapped[str] = mapped_column(Text)
    durations_ms: Mapped[list[Any]]
    passed: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Selection(Base):
    """The voter's pick for a problem, with the tie set it drew from."""

    __tablename__ = "selections"

    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id", ondelete="CASCADE"), primary_key=True)
    solution_id: Mapped[int | None] = mapped_column(ForeignKey("solutions.id", ondelete="CASCADE"))
    pass_count: Mapped[int] = mapped_column(Integer)
    tests_used: Mapped[int] = mapped_column(Integer)
    tie_set: Mapped[list[Any]]
    top_set_size: Mapped[int] = mapped_column(Integer)
    seed: Mapped[int] = mapped_column(Integer)
    # The strategy that picked (agents.selection: paper, codet, majority).
    strategy: Mapped[str] = mapped_column(String(16), default="paper")
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProblemMetrics(Base):
    """A scored problem: the paper's accuracies and the confusion counts of its unit tests.

    Counts rather than rates, so job-level figures pool them exactly as the paper does.
    """

    __tablename__ = "problem_metrics"

    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id", ondelete="CASCADE"), primary_key=True)
    samples: Mapped[int] = mapped_column(Integer)
    correct_samples: Mapped[int] = mapped_column(Integer)
    vanilla: Mapped[float] = mapped_column(Float)
    # Over the valid samples only: the paper's vanilla (agents.scoring); none for rows scored before.
    vanilla_valid: Mapped[float | None] = mapped_column(Float)
    best_of_n: Mapped[float] = mapped_column(Float)
    oracle: Mapped[bool] = mapped_column(Boolean)
    individual: Mapped[dict[str, Any]]
    combined: Mapped[dict[str, Any]]
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Probe(Base):
    """A trained difficulty probe (agents.scaling.probe), versioned, in the database for every worker."""

    __tablename__ = "probes"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    feature_source: Mapped[str] = mapped_column(String(512), index=True)
    report: Mapped[dict[str, Any]]
    trained_on: Mapped[dict[str, Any]]
    checkpoint: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StageRun(Base):
    """When one step of a problem ran; `part` tells the sandbox chunks apart."""

    __tablename__ = "stage_runs"
    __table_args__ = (
        UniqueConstraint("problem_id", "stage", "part", name="uq_stage_runs_problem_id_stage_part"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id", ondelete="CASCADE"), index=True)
    stage: Mapped[str] = mapped_column(String(32))
    part: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(256))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    seconds: Mapped[float] = mapped_column(Float)
