"""Rules of the workflow's shape, as pure functions of a problem and its job's configuration."""

from __future__ import annotations

from orchestrator.core.config import JobConfig
from orchestrator.core.models import Problem


def coderm_waits_for_policy(problem: Problem, config: JobConfig) -> bool:
    """True when CodeRM must be shown a policy sample, because nothing else can go in its prompt."""
    replays_tests = problem.replay_unit_tests is not None and config.coderm.backend in ("auto", "replay")
    ready_made_prompt = problem.coderm_prompt is not None and config.prompts.coderm is None
    return not (replays_tests or ready_made_prompt or problem.reference_code is not None)
