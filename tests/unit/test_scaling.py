"""Test allocation: optimal, exact to the budget and the bounds, and consistent between policies."""

from __future__ import annotations

import itertools
import random

import pytest

from agents.scaling.budget import (
    allocate_greedy,
    allocate_threshold,
    equal_budget_allocations,
    expected_value,
    marginal_gain,
    total_budget,
)
from orchestrator.core.errors import ConfigurationError


def brute_force_best(pass_rates: list[float], budget: int, minimum: int, maximum: int) -> float:
    best = -1.0
    for allocation in itertools.product(range(minimum, maximum + 1), repeat=len(pass_rates)):
        if sum(allocation) == budget:
            best = max(best, expected_value(pass_rates, allocation))
    return best


@pytest.mark.parametrize("seed", range(25))
def test_greedy_is_optimal_against_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    pass_rates = [rng.choice([0.0, 1.0, rng.random(), rng.random() ** 3]) for _ in range(rng.randint(1, 4))]
    minimum, maximum = rng.randint(0, 2), rng.randint(3, 6)
    budget = rng.randint(len(pass_rates) * minimum, len(pass_rates) * maximum)
    allocation = allocate_greedy(pass_rates, budget, minimum, maximum)
    assert sum(allocation) == budget
    assert all(minimum <= tests <= maximum for tests in allocation)
    assert expected_value(pass_rates, allocation) == pytest.approx(
        brute_force_best(pass_rates, budget, minimum, maximum)
    )


def test_hard_problems_get_more_tests_than_easy_or_hopeless_ones() -> None:
    # lambda = 0.9: one test almost settles it; 0.1: many tests pay; 0.0: no test can help.
    allocation = allocate_greedy([0.9, 0.1, 0.0], budget=30, minimum=1, maximum=100)
    assert allocation[1] > allocation[0] and allocation[2] == 1


def test_the_budget_must_fit_the_bounds() -> None:
    with pytest.raises(ConfigurationError, match="cannot be spread"):
        allocate_greedy([0.5, 0.5], budget=300, minimum=1, maximum=100)
    with pytest.raises(ConfigurationError, match="cannot be spread"):
        allocate_greedy([0.5, 0.5], budget=1, minimum=1, maximum=100)
    with pytest.raises(ConfigurationError, match="not a range"):
        allocate_greedy([0.5], budget=1, minimum=3, maximum=2)
    assert allocate_greedy([], budget=0, minimum=1, maximum=5) == []


def test_threshold_and_greedy_agree_at_the_greedy_cut() -> None:
    pass_rates = [0.8, 0.35, 0.12, 0.6, 0.05]
    allocation = allocate_greedy(pass_rates, budget=25, minimum=1, maximum=50)
    # The smallest gain greedy accepted is the threshold that gives every problem the same count.
    accepted = min(
        marginal_gain(rate, tests - 1)
        for rate, tests in zip(pass_rates, allocation, strict=True)
        if tests > 1
    )
    assert [allocate_threshold(rate, accepted, 1, 50) for rate in pass_rates] == allocation


def test_threshold_respects_its_bounds() -> None:
    assert allocate_threshold(0.5, tau=0.0, minimum=2, maximum=7) == 7
    assert allocate_threshold(0.5, tau=1.0, minimum=2, maximum=7) == 2
    assert allocate_threshold(0.0, tau=1e-9, minimum=0, maximum=7) == 0


def test_total_budget_is_problems_times_average() -> None:
    assert total_budget(164, 10) == 1640 and total_budget(3, 2.5) == 8


@pytest.mark.parametrize("budget", [1, 3, 8, 50])
def test_every_policy_gets_the_total_fixed_spends(budget: int) -> None:
    # Problems with fewer slots than the budget cap fixed; greedy and oracle get what fixed
    # actually spends, not problems x budget (the comparison of Fig. 6 at equal cost).
    slots = [10, 4, 10, 1, 10]
    rates = [0.9, 0.1, 0.5, 0.0, 1.0]
    allocations = equal_budget_allocations(budget, slots, rates, predicted=[0.5] * 5)
    assert set(allocations) == {"fixed", "greedy", "oracle"}
    spent = sum(min(budget, s) for s in slots)
    for allocation in allocations.values():
        assert sum(allocation) == spent
        assert all(1 <= tests <= most for tests, most in zip(allocation, slots, strict=True))
    assert "greedy" not in equal_budget_allocations(budget, slots, rates, predicted=None)
