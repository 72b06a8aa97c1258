"""The end of a problem, and of its job once its last problem ends."""

from __future__ import annotations

from sqlalchemy import exists, select, update
from sqlalchemy.orm import Session

from orchestrator.core.models import FINISHED_PROBLEM_STATES, Job, JobStatus, Problem, ProblemStatus, utcnow
from orchestrator.observability.metrics import after_commit, observe_job_completed, observe_problem_finished
from orchestrator.reporting.evaluation import store_job_metrics


def lock_job(session: Session, job_id: str) -> None:
    """Lock a job's row until the transaction ends: problems that finish and a cancellation queue
    on it, so the last problem to finish sees all the others, and none undoes a cancel."""
    session.execute(select(Job.id).where(Job.id == job_id).with_for_update())


def finish_problem(
    session: Session, problem: Problem, status: ProblemStatus, benchmark: str | None, error: str | None = None
) -> None:
    """Mark a problem finished, and its job too once no problem of it is left. The caller holds the
    problem's lock (`steps.lock_problem`), so its status is current."""
    if problem.status in FINISHED_PROBLEM_STATES:
        return
    lock_job(session, problem.job_id)
    problem.status = status
    problem.error = error
    problem.finished_at = utcnow()
    session.flush()
    after_commit(session, lambda: observe_problem_finished(benchmark, failed=status == ProblemStatus.FAILED))
    unfinished = exists().where(
        Problem.job_id == problem.job_id, Problem.status.not_in(FINISHED_PROBLEM_STATES)
    )
    completed = session.execute(
        update(Job)
        .where(Job.id == problem.job_id, Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]), ~unfinished)
        .values(status=JobStatus.COMPLETED, finished_at=utcnow())
    )
    if completed.rowcount:  # type: ignore[attr-defined]
        metrics = store_job_metrics(session, problem.job_id)
        if metrics is not None:
            after_commit(session, lambda: observe_job_completed(benchmark, metrics))
