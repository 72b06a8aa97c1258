"""The policy agent: samples N candidate solutions of a problem (DESIGN §1, step 1)."""

from __future__ import annotations

from celery import shared_task

from agents.extract import check_solution_code, extract_solution
from agents.prompts import render_policy_prompt
from agents.sampling import already_sampled, problem_seed, sample_and_extract, store_samples
from orchestrator.core.models import Solution
from orchestrator.runtime.task_base import LLM_RETRY
from orchestrator.workflow.problem_task import ProblemTask


@shared_task(base=ProblemTask, bind=True, name="coderm.policy.sample_solutions", **LLM_RETRY)
def sample_solutions(self: ProblemTask, problem_id: int) -> None:
    step = self.step(problem_id, "policy")
    with step.read() as loaded:
        if loaded is None:
            return
        problem, config = loaded.problem, loaded.config
        # A redelivered step whose samples were stored only continues the workflow.
        done = already_sampled(loaded.session, Solution, problem_id)
        prompt = render_policy_prompt(problem.question, problem.policy_prompt, config.prompts)
        replay, n = problem.replay_solutions, problem.n_solutions or config.n_solutions
        seed = problem_seed(config.seed, problem.task_id)
    # Sampling takes long; no transaction stays open meanwhile.
    sampled = None
    if not done:
        sampled = sample_and_extract(
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
    with step.write() as session:
        if sampled is not None:
            store_samples(session, Solution, problem_id, *sampled)
