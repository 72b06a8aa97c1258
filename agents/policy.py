"""The policy agent: samples N candidate solutions of a problem (DESIGN §1, step 1)."""

from __future__ import annotations

from celery import shared_task

from agents.extract import check_solution_code, extract_solution
from agents.prompts import render_policy_prompt
from agents.sampling import already_sampled, problem_seed, sample_and_extract, store_samples
from orchestrator.core.config import JobConfig
from orchestrator.core.db import session_scope
from orchestrator.core.models import Solution
from orchestrator.runtime.task_base import LLM_RETRY
from orchestrator.workflow.problem_task import ProblemTask, active_problem


@shared_task(base=ProblemTask, bind=True, name="coderm.policy.sample_solutions", **LLM_RETRY)
def sample_solutions(self: ProblemTask, problem_id: int) -> None:
    with self.stage(problem_id, "policy"):
        _sample_solutions(self, problem_id)
    self.continue_problem(problem_id)


def _sample_solutions(self: ProblemTask, problem_id: int) -> None:
    with session_scope(self.database_url) as session:
        problem = active_problem(session, problem_id)
        if problem is None or already_sampled(session, Solution, problem_id):
            return
        config = JobConfig.model_validate(problem.job.config)
        prompt = render_policy_prompt(problem.question, problem.policy_prompt, config.prompts)
        replay, n = problem.replay_solutions, problem.n_solutions or config.n_solutions
        seed = problem_seed(config.seed, problem.task_id)

    # Sampling takes long; no transaction stays open meanwhile.
    backend, model, extracted = sample_and_extract(
        "policy",
        config.policy,
        self.settings,
        replay,
        prompt,
        n,
        seed,
        extract_solution,
        check_solution_code,
    )
    with session_scope(self.database_url) as session:
        store_samples(session, Solution, problem_id, backend, model, extracted)
