"""Running a problem's matrix with early exit: the pairs that cannot change the vote are not run.

The rule is `agents.pruning`'s: a solution whose passes so far plus its tests still to run fall
short of the best pass count some solution has already reached cannot be in the voter's top set,
so its remaining tests come back `not run`. Every solution that ends in the top set runs every
test, so the vote (top set, consensus, pick) is exactly that of the full matrix. Counts are over
the distinct tests, as the voter counts them (`agents.selection`).

How much is saved depends on the order of the work, and that is what this module decides:

- **The most promising solution first.** Among the distinct solutions still in the running, a jail
  takes the one with the highest bound (passes so far plus tests to run; then the most passes, then
  the most copies: samples that repeat are the likely winners). It runs that solution while no
  waiting solution has a higher bound; once one has, it pauses it (the jail's `stop`) and takes
  the better one, and it comes back to the paused one later unless it has been pruned meanwhile.
  The winners thus reach the best count early, and the others are pruned after few tests: on the
  HumanEval replay benchmark this runs close to the clairvoyant minimum.
- **The tests that fail the most solutions first**, counted over the rows seen so far (from other
  chunks of the problem, then from this run), each time a solution (re)starts: a weak solution
  shows it cannot win after few runs.

`best` and `seen` carry what other chunks of the problem found: any count some solution of the
problem has reached is safe to start from, so sharing it is an optimisation, never a condition of
the answer. A pair the jail reports `killed` counts as a possible pass until its request ends (the
jail runs such a pair once more before reporting it).
"""

from __future__ import annotations

import functools
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from agents.pruning import BestPassCount, by_failures, can_still_win, failure_counts
from orchestrator.core.config import SandboxLimits
from sandbox.executor import Result, request_limits, unique
from sandbox.jail import KeepGoing
from sandbox.outcomes import Outcome, PairResult
from sandbox.policy import SandboxPolicy

NOT_RUN = PairResult(Outcome.NOT_RUN, 0)


class SolutionRunner(Protocol):
    """What early exit needs of a pool of jails (`sandbox.executor.JailPool`)."""

    size: int
    policy: SandboxPolicy

    def run_solution(
        self,
        solution: str,
        tests: Sequence[str],
        limits: dict[str, Any],
        keep_going: KeepGoing | None = None,
    ) -> list[PairResult]: ...

    def on_jail_threads(self, work: Callable[[], Result], copies: int) -> list[Result]: ...


@dataclass
class _Candidate:
    """A distinct solution and how far it got."""

    position: int
    code: str
    copies: int
    results: dict[int, PairResult] = field(default_factory=dict)
    """By distinct test position: the tests it ran."""
    passes: int = 0
    running: bool = False
    done: bool = False

    def bound(self, tests: int) -> int:
        """The most passes it can still reach."""
        return self.passes + tests - len(self.results)

    def priority(self, tests: int) -> tuple[int, int, int, int]:
        return (self.bound(tests), self.passes, self.copies, -self.position)


class _Schedule:
    """The distinct solutions of one run, shared by the threads that lend them to jails."""

    def __init__(
        self,
        solutions: list[str],
        copies: Sequence[int],
        tests: int,
        best: int,
        seen: Sequence[Sequence[bool | None]],
    ) -> None:
        self.candidates = [_Candidate(i, code, copies[i]) for i, code in enumerate(solutions)]
        self.tests = tests
        self.best = BestPassCount(best)
        self.failures = failure_counts(seen, tests)
        self.changed = threading.Condition()
        self.error: BaseException | None = None

    def _prune_waiting(self) -> None:
        for candidate in self.candidates:
            if not (candidate.done or candidate.running) and not can_still_win(
                candidate.passes, self.tests - len(candidate.results), self.best.value
            ):
                candidate.done = True

    def take(self) -> tuple[_Candidate, list[int]] | None:
        """The most promising waiting solution and the order of its remaining tests; None once every
        solution is done (or a jail failed)."""
        with self.changed:
            while True:
                if self.error is not None:
                    return None
                self._prune_waiting()
                waiting = [c for c in self.candidates if not (c.done or c.running)]
                if waiting:
                    chosen = max(waiting, key=lambda c: c.priority(self.tests))
                    chosen.running = True
                    remaining = [t for t in range(self.tests) if t not in chosen.results]
                    return chosen, by_failures(remaining, self.failures)
                if not any(c.running for c in self.candidates):
                    return None
                self.changed.wait()

    def keep_going(self, candidate: _Candidate, results: list[PairResult]) -> bool:
        """Asked by the jail after each test of `candidate`'s request: go on, or stop (pruned: it
        cannot win; paused: a waiting solution is more promising)."""
        passes = candidate.passes + sum(r.passed for r in results)
        maybe = sum(r.outcome is Outcome.KILLED for r in results)
        reached = self.best.raise_to(passes)
        bound = passes + maybe + self.tests - len(candidate.results) - len(results)
        if bound < reached:
            return False
        with self.changed:
            rivals = [c.bound(self.tests) for c in self.candidates if not (c.done or c.running)]
        return not rivals or bound >= max(rivals)

    def record(self, candidate: _Candidate, order: list[int], results: list[PairResult]) -> None:
        with self.changed:
            for test, result in zip(order, results, strict=True):
                if result.outcome is Outcome.NOT_RUN:
                    continue
                candidate.results[test] = result
                candidate.passes += result.passed
                if not result.passed:
                    self.failures[test] += 1
            self.best.raise_to(candidate.passes)
            candidate.running = False
            candidate.done = len(candidate.results) == self.tests or not can_still_win(
                candidate.passes, self.tests - len(candidate.results), self.best.value
            )
            self.changed.notify_all()

    def fail(self, error: BaseException) -> None:
        with self.changed:
            self.error = error
            self.changed.notify_all()


@dataclass(frozen=True)
class Known:
    """What stored rows of a problem's other solutions tell early exit: the best pass count over the
    distinct tests, and the rows over those tests (True pass, False not, None not run)."""

    best: int
    rows: list[list[bool | None]]


def known_from(outcome_rows: Sequence[str], columns: Sequence[int]) -> Known:
    """`Known` from stored rows of outcome letters, read at `columns` (the distinct valid tests)."""
    rows = [
        [None if row[c] == Outcome.NOT_RUN else row[c] == Outcome.PASS for c in columns]
        for row in outcome_rows
    ]
    return Known(max((sum(cell is True for cell in row) for row in rows), default=0), rows)


def run_with_early_exit(
    pool: SolutionRunner,
    solutions: Sequence[str],
    tests: Sequence[str],
    limits: SandboxLimits,
    best: int = 0,
    seen: Sequence[Sequence[bool | None]] = (),
) -> list[list[PairResult]]:
    """Every solution against every test as `JailPool.run_matrix` returns it (`result[i][j]` is
    solution i against test j), but with the pairs that cannot change the vote `not run`.

    `best`: a pass count (over the distinct tests) that some solution of the problem has already
    reached; `seen`: rows of other solutions of the problem over the distinct tests (True pass,
    False not, None not run), to order the tests.
    """
    distinct_solutions, solution_at = unique(solutions)
    distinct_tests, test_at = unique(tests)
    if not distinct_tests or not distinct_solutions:
        return [[NOT_RUN for _ in tests] for _ in solutions]
    copies = Counter(solution_at)
    schedule = _Schedule(
        distinct_solutions,
        [copies[i] for i in range(len(distinct_solutions))],
        len(distinct_tests),
        best,
        seen,
    )
    wire_limits = request_limits(limits, pool.policy, capture_output=False)

    def lend_jails() -> None:
        while (taken := schedule.take()) is not None:
            candidate, order = taken
            try:
                results = pool.run_solution(
                    candidate.code,
                    [distinct_tests[t] for t in order],
                    wire_limits,
                    functools.partial(schedule.keep_going, candidate),
                )
            except BaseException as error:
                schedule.fail(error)
                raise
            schedule.record(candidate, order, results)

    pool.on_jail_threads(lend_jails, min(pool.size, len(distinct_solutions)))
    rows = [[c.results.get(t, NOT_RUN) for t in range(len(distinct_tests))] for c in schedule.candidates]
    return [[rows[solution_at[i]][test_at[j]] for j in range(len(tests))] for i in range(len(solutions))]
