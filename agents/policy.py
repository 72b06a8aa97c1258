"""The policy agent: samples N candidate solutions of a problem (DESIGN §1, step 1).

A solution is stored as it will run: a `class Solution` answer to a problem whose tests call
top-level functions (LiveCodeBench) gets them, with the code as extracted kept beside it
(agents/function_form.py).
"""

from __future__ import annotations

from celery import shared_task

from agents.extract import check_solution_code, extract_solution
from agents.function_form import entry_names, in_function_form
from agents.prompts import render_policy_prompt
from agents.sampling import problem_seed, sample_and_extract, store_samples
from orchestrator.core.models import Solution
from orchestrator.runtime.task_base import LLM_RETRY
from orchestrator.workflow.problem_task import ProblemTask


@shared_task(base=ProblemTask, bind=True, name="coderm.policy.sample_solutions", **LLM_RETRY)
def sample_solutions(self: ProblemTask, problem_id: int) -> None:
    step = self.step(problem_id, "policy")
    with step.read(Solution) as loaded:
        if loaded is None:
            return
        problem, config = loaded.problem, loaded.config
        done = loaded.sampled  # a redelivered step whose samples were stored only continues the workflow
        prompt = render_policy_prompt(problem.question, problem.policy_prompt, config.prompts)
        replay, n = problem.replay_solutions, problem.n_solutions or config.n_solutions
        seed = problem_seed(config.seed, problem.task_id)
        # The functions its unit tests call: a `class Solution` answer gets them (LiveCodeBench).
        names = entry_names(problem.reference_code, problem.entry_point)
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
            lambda text: in_function_form(extract_solution(text), names),
            lambda code: in_function_form(check_solution_code(code), names),
        )
    with step.write() as session:
        if sampled is not None:
            store_samples(session, Solution, problem_id, *sampled)
