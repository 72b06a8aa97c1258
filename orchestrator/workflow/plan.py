"""The entry of the per-problem workflow: planning, and starting problems (DESIGN §5).

    plan ─┬─ policy.sample_solutions ──┬─ sandbox.execute_chunk x chunks ─ voter.select_solution
          └─ coderm.sample_unit_tests ─┘

The plan step fixes what a problem gets and marks it running; every step, this one included, then
hands over to `orchestrator.workflow.steps.advance`, which sends what has become possible next. The
joins (both samplers done, every chunk done, a whole job ready to allocate) are decided there,
from the database. A job's problems are planned in batches (`PLAN_BATCH`), one transaction each.
"""

from __future__ import annotations

from celery import Celery, shared_task
from sqlalchemy import update
from sqlalchemy.orm import Session

from agents.scaling.allocation import plan_tests
from orchestrator.core.models import Job, JobStatus, ProblemStatus, utcnow
from orchestrator.observability.metrics import after_commit, observe_problem_planned
from orchestrator.runtime.messages import PLAN_BATCH, PlanArguments
from orchestrator.workflow.problem_task import Loaded, ProblemTask
from orchestrator.workflow.steps import TASKS, Message, send


def start_problems(app: Celery, problem_ids: list[int]) -> None:
    """Send the plan step of the problems, in batches; the rest follows from there."""
    batches = (problem_ids[start : start + PLAN_BATCH] for start in range(0, len(problem_ids), PLAN_BATCH))
    send(app, (Message(TASKS["plan"], (batch,)) for batch in batches))


@shared_task(
    base=ProblemTask, bind=True, name="coderm.orchestrator.plan_problems", arguments_model=PlanArguments
)
def plan_problems(self: ProblemTask, problem_ids: list[int]) -> None:
    """Fix how many solutions and tests each problem gets, and mark it (and its job) running."""
    with self.steps(problem_ids, "plan").run_all() as batch:
        for loaded in batch:
            plan(self.database_url, loaded)


def plan(database_url: str, loaded: Loaded) -> None:
    """The plan of one problem, locked and loaded (`Step.run_all`)."""
    session, problem, config = loaded.session, loaded.problem, loaded.config
    problem.n_solutions = config.n_solutions
    plan_tests(database_url, config, problem)
    if problem.status == ProblemStatus.PENDING:  # a rerun of this step counts nothing again
        benchmark, tests = loaded.benchmark, problem.n_tests
        after_commit(session, lambda: observe_problem_planned(benchmark, tests or config.n_tests))
        # The problem's row is locked (`Step.run_all`): a cancellation waits for this transaction.
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
