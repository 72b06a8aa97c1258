"""Which steps of a problem become possible when: the workflow's joins, as a pure function."""

from __future__ import annotations

from dataclasses import replace

from orchestrator.workflow.steps import ProblemState, next_steps, ready_to_allocate

PLANNED = ProblemState(
    policy="fixed",
    planned=True,
    tests_decided=True,
    has_features=False,
    solutions_sampled=False,
    solutions_judged=True,
    tests_sampled=False,
    coderm_waits=False,
    execution_complete=False,
    sent=frozenset(),
)


def test_nothing_happens_before_the_plan() -> None:
    assert next_steps(replace(PLANNED, planned=False)) == []


def test_both_samplers_start_together_when_coderm_has_reference_code() -> None:
    assert next_steps(PLANNED) == ["policy", "coderm"]


def test_coderm_waits_for_a_policy_sample_when_it_has_nothing_else_to_show() -> None:
    waiting = replace(PLANNED, coderm_waits=True, sent=frozenset({"policy"}))
    assert next_steps(waiting) == []
    assert next_steps(replace(waiting, solutions_sampled=True)) == ["coderm"]


def test_execution_waits_for_both_samplers_and_the_vote_for_every_chunk() -> None:
    sampled = replace(PLANNED, sent=frozenset({"policy", "coderm"}), solutions_sampled=True)
    assert next_steps(sampled) == []
    both = replace(sampled, tests_sampled=True)
    assert next_steps(both) == ["execute"]
    running = replace(both, sent=both.sent | {"execute"})
    assert next_steps(running) == []
    assert next_steps(replace(running, execution_complete=True)) == ["vote"]
    assert next_steps(replace(running, execution_complete=True, sent=running.sent | {"vote"})) == []


def test_every_step_is_sent_once() -> None:
    everything = frozenset({"policy", "coderm", "execute", "vote"})
    done = replace(
        PLANNED, solutions_sampled=True, tests_sampled=True, execution_complete=True, sent=everything
    )
    assert next_steps(done) == []


def test_threshold_and_greedy_need_features_before_their_tests_are_decided() -> None:
    threshold = replace(PLANNED, policy="threshold", tests_decided=False)
    assert next_steps(threshold) == ["features"]
    assert next_steps(replace(threshold, has_features=True, sent=frozenset({"features"}))) == []
    # Once the features decided the tests (threshold plans; greedy allocates), sampling goes on.
    assert next_steps(replace(threshold, has_features=True, tests_decided=True)) == ["policy", "coderm"]


def test_the_oracle_samples_and_judges_before_its_tests_are_decided() -> None:
    oracle = replace(PLANNED, policy="oracle", tests_decided=False, solutions_judged=False)
    assert next_steps(oracle) == ["policy"]
    sampled = replace(oracle, solutions_sampled=True, sent=frozenset({"policy"}))
    assert next_steps(sampled) == ["judge"]
    assert not ready_to_allocate(sampled)
    judged = replace(sampled, solutions_judged=True, sent=sampled.sent | {"judge"})
    assert next_steps(judged) == [] and ready_to_allocate(judged)
    assert next_steps(replace(judged, tests_decided=True)) == ["coderm"]
    assert not ready_to_allocate(replace(judged, tests_decided=True))


def test_greedy_is_ready_to_allocate_with_its_features() -> None:
    greedy = replace(PLANNED, policy="greedy", tests_decided=False)
    assert not ready_to_allocate(greedy) and ready_to_allocate(replace(greedy, has_features=True))
