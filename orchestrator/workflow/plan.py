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
from sqlalchemy import func, update

from agents.scaling.allocation import plan_tests
from orchestrator.core.models import FINISHED_PROBLEM_STATES, Job, JobStatus, Problem, ProblemStatus, utcnow
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
            benchmark, tests = problem.job.benchmark, problem.n_tests
            after_commit(session, lambda: observe_problem_planned(benchmark, tests or config.n_tests))
        # Conditional, so a cancellation that lands after the check above is not undone.
        session.execute(
            update(Problem)
            .where(Problem.id == problem_id, Problem.status.not_in(FINISHED_PROBLEM_STATES))
            .values(status=ProblemStatus.RUNNING, started_at=func.coalesce(Problem.started_at, utcnow()))
        )
        session.execute(
            update(Job)
            .where(Job.id == problem.job_id, Job.status == JobStatus.QUEUED)
            .values(status=JobStatus.RUNNING)
        )
