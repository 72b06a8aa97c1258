"""Dynamic unit-test scaling: how many tests each problem gets (DESIGN §2, the paper's second idea).

A problem whose sampled solutions pass with probability lambda gains from its (b+1)-th unit test
q(b+1) - q(b) = lambda * (1 - lambda)^b, where q(b) = 1 - (1 - lambda)^b; q is concave in b, so
handing tests one at a time to the problem with the largest marginal gain maximises sum q_i(b_i)
for a total budget (greedy is optimal here). The same rule as a threshold allocates one problem at
a time: keep adding tests while the gain stays above tau.

    fixed      M tests each (the default, and all there is until a probe exists)
    greedy     a job's budget B = P x b_avg spread by marginal gain, within [minimum, maximum]
    threshold  per problem: add tests while lambda (1 - lambda)^b >= tau, within [minimum, maximum]
    oracle     greedy on the true pass rate (experiments only)
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from orchestrator.core.errors import ConfigurationError


def marginal_gain(pass_rate: float, tests: int) -> float:
    """What the (tests+1)-th unit test adds to the chance that the tests tell right from wrong."""
    return pass_rate * (1.0 - pass_rate) ** tests


def expected_value(pass_rates: Sequence[float], allocation: Sequence[int]) -> float:
    """sum_i q_i(b_i), the objective the allocation maximises."""
    return sum(1.0 - (1.0 - rate) ** tests for rate, tests in zip(pass_rates, allocation, strict=True))


def total_budget(problems: int, average: float) -> int:
    return round(problems * average)


def allocate_greedy(
    pass_rates: Sequence[float], budget: int, minimum: int, maximum: int | Sequence[int]
) -> list[int]:
    """Spread exactly `budget` tests over the problems, each within [minimum, maximum].

    `maximum` is one bound for all, or one per problem (e.g. the tests a stored matrix has).
    """
    problems = len(pass_rates)
    maxima = [maximum] * problems if isinstance(maximum, int) else list(maximum)
    if any(not 0 <= minimum <= most for most in maxima):
        raise ConfigurationError(
            f"the test bounds [{minimum}, {min(maxima, default=minimum)}] are not a range"
        )
    if not problems * minimum <= budget <= sum(maxima):
        raise ConfigurationError(
            f"a budget of {budget} tests cannot be spread over {problems} problems within "
            f"[{minimum}, {maximum}] tests each (possible: {problems * minimum} to {sum(maxima)})"
        )
    allocation = [minimum] * problems
    # Largest gain first; ties go to the earlier problem, so the result is deterministic.
    heap = [(-marginal_gain(rate, minimum), i) for i, rate in enumerate(pass_rates) if minimum < maxima[i]]
    heapq.heapify(heap)
    for _ in range(budget - problems * minimum):
        _, i = heapq.heappop(heap)
        allocation[i] += 1
        if allocation[i] < maxima[i]:
            heapq.heappush(heap, (-marginal_gain(pass_rates[i], allocation[i]), i))
    return allocation


def equal_budget_allocations(
    budget: int, slots: Sequence[int], true_rates: Sequence[float], predicted: Sequence[float] | None
) -> dict[str, list[int]]:
    """Test slots per problem for fixed, oracle and (given predictions) greedy, all with one total.

    Fixed gives each problem `budget` slots, or all it has; the total that spends is what greedy
    and oracle spread by difficulty, so the policies are compared at equal cost (Fig. 6).
    """
    fixed = [min(budget, most) for most in slots]
    total, minimum = sum(fixed), min(1, *slots)
    allocations = {"fixed": fixed, "oracle": allocate_greedy(true_rates, total, minimum, slots)}
    if predicted is not None:
        allocations["greedy"] = allocate_greedy(predicted, total, minimum, slots)
    return allocations


def allocate_threshold(pass_rate: float, tau: float, minimum: int, maximum: int) -> int:
    """Tests for one problem: add them while the next one's marginal gain is at least `tau`."""
    tests = minimum
    while tests < maximum and marginal_gain(pass_rate, tests) >= tau:
        tests += 1
    return tests
