"""Executing the matrix of solutions x unit tests in a pool of jails.

Identical solutions and identical unit tests run once and share their results. The worker never
parses untrusted code: the jail does, and a unit test with no single class, or a solution that does
not compile, comes back `invalid` with the reason. The work is spread over the pool's jails, one
solution (against all its tests) at a time.
"""

from __future__ import annotations

import atexit
import functools
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from orchestrator.core.config import SandboxLimits
from sandbox.jail import Jail, KeepGoing
from sandbox.outcomes import PairResult
from sandbox.policy import SandboxPolicy

Result = TypeVar("Result")


def unique(items: Sequence[str]) -> tuple[list[str], list[int]]:
    """The distinct items in first-seen order, and for every item the position of its twin there."""
    positions: dict[str, int] = {}
    where = [positions.setdefault(item, len(positions)) for item in items]
    return list(positions), where


def request_limits(limits: SandboxLimits, policy: SandboxPolicy, capture_output: bool) -> dict[str, Any]:
    return {
        "time_limit_s": limits.time_limit_s,
        "memory_bytes": limits.memory_mb << 20,
        "output_limit_bytes": limits.output_limit_bytes if capture_output else 0,
        "capture_output": capture_output,
        "max_processes": policy.max_processes,
        "max_open_files": policy.max_open_files,
        "file_size_bytes": policy.file_size_mb << 20,
    }


class JailPool:
    """`size` jails, each lent to one thread at a time; started on first use."""

    def __init__(self, policy: SandboxPolicy, size: int | None = None) -> None:
        self.policy = policy
        self.size = size or policy.jails
        self._idle: queue.SimpleQueue[Jail] = queue.SimpleQueue()
        for _ in range(self.size):
            self._idle.put(Jail(policy))
        self._threads = ThreadPoolExecutor(max_workers=self.size, thread_name_prefix="coderm-jail")
        self._all: list[Jail] = []

    def run_solution(
        self,
        solution: str,
        tests: Sequence[str],
        limits: dict[str, Any],
        keep_going: KeepGoing | None = None,
    ) -> list[PairResult]:
        jail = self._idle.get()
        try:
            if jail not in self._all:
                self._all.append(jail)
            return jail.run(solution, tests, limits, keep_going)
        finally:
            self._idle.put(jail)

    def on_jail_threads(self, work: Callable[[], Result], copies: int) -> list[Result]:
        """Run `copies` of `work` on the pool's own threads, and return what each returned. A jail
        must be used from these long-lived threads: it dies with the thread that started it
        (bubblewrap's --die-with-parent), so a short-lived thread would kill it on exit."""
        return [running.result() for running in [self._threads.submit(work) for _ in range(copies)]]

    def run_matrix(
        self,
        solutions: Sequence[str],
        tests: Sequence[str],
        limits: SandboxLimits,
        capture_output: bool = False,
        keep_going: Callable[[str, list[PairResult]], bool] | None = None,
    ) -> list[list[PairResult]]:
        """Every solution against every test: `result[i][j]` is solution i against test j.

        With `keep_going(solution, its results so far, over the distinct tests in order)`, a
        solution's remaining tests are `not run` once it returns False (see `agents.pruning`).
        """
        distinct_solutions, solution_at = unique(solutions)
        distinct_tests, test_at = unique(tests)
        wire_limits = request_limits(limits, self.policy, capture_output)

        def run_one(solution: str) -> list[PairResult]:
            if not distinct_tests:
                return []
            check = None if keep_going is None else functools.partial(keep_going, solution)
            return self.run_solution(solution, distinct_tests, wire_limits, check)

        rows = list(self._threads.map(run_one, distinct_solutions))
        return [[rows[solution_at[i]][test_at[j]] for j in range(len(tests))] for i in range(len(solutions))]

    def close(self) -> None:
        self._threads.shutdown(wait=True)
        for jail in self._all:
            jail.close()


_pool: JailPool | None = None
_pool_lock = threading.Lock()


def shared_pool() -> JailPool:
    """This process' pool, made from the CODERM_SANDBOX_* environment on first use."""
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = JailPool(SandboxPolicy())
            atexit.register(_pool.close)
        return _pool


def run_matrix(
    solutions: Sequence[str], tests: Sequence[str], limits: SandboxLimits
) -> list[list[PairResult]]:
    return shared_pool().run_matrix(solutions, tests, limits)


def run_pair(solution: str, test: str, limits: SandboxLimits) -> PairResult:
    """One pair, with its output captured: what `coderm sandbox exec` shows."""
    return shared_pool().run_matrix([solution], [test], limits, capture_output=True)[0][0]
