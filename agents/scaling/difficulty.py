"""What dynamic scaling asks of the agents before a problem's tests are sampled.

`extract_features` (policy queue, next to the policy model) stores the hidden state the probe
reads. Once it, or the oracle's ground-truth judging, has made a problem ready, a job-level policy
may be able to allocate (agents/scaling/allocation.py).
"""

from __future__ import annotations

from celery import shared_task

from agents.prompts import render_policy_prompt
from agents.scaling.features import encode, feature_source, features_backend
from orchestrator.core.models import Problem
from orchestrator.runtime.task_base import LLM_RETRY
from orchestrator.workflow.problem_task import ProblemTask


@shared_task(base=ProblemTask, bind=True, name="coderm.policy.extract_features", **LLM_RETRY)
def extract_features(self: ProblemTask, problem_id: int) -> None:
    """The policy model's hidden state of the problem's prompt, stored with the problem."""
    step = self.step(problem_id, "features")
    with step.read() as loaded:
        if loaded is None:
            return
        problem, config = loaded.problem, loaded.config
        prompt = None
        if problem.features is None:  # else a redelivery: only the workflow goes on
            prompt = render_policy_prompt(problem.question, problem.policy_prompt, config.prompts)
    extracted = None
    if prompt is not None:
        backend = features_backend(config, self.settings)
        extracted = (encode(backend.prompt_features(prompt)), feature_source(backend, config))
    # threshold plans from the features now; greedy allocates once its whole job has them.
    with step.write() as session:
        if extracted is not None:
            problem = session.get_one(Problem, problem_id)  # locked and read by `write`
            problem.features, problem.feature_source = extracted
