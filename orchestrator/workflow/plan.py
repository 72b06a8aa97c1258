"""The entry of the per-problem workflow: planning, and starting problems (DESIGN §5).

    plan ─┬─ policy.sample_solutions ──┬─ sandbox.execute_chunk x chunks ─ voter.select_solution
          └─ coderm.sample_unit_tests ─┘

The plan step fixes what a problem gets and marks it running; every step, this one included, then
hands over to `orchestrator.workflow.steps.advance`, which sends what has become possible next. The
joins (both samplers done, every chunk done, a whole job ready to allocate) are decided there,
from the database.
"""

from __future__ import annotations

from celery import Celery, shared_task
from sqlalchemy import update
from sqlalchemy.orm import Session

from agents.scaling.allocation import plan_tests
from orchestrator.core.models import Job, JobStatus, ProblemStatus, utcnow
from orchestrator.observability.metrics import after_commit, observe_problem_planned
from orchestrator.workflow.problem_task import ProblemTask
from orchestrator.workflow.steps import TASKS, Message, send


def start_problems(app: Celery, problem_ids: list[int]) -> None:
    """Send the plan step of each problem; the rest follows from there."""
    send(app, (Message(TASKS["plan"], (problem_id,)) for problem_id in problem_ids))


@shared_task(base=ProblemTask, bind=True, name="coderm.orchestrator.plan_problem")
def plan_problem(self: ProblemTask, problem_id: int) -> None:
    """Fix how many solutions and tests the problem gets, and mark it (and its job) running."""
    with self.step(problem_id, "plan").run() as loaded:
        if loaded is None:
            return
        session, problem, config = loaded.session, loaded.problem, loaded.config
        problem.n_solutions = config.n_solutions
        plan_tests(self.database_url, config, problem)
        if problem.status == ProblemStatus.PENDING:  # a rerun of this step counts nothing again
            benchmark, tests = loaded.benchmark, problem.n_tests
            after_commit(session, lambda: observe_problem_planned(benchmark, tests or config.n_tests))
            # The problem's row is locked (`Step.run`): a cancellation waits for this transaction.
            problem.status = ProblemStatus.RUNNING
            problem.started_at = problem.started_at or utcnow()
            mark_job_running(session, problem.job_id)


_jobs_running: set[str] = set()
"""Jobs this process has marked running: a job never goes back to queued, so the other problems'
plans need not ask again (it is cleared when large; forgetting costs one statement)."""


def mark_job_running(session: Session, job_id: str) -> None:
    """Mark a queued job running (its first problem has started)."""
    if job_id in _jobs_running:
        return
    session.execute(
        update(Job).where(Job.id == job_id, Job.status == JobStatus.QUEUED).values(status=JobStatus.RUNNING)
    )
    if len(_jobs_running) > 1024:
        _jobs_running.clear()
    after_commit(session, lambda: _jobs_running.add(job_id))
