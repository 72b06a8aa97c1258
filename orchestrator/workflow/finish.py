"""The end of a problem, and of its job once its last problem ends."""

from __future__ import annotations

from sqlalchemy import String, bindparam, exists, select, update
from sqlalchemy.orm import Session

from orchestrator.core.models import FINISHED_PROBLEM_STATES, Job, JobStatus, Problem, ProblemStatus, utcnow
from orchestrator.observability.metrics import after_commit, observe_job_completed, observe_problem_finished
from orchestrator.reporting.evaluation import store_job_metrics

# Built once (every problem's last step runs them): building a statement costs SQLAlchemy more
# CPU than running it. The session holds no job to keep in step with the UPDATE.
_JOB_ID = bindparam("job_id", type_=String)
_LOCK_JOB = select(Job.id).where(Job.id == _JOB_ID).with_for_update()
_COMPLETE_JOB = (
    update(Job)
    .where(
        Job.id == _JOB_ID,
        Job.status.in_([JobStatus.QUEUED, JobStatus.RUNNING]),
        ~exists().where(Problem.job_id == _JOB_ID, Problem.status.not_in(FINISHED_PROBLEM_STATES)),
    )
    .values(status=JobStatus.COMPLETED, finished_at=bindparam("finished_at"))
    .execution_options(synchronize_session=False)
)


def lock_job(session: Session, job_id: str) -> None:
    """Lock a job's row until the transaction ends: problems that finish and a cancellation queue
    on it, so the last problem to finish sees all the others, and none undoes a cancel."""
    session.execute(_LOCK_JOB, {"job_id": job_id})


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
    completed = session.execute(_COMPLETE_JOB, {"job_id": problem.job_id, "finished_at": utcnow()})
    if completed.rowcount:  # type: ignore[attr-defined]
        metrics = store_job_metrics(session, problem.job_id)
        if metrics is not None:
            after_commit(session, lambda: observe_job_completed(benchmark, metrics))
