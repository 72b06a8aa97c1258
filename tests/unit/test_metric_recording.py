"""What the recording functions of orchestrator.observability.metrics add to which series."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from agents.scoring import Confusion, ProblemScore
from orchestrator.observability.metrics import (
    after_commit,
    benchmark_label,
    observe_executions,
    observe_llm_request,
    observe_problem_scored,
    observe_problem_voted,
    pass_rate_band,
)
from sandbox.outcomes import Outcome, PairResult


def change(name: str, labels: dict[str, str]) -> Callable[[], float]:
    """How much the sample `name{labels}` grew since this was called."""
    before = REGISTRY.get_sample_value(name, labels) or 0.0
    return lambda: (REGISTRY.get_sample_value(name, labels) or 0.0) - before


@pytest.mark.parametrize(
    ("rate", "band"),
    [
        (0.0, "0.0-0.2"),
        (0.19, "0.0-0.2"),
        (0.2, "0.2-0.4"),
        (0.25, "0.2-0.4"),
        (0.99, "0.8-1.0"),
        (1.0, "0.8-1.0"),
    ],
)
def test_pass_rates_fall_in_five_bands_each_holding_its_lower_edge(rate: float, band: str) -> None:
    assert pass_rate_band(rate) == band


def test_only_builtin_benchmarks_are_label_values() -> None:
    assert benchmark_label("humaneval+") == "humaneval+"
    assert benchmark_label("humaneval+ prompts, base tests") == "humaneval+ prompts, base tests"
    assert benchmark_label(None) == "custom"
    assert benchmark_label("/home/me/problems.jsonl") == "custom"


def test_a_scored_problem_adds_its_accuracies_confusion_and_allocation() -> None:
    score = ProblemScore(
        samples=4,
        correct_samples=1,
        vanilla=0.25,
        best_of_n=0.5,
        oracle=True,
        individual=Confusion(tp=2, fp=3, tn=4, fn=1),
        combined=Confusion(tp=1, fp=1, tn=2, fn=0),
        best_of_n_by_strategy={"paper": 0.5, "codet": 1.0, "majority": 0.0},
    )
    by_strategy = {
        s: change("coderm_strategy_selected_correct_total", {"benchmark": "humaneval", "strategy": s})
        for s in ("paper", "codet", "majority")
    }
    evaluated = change("coderm_problems_evaluated_total", {"benchmark": "humaneval", "pass_rate": "0.2-0.4"})
    tests = change(
        "coderm_evaluated_unit_tests_allocated_total", {"benchmark": "humaneval", "pass_rate": "0.2-0.4"}
    )
    picked = change("coderm_problems_selected_correct_total", {"benchmark": "humaneval"})
    vanilla = change("coderm_problems_vanilla_correct_total", {"benchmark": "humaneval"})
    fp = change(
        "coderm_unit_test_confusion_total", {"benchmark": "humaneval", "scope": "individual", "cell": "fp"}
    )
    tn = change(
        "coderm_unit_test_confusion_total", {"benchmark": "humaneval", "scope": "combined", "cell": "tn"}
    )

    observe_problem_scored("humaneval", score, unit_tests=40)

    assert (evaluated(), tests(), picked(), vanilla(), fp(), tn()) == (1, 40, 0.5, 0.25, 3, 2)
    assert {s: delta() for s, delta in by_strategy.items()} == {"paper": 0.5, "codet": 1.0, "majority": 0.0}


def test_a_voted_problem_counts_its_test_slots_against_fixed() -> None:
    sampled = change("coderm_unit_test_slots_sampled_total", {"benchmark": "mbpp+"})
    fixed = change("coderm_unit_test_slots_fixed_total", {"benchmark": "mbpp+"})
    observe_problem_voted("mbpp+", allocated=3, fixed=10)
    assert (sampled(), fixed()) == (3, 10)


def test_sandbox_results_count_by_outcome_with_their_durations() -> None:
    passed = change("coderm_sandbox_executions_total", {"kind": "unit_test", "outcome": "pass"})
    timed_out = change("coderm_sandbox_executions_total", {"kind": "unit_test", "outcome": "timeout"})
    slow = change(
        "coderm_sandbox_execution_duration_seconds_bucket",
        {"kind": "unit_test", "outcome": "timeout", "le": "1.0"},
    )
    seconds = change(
        "coderm_sandbox_execution_duration_seconds_sum", {"kind": "unit_test", "outcome": "timeout"}
    )

    observe_executions(
        "unit_test",
        [PairResult(Outcome.PASS, 3), PairResult(Outcome.PASS, 5), PairResult(Outcome.TIMEOUT, 1500)],
    )

    assert (passed(), timed_out(), slow(), seconds()) == (2, 1, 0, 1.5)


def test_a_successful_llm_request_creates_its_error_series_at_zero() -> None:
    labels = {"agent": "policy", "backend": "test-backend", "model": "m"}
    observe_llm_request("policy", "test-backend", "m", seconds=0.5, prompt_tokens=10, completion_tokens=20)
    assert REGISTRY.get_sample_value("coderm_llm_request_errors_total", labels) == 0
    assert REGISTRY.get_sample_value("coderm_llm_requests_total", labels) == 1
    assert REGISTRY.get_sample_value("coderm_llm_completion_tokens_total", labels) == 20


@pytest.mark.parametrize("commits", [True, False])
def test_after_commit_records_only_what_was_committed(commits: bool) -> None:
    recorded: list[str] = []
    with Session(create_engine("sqlite://")) as session:
        session.execute(text("select 1"))
        after_commit(session, lambda: recorded.append("done"))
        assert recorded == []
        if commits:
            session.commit()
        else:
            session.rollback()
        session.commit()  # a later transaction of the same session does not run it either
    assert recorded == (["done"] if commits else [])
