"""The per-problem workflow as a Celery canvas (DESIGN §5).

    plan ─┬─ policy.sample_solutions ──┬─ dispatch_execution ─ chord(sandbox chunks) ─ voter
          └─ coderm.sample_unit_tests ─┘

Dynamic scaling adds steps before the tests are sampled (orchestrator/allocation.py): the threshold
policy extracts the prompt's features before planning; greedy and oracle first prepare every
problem of the job (features, or solutions judged against ground truth), and the preparation that
finds the whole job ready allocates the budget and starts the rest of each workflow.

The two samplers run in parallel when the problem brings reference code for the CodeRM prompt;
otherwise CodeRM waits for the policy and is prompted with its first valid solution. How many
sandbox chunks there are is known only once the solutions exist, so `dispatch_execution` replaces
itself with the chord of chunks followed by the voter.
"""

from __future__ import annotations

from celery import chain, chord, group, shared_task
from celery.canvas import Signature
from sqlalchemy import func, select, update

from agents.coderm import sample_unit_tests
from agents.difficulty import extract_features
from agents.policy import sample_solutions
from agents.voter import select_solution
from orchestrator.allocation import JOB_LEVEL_POLICIES, plan_tests
from orchestrator.config import JobConfig
from orchestrator.db import session_scope
from orchestrator.metrics import after_commit, observe_problem_planned
from orchestrator.models import (
    FINISHED_PROBLEM_STATES,
    Job,
    JobStatus,
    Problem,
    ProblemStatus,
    Solution,
    utcnow,
)
from orchestrator.task_base import ProblemTask, is_active
from orchestrator.workflow_rules import coderm_waits_for_policy
from sandbox.tasks import execute_chunk, judge_ground_truth


def problem_workflow(
    problem_id: int, coderm_waits: bool, with_plan: bool = True, with_features: bool = False
) -> Signature:
    """The canvas that takes one problem from plan to selection.

    `with_features` first extracts the prompt's features (the threshold policy plans from them);
    without `with_plan` the problem was planned already (a job-level allocation started it).
    """
    samplers = [sample_solutions.si(problem_id), sample_unit_tests.si(problem_id)]
    sampling = chain(samplers) if coderm_waits else group(samplers)
    steps = [extract_features.si(problem_id)] if with_features else []
    steps += [plan_problem.si(problem_id)] if with_plan else []
    return chain(*steps, sampling, dispatch_execution.si(problem_id))


def job_preparation(problem_id: int, policy: str) -> Signature:
    """What a job-level allocation waits for: features (greedy), or judged solutions (oracle)."""
    if policy == "greedy":
        return chain(plan_problem.si(problem_id), extract_features.si(problem_id))
    return chain(
        plan_problem.si(problem_id), sample_solutions.si(problem_id), judge_ground_truth.si(problem_id)
    )


def start_problem_workflows(database_url: str, problem_ids: list[int], with_plan: bool = True) -> None:
    """Start the workflows of some problems of one job (its scaling policy decides their shape)."""
    with session_scope(database_url) as session:
        problems = list(
            session.scalars(select(Problem).where(Problem.id.in_(problem_ids)).order_by(Problem.position))
        )
        if not problems:
            return
        config = JobConfig.model_validate(problems[0].job.config)
        policy = config.scaling.policy
        canvases = [
            job_preparation(p.id, policy)
            if with_plan and policy in JOB_LEVEL_POLICIES
            else problem_workflow(
                p.id,
                coderm_waits_for_policy(p, config),
                with_plan,
                with_features=with_plan and policy == "threshold",
            )
            for p in problems
        ]
    for canvas in canvases:
        canvas.apply_async()


def chunk_ids(ids: list[int], size: int) -> list[list[int]]:
    return [ids[start : start + size] for start in range(0, len(ids), size)]


@shared_task(base=ProblemTask, bind=True, name="coderm.orchestrator.plan_problem")
def plan_problem(self: ProblemTask, problem_id: int) -> None:
    """Fix how many solutions and tests the problem gets, and mark it (and its job) running."""
    with self.stage(problem_id, "plan"), session_scope(self.database_url) as session:
        problem = session.get(Problem, problem_id)
        if problem is None or not is_active(session, problem_id):
            return
        config = JobConfig.model_validate(problem.job.config)
        if problem.status == ProblemStatus.PENDING:  # a rerun of this step counts nothing again
            benchmark = problem.job.benchmark
            after_commit(
                session, lambda: observe_problem_planned(benchmark, problem.n_tests or config.n_tests)
            )
        problem.n_solutions = config.n_solutions
        plan_tests(self.database_url, config, problem)
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


@shared_task(base=ProblemTask, bind=True, name="coderm.orchestrator.dispatch_execution")
def dispatch_execution(self: ProblemTask, problem_id: int) -> object:
    """Fan the valid solutions out to sandbox chunks, then vote."""
    with session_scope(self.database_url) as session:
        if not is_active(session, problem_id):
            return None
        problem = session.get(Problem, problem_id)
        assert problem is not None
        config = JobConfig.model_validate(problem.job.config)
        valid_ids = list(
            session.scalars(
                select(Solution.id)
                .where(Solution.problem_id == problem_id, Solution.valid)
                .order_by(Solution.index)
            )
        )
    chunks = chunk_ids(valid_ids, config.chunk_size)
    if not chunks:
        return self.replace(select_solution.si(problem_id))
    header = [execute_chunk.si(problem_id, part, ids) for part, ids in enumerate(chunks)]
    return self.replace(chord(header, select_solution.si(problem_id)))
