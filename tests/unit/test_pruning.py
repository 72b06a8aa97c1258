"""Pruning never changes the pick or the tie set: property-based over random matrices, and on the
recorded HumanEval matrices."""

from __future__ import annotations

import json
import random
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agents.pruning import (
    BestPassCount,
    can_still_win,
    clairvoyant_executions,
    discriminating_order,
    executions,
    simulate,
)
from agents.selection import distinct_test_columns, pass_matrix, vote
from orchestrator.core.config import JobConfig, SandboxLimits
from sandbox.early_exit import run_with_early_exit
from sandbox.jail import KeepGoing
from sandbox.outcomes import Outcome, PairResult
from sandbox.policy import SandboxPolicy

matrices = st.integers(1, 10).flatmap(
    lambda tests: st.lists(st.lists(st.booleans(), min_size=tests, max_size=tests), min_size=1, max_size=14)
)


def as_passes(matrix: list[list[bool | None]]) -> list[list[bool]]:
    """What the voter reads: a cell not run passes nothing."""
    return [[cell is True for cell in row] for row in matrix]


def same_vote(full: list[list[bool]], pruned: list[list[bool | None]], seed: int) -> None:
    expected = vote(full, random.Random(seed))
    got = vote(as_passes(pruned), random.Random(seed))
    assert (got.tie_set, got.selected, got.pass_count, got.top_set_size) == (
        expected.tie_set,
        expected.selected,
        expected.pass_count,
        expected.top_set_size,
    )


@settings(max_examples=500)
@given(matrix=matrices, seed=st.integers(0, 2**16), data=st.data())
def test_pruning_in_any_test_order_keeps_the_vote(
    matrix: list[list[bool]], seed: int, data: st.DataObject
) -> None:
    order = data.draw(st.permutations(range(len(matrix[0]))))
    pruned = simulate(matrix, order)
    same_vote(matrix, pruned, seed)
    assert clairvoyant_executions(matrix) <= executions(pruned) <= len(matrix) * len(matrix[0])
    # Every solution of the top set ran every test.
    best = max(sum(row) for row in matrix)
    assert all(None not in pruned[i] for i, row in enumerate(matrix) if sum(row) == best)


@settings(max_examples=300)
@given(matrix=matrices, seed=st.integers(0, 2**16), data=st.data())
def test_pruning_with_solutions_running_concurrently_keeps_the_vote(
    matrix: list[list[bool]], seed: int, data: st.DataObject
) -> None:
    """Several jails share the best count; their steps interleave in any order."""
    tests = len(matrix[0])
    best = BestPassCount()
    position = [0] * len(matrix)
    passes = [0] * len(matrix)
    stopped = [False] * len(matrix)
    pruned: list[list[bool | None]] = [[None] * tests for _ in matrix]
    while not all(stopped[i] or position[i] == tests for i in range(len(matrix))):
        running = [i for i in range(len(matrix)) if not stopped[i] and position[i] < tests]
        i = data.draw(st.sampled_from(running))
        cell = matrix[i][position[i]]
        pruned[i][position[i]] = cell
        passes[i] += cell
        position[i] += 1
        reached = best.raise_to(passes[i])
        stopped[i] = not can_still_win(passes[i], tests - position[i], reached)
    same_vote(matrix, pruned, seed)


def test_the_discriminating_order_puts_the_tests_that_fail_most_first() -> None:
    rows = [[True, False, True], [True, False, False], [None, False, True]]
    assert discriminating_order(rows, 3) == [1, 2, 0]


def test_on_the_recorded_humaneval_matrices_the_vote_is_the_same_for_fewer_executions() -> None:
    recording = Path(__file__).parents[1] / "data" / "verdicts_before_issue12.jsonl"
    full_cells = pruned_cells = 0
    for line in recording.read_text().splitlines():
        record = json.loads(line)
        matrix = [[cell == "P" for cell in row] for row in record["outcomes"]]
        pruned = simulate(matrix, discriminating_order(matrix, len(matrix[0])))
        same_vote(matrix, pruned, seed=0)
        full_cells += len(matrix) * len(matrix[0])
        pruned_cells += executions(pruned)
    assert pruned_cells < full_cells


class MatrixPool:
    """Jails that answer from a known matrix: solution "s3" against test "t5" is matrix[3][5]. Like
    the real jail, one told to stop may finish the test already under way (`ahead`)."""

    def __init__(self, matrix: list[list[bool]], size: int, ahead: bool) -> None:
        self.matrix, self.size, self.ahead = matrix, size, ahead
        self.policy = SandboxPolicy()
        self.ran: list[tuple[int, int]] = []
        self.lock = threading.Lock()

    def run_solution(
        self, solution: str, tests: Sequence[str], limits: dict[str, Any], keep_going: KeepGoing | None = None
    ) -> list[PairResult]:
        row = int(solution[1:])
        results: list[PairResult] = []
        stop_after = len(tests)
        for position, test in enumerate(tests):
            if position >= stop_after:
                results.append(PairResult(Outcome.NOT_RUN, 0))
                continue
            passed = self.matrix[row][int(test[1:])]
            results.append(PairResult(Outcome.PASS if passed else Outcome.FAIL, 1))
            with self.lock:
                self.ran.append((row, int(test[1:])))
            more = position + 1 < len(tests) and stop_after == len(tests)
            if more and keep_going is not None and not keep_going(list(results)):
                stop_after = position + 1 + (1 if self.ahead else 0)
        return results

    def on_jail_threads(self, work: Callable[[], Any], copies: int) -> list[Any]:
        with ThreadPoolExecutor(max_workers=copies) as threads:
            return [running.result() for running in [threads.submit(work) for _ in range(copies)]]


def expand(draw: st.DrawFn, items: int, prefix: str) -> list[str]:
    """Each of `items` distinct names at least once, some repeated, in a drawn order."""
    extra = draw(st.lists(st.integers(0, items - 1), max_size=items))
    return draw(st.permutations([f"{prefix}{i}" for i in range(items)] + [f"{prefix}{i}" for i in extra]))


@st.composite
def problems(draw: st.DrawFn) -> tuple[list[list[bool]], list[str], list[str]]:
    matrix = draw(matrices)
    return matrix, expand(draw, len(matrix), "s"), expand(draw, len(matrix[0]), "t")


def stored_vote(
    results: list[list[PairResult]], solutions: list[str], tests: list[str], seed: int
) -> tuple[list[int], int | None, int, int]:
    """The vote as the voter takes it from stored rows: over the distinct tests, every copy a row."""
    columns = distinct_test_columns(tests)
    decision = vote(
        pass_matrix(["".join(c.outcome for c in row) for row in results], columns), random.Random(seed)
    )
    return decision.tie_set, decision.selected, decision.pass_count, decision.top_set_size


@settings(max_examples=300, deadline=None)
@given(
    problem=problems(),
    seed=st.integers(0, 2**16),
    size=st.integers(1, 3),
    ahead=st.booleans(),
    data=st.data(),
)
def test_the_sandbox_schedule_keeps_the_vote_in_one_chunk_or_two(
    problem: tuple[list[list[bool]], list[str], list[str]],
    seed: int,
    size: int,
    ahead: bool,
    data: st.DataObject,
) -> None:
    """`sandbox.early_exit` as the sandbox task runs it, on jails that answer from a matrix, in one
    chunk or in two (the second starting from the first's best count and rows): the same tie set,
    pick, pass count and top set as the full matrix; no pair runs twice; the top set runs every test."""
    matrix, solutions, tests = problem
    # Two chunks, each with every copy of its solutions (as steps.chunk_solutions makes them).
    in_first = data.draw(st.sets(st.sampled_from(sorted(set(solutions)))))
    solutions = [s for s in solutions if s in in_first] + [s for s in solutions if s not in in_first]
    split = sum(s in in_first for s in solutions)
    pool = MatrixPool(matrix, size, ahead)
    first = run_with_early_exit(pool, solutions[:split], tests, SandboxLimits())
    columns = distinct_test_columns(tests)
    seen = [[None if row[c].outcome is Outcome.NOT_RUN else row[c].passed for c in columns] for row in first]
    best = max((sum(cell is True for cell in row) for row in seen), default=0)
    second = run_with_early_exit(pool, solutions[split:], tests, SandboxLimits(), best, seen)
    pruned = first + second
    full = [
        [PairResult(Outcome.PASS if matrix[int(s[1:])][int(t[1:])] else Outcome.FAIL, 1) for t in tests]
        for s in solutions
    ]
    assert stored_vote(pruned, solutions, tests, seed) == stored_vote(full, solutions, tests, seed)
    assert len(pool.ran) == len(set(pool.ran)) <= len(matrix) * len(matrix[0])
    top = max(sum(row) for row in matrix)
    for s, row in zip(solutions, pruned, strict=True):
        assert (sum(matrix[int(s[1:])]) == top) <= all(cell.outcome is not Outcome.NOT_RUN for cell in row)
        for t, cell in zip(tests, row, strict=True):  # a pair that ran has its own verdict
            assert cell.outcome is Outcome.NOT_RUN or cell.passed == matrix[int(s[1:])][int(t[1:])]


def test_the_schedule_learns_which_test_fails_and_stops_the_others_there() -> None:
    """One jail: s0 fails t3 last; the winner then runs t3 first, and the others are pruned as soon
    as they fail it, one run each."""
    matrix = [[True, True, True, False], [True] * 4, [True, True, True, False], [True, True, True, False]]
    pool = MatrixPool(matrix, size=1, ahead=False)
    tests = [f"t{j}" for j in range(4)]
    result = run_with_early_exit(pool, [f"s{i}" for i in range(4)], tests, SandboxLimits())
    assert ["".join(c.outcome for c in row) for row in result] == ["PPPF", "PPPP", "NNNF", "NNNF"]
    assert pool.ran == [(0, 0), (0, 1), (0, 2), (0, 3), (1, 3), (1, 0), (1, 1), (1, 2), (2, 3), (3, 3)]
    assert len(pool.ran) == clairvoyant_executions(matrix) + 3  # the passes s0 ran before its failure


@pytest.mark.parametrize("size", [1, 2])
def test_the_sandbox_schedule_on_the_recorded_humaneval_matrices_keeps_every_vote(size: int) -> None:
    """`sandbox.early_exit` on jails that answer from the recorded verdicts of HumanEval's 164
    problems (a canonical solution and a mutant, five unit tests each; the mutant repeated)."""
    recording = Path(__file__).parents[1] / "data" / "verdicts_before_issue12.jsonl"
    full_cells = ran = 0
    for line in recording.read_text().splitlines():
        record = json.loads(line)
        matrix = [[cell == "P" for cell in row] for row in record["outcomes"]]
        solutions, tests = ["s0", "s1", "s1"], [f"t{j}" for j in range(len(matrix[0]))]
        pool = MatrixPool(matrix, size, ahead=False)
        pruned = run_with_early_exit(pool, solutions, tests, SandboxLimits())
        full = [
            [PairResult(Outcome.PASS if matrix[int(s[1:])][int(t[1:])] else Outcome.FAIL, 1) for t in tests]
            for s in solutions
        ]
        assert stored_vote(pruned, solutions, tests, 0) == stored_vote(full, solutions, tests, 0), record[
            "task_id"
        ]
        full_cells += len(matrix) * len(matrix[0])
        ran += len(pool.ran)
    assert ran < full_cells


def test_pruning_is_only_for_the_papers_vote() -> None:
    # CodeT and majority read every solution's whole pass pattern: no early exit for them.
    assert JobConfig().prunes(has_ground_truth=False)
    assert not JobConfig(selection="codet").prunes(has_ground_truth=False)
    assert not JobConfig(selection="majority", prune=None).prunes(has_ground_truth=False)
    with pytest.raises(ValidationError, match="--selection paper"):
        JobConfig(selection="codet", prune=True)
