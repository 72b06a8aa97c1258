"""The jail pool: deduplication, isolation modes, and refusing to run without isolation."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from orchestrator.core.config import SandboxLimits
from sandbox.executor import JailPool, unique
from sandbox.isolation import SandboxUnavailableError
from sandbox.outcomes import Outcome
from sandbox.policy import SandboxPolicy

pytestmark = pytest.mark.integration

TEST = "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_one(self):\n        self.assertEqual(f(1), 2)\n"
RIGHT, WRONG = "def f(x):\n    return x + 1\n", "def f(x):\n    return x\n"


def test_unique_keeps_first_seen_order_and_maps_every_item() -> None:
    assert unique(["b", "a", "b", "c", "a"]) == (["b", "a", "c"], [0, 1, 0, 2, 1])


def test_identical_solutions_and_tests_run_once(monkeypatch: pytest.MonkeyPatch) -> None:
    pool = JailPool(SandboxPolicy(), size=1)
    calls: list[tuple[str, int]] = []
    original = pool.run_solution

    def counting(solution: str, tests, limits, keep_going=None):  # type: ignore[no-untyped-def]
        calls.append((solution, len(tests)))
        return original(solution, tests, limits, keep_going)

    monkeypatch.setattr(pool, "run_solution", counting)
    try:
        matrix = pool.run_matrix([RIGHT, WRONG, RIGHT], [TEST, TEST, "no class here"], SandboxLimits())
    finally:
        pool.close()
    # Two distinct solutions, each against the two distinct tests (the jail finds the invalid one).
    assert sorted(calls) == sorted([(RIGHT, 2), (WRONG, 2)])
    outcomes = [[cell.outcome for cell in row] for row in matrix]
    assert outcomes == [
        [Outcome.PASS, Outcome.PASS, Outcome.INVALID],
        [Outcome.FAIL, Outcome.FAIL, Outcome.INVALID],
        [Outcome.PASS, Outcome.PASS, Outcome.INVALID],
    ]


def test_a_solution_that_does_not_compile_is_invalid_without_running() -> None:
    pool = JailPool(SandboxPolicy(), size=1)
    try:
        matrix = pool.run_matrix(["def f(x:\n"], [TEST], SandboxLimits())
    finally:
        pool.close()
    assert matrix[0][0].outcome is Outcome.INVALID


def test_without_bubblewrap_the_sandbox_refuses_and_names_the_opt_in(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap to be found
    pool = JailPool(SandboxPolicy(isolation="namespaces"), size=1)
    try:
        with pytest.raises(SandboxUnavailableError, match="CODERM_SANDBOX_ISOLATION=rlimits"):
            pool.run_matrix([RIGHT], [TEST], SandboxLimits())
    finally:
        pool.close()


def test_the_weaker_rlimits_mode_runs_when_chosen_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    pool = JailPool(SandboxPolicy(isolation="rlimits"), size=1)
    try:
        with caplog.at_level(logging.WARNING):
            matrix = pool.run_matrix([RIGHT, WRONG, "import os\nos._exit(0)\n"], [TEST], SandboxLimits())
    finally:
        pool.close()
    assert [row[0].outcome for row in matrix] == [Outcome.PASS, Outcome.FAIL, Outcome.KILLED]
    assert "no namespaces" in caplog.text


def test_the_sandbox_policy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODERM_SANDBOX_ISOLATION", "rlimits")
    monkeypatch.setenv("CODERM_SANDBOX_MAX_PROCESSES", "32")
    policy = SandboxPolicy()
    assert policy.isolation == "rlimits" and policy.max_processes == 32


def test_a_solution_told_to_stop_leaves_its_remaining_tests_not_run() -> None:
    """Pruning: once `keep_going` says no, the jail runs no further test (it waits for the word)."""
    tests = [TEST.replace("class T", f"class T{i}") for i in range(8)]
    pool = JailPool(SandboxPolicy(), size=1)
    try:

        def keep_going(solution: str, results: list) -> bool:  # type: ignore[type-arg]
            return sum(r.outcome is not Outcome.PASS for r in results) < 2

        matrix = pool.run_matrix([RIGHT, WRONG], tests, SandboxLimits(), keep_going=keep_going)
        again = pool.run_matrix([RIGHT], tests[:2], SandboxLimits())  # the jail serves on
    finally:
        pool.close()
    right, wrong = ["".join(cell.outcome for cell in row) for row in matrix]
    assert right == "P" * 8
    assert wrong == "FF" + "N" * 6
    assert [cell.outcome for cell in again[0]] == [Outcome.PASS] * 2


def test_a_keep_going_that_fails_leaves_the_jail_in_step() -> None:
    """A jail told nothing after a test (the worker's check raised) is not left waiting: the next
    solution it gets runs as it should."""
    tests = [TEST.replace("class T", f"class T{i}") for i in range(3)]
    pool = JailPool(SandboxPolicy(), size=1)
    try:

        def broken(solution: str, results: list) -> bool:  # type: ignore[type-arg]
            raise RuntimeError("the check failed")

        with pytest.raises(RuntimeError, match="the check failed"):
            pool.run_matrix([WRONG], tests, SandboxLimits(), keep_going=broken)
        matrix = pool.run_matrix([RIGHT, WRONG], tests, SandboxLimits(), keep_going=lambda s, r: True)
    finally:
        pool.close()
    assert ["".join(cell.outcome for cell in row) for row in matrix] == ["PPP", "FFF"]
