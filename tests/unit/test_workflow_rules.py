"""When CodeRM can start in parallel with the policy, and how solutions are chunked."""

from __future__ import annotations

from agents.prompts import PromptTemplates
from orchestrator.core.config import AgentConfig, JobConfig
from orchestrator.core.models import Problem
from orchestrator.workflow.rules import coderm_waits_for_policy
from orchestrator.workflow.steps import chunk_solutions


def problem(**fields: object) -> Problem:
    return Problem(task_id="t", question="q", **fields)


def test_reference_code_or_ready_made_prompt_lets_tests_start_at_once() -> None:
    config = JobConfig()
    assert not coderm_waits_for_policy(problem(reference_code="def f(): pass"), config)
    assert not coderm_waits_for_policy(problem(coderm_prompt="Below is a question"), config)
    assert not coderm_waits_for_policy(problem(replay_unit_tests=["x"]), config)
    assert coderm_waits_for_policy(problem(), config)


def test_an_overridden_template_cannot_use_the_ready_made_prompt() -> None:
    config = JobConfig(prompts=PromptTemplates(coderm="Q: {question}\nA: {code}"))
    assert coderm_waits_for_policy(problem(coderm_prompt="Below is a question"), config)


def test_replayed_tests_are_not_used_when_a_model_backend_is_forced() -> None:
    config = JobConfig(coderm=AgentConfig(backend="local"))
    assert coderm_waits_for_policy(problem(replay_unit_tests=["x"]), config)


def test_chunks_cover_every_solution_once() -> None:
    distinct = [(1, "a"), (2, "b"), (3, "c"), (4, "d"), (5, "e")]
    assert chunk_solutions(distinct, 2) == [[1, 2], [3, 4], [5]]
    assert chunk_solutions([], 3) == []


def test_copies_of_a_solution_share_its_chunk() -> None:
    solutions = [(1, "a"), (2, "b"), (3, "a"), (4, "c"), (5, "b"), (6, "d"), (7, "a")]
    assert chunk_solutions(solutions, 2) == [[1, 3, 7, 2, 5], [4, 6]]
