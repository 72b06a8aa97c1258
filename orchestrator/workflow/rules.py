"""Rules of the workflow's shape, as pure functions of a problem and its job's configuration."""

from __future__ import annotations

from orchestrator.core.config import JobConfig
from orchestrator.core.models import Problem


def replays_unit_tests(problem: Problem, config: JobConfig) -> bool:
    """True when the problem's unit tests are replayed from its file: no model sees a prompt."""
    return problem.replay_unit_tests is not None and config.coderm.backend in ("auto", "replay")


def coderm_waits_for_policy(problem: Problem, config: JobConfig) -> bool:
    """True when CodeRM must be shown a policy sample, because nothing else can go in its prompt."""
    ready_made_prompt = problem.coderm_prompt is not None and config.prompts.coderm is None
    return not (
        replays_unit_tests(problem, config) or ready_made_prompt or problem.reference_code is not None
    )
