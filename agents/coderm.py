"""The CodeRM agent: samples M unit tests of a problem (DESIGN §1, step 2).

One prompt per problem, never one per candidate: the question and ONE solution, the problem's
reference code if it has one, else the first valid policy sample.
"""

from __future__ import annotations

from celery import shared_task
from celery.utils.log import get_task_logger
from sqlalchemy import select

from agents.extract_reference import unit_test_extraction
from agents.prompts import render_coderm_prompt
from agents.sampling import problem_seed, sample_and_extract, store_samples
from orchestrator.core.models import Problem, Solution, UnitTest
from orchestrator.runtime.task_base import LLM_RETRY
from orchestrator.workflow.problem_task import ProblemTask
from orchestrator.workflow.rules import coderm_waits_for_policy, replays_unit_tests
from orchestrator.workflow.steps import mark_no_tests

logger = get_task_logger(__name__)


@shared_task(base=ProblemTask, bind=True, name="coderm.coderm.sample_unit_tests", **LLM_RETRY)
def sample_unit_tests(self: ProblemTask, problem_id: int) -> None:
    step = self.step(problem_id, "coderm")
    with step.read(UnitTest) as loaded:
        if loaded is None:
            return
        session, problem, config = loaded.session, loaded.problem, loaded.config
        prompt, no_tests = None, False
        # A redelivered step whose samples were stored only continues the workflow.
        if not loaded.sampled:
            # A replayed sample needs no prompt, so no policy sample is looked up for one.
            code = problem.reference_code
            if code is None and not replays_unit_tests(problem, config):
                code = session.scalar(
                    select(Solution.code)
                    .where(Solution.problem_id == problem_id, Solution.valid)
                    .order_by(Solution.index)
                    .limit(1)
                )
            if code is None and coderm_waits_for_policy(problem, config):
                logger.info("problem %s has no valid solution to show CodeRM; no tests sampled", problem_id)
                no_tests = True
            else:
                prompt = render_coderm_prompt(
                    problem.question, code or "", problem.coderm_prompt, config.prompts
                )
        replay, n = problem.replay_unit_tests, problem.n_tests or config.n_tests
        seed = problem_seed(config.seed, problem.task_id) + 1
    sampled = None
    if prompt is not None:
        sampled = sample_and_extract(
            "coderm",
            config.coderm,
            self.settings,
            replay,
            prompt,
            n,
            seed,
            *unit_test_extraction(config.extraction),
        )
    with step.write() as session:
        if sampled is not None:
            store_samples(session, UnitTest, problem_id, *sampled)
        if no_tests:
            mark_no_tests(session.get_one(Problem, problem_id))  # locked by `write`
