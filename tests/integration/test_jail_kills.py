"""A pair killed from outside is run again; a pair that kills itself, or runs out of memory, is not.

An operator, a node drain or the host's OOM killer may SIGKILL a jail or the process of the pair it
runs. That is not the pair's verdict: the worker runs the pair once more (in a fresh jail if the jail
died), and records `killed` only if it dies that way again. A pair that SIGKILLs itself dies twice
and is `killed`; one that the jail's cgroup kills for memory is `memory`, at once. The kills here
are made from the host, by the test, while the pair runs.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator

import pytest
from services import process_parents

from orchestrator.core.config import SandboxLimits
from sandbox.executor import JailPool
from sandbox.outcomes import Outcome
from sandbox.policy import SandboxPolicy

pytestmark = pytest.mark.integration

TEST = "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_one(self):\n        self.assertEqual(f(1), 2)\n"
SLOW_RIGHT = "import time\ntime.sleep(1.0)\n\ndef f(x):\n    return x + 1\n"
LIMITS = SandboxLimits(time_limit_s=5.0, memory_mb=256)


@pytest.fixture
def pool() -> Iterator[JailPool]:
    jail_pool = JailPool(SandboxPolicy(), size=1)
    yield jail_pool
    jail_pool.close()


def _namespace_members(pool: JailPool) -> tuple[int, list[int]]:
    """Host pids: the jail process (pid 1 of its namespace) and the other processes in it."""
    (jail,) = pool._all
    assert jail.process is not None
    launcher = jail.process.pid
    table = process_parents()
    jail_pid = next(pid for pid, parent in table.items() if parent == launcher)
    return jail_pid, [pid for pid, parent in table.items() if parent == jail_pid]


def _kill_later(pool: JailPool, which: str, delay: float = 0.4) -> threading.Thread:
    def kill() -> None:
        time.sleep(delay)
        jail_pid, children = _namespace_members(pool)
        for pid in [jail_pid] if which == "jail" else children:
            os.kill(pid, signal.SIGKILL)

    thread = threading.Thread(target=kill)
    thread.start()
    return thread


def test_a_pair_child_killed_from_outside_is_run_again(pool: JailPool) -> None:
    pool.run_matrix(["def f(x):\n    return x + 1\n"], [TEST], LIMITS)  # the jail is up
    killer = _kill_later(pool, "pair")
    result = pool.run_matrix([SLOW_RIGHT], [TEST], LIMITS)[0][0]
    killer.join()
    assert result.outcome is Outcome.PASS


def test_a_jail_killed_from_outside_is_replaced_and_its_pair_run_again(pool: JailPool) -> None:
    pool.run_matrix(["def f(x):\n    return x + 1\n"], [TEST], LIMITS)
    (first,) = pool._all
    old_process = first.process
    killer = _kill_later(pool, "jail")
    tests = [TEST.replace("class T", f"class T{i}") for i in range(3)]
    row = pool.run_matrix([SLOW_RIGHT], tests, LIMITS)[0]
    killer.join()
    assert [cell.outcome for cell in row] == [Outcome.PASS] * 3
    assert first.process is not old_process  # a fresh jail took over


def test_a_pair_that_kills_itself_is_killed(pool: JailPool) -> None:
    solution = "import os, signal\n\ndef f(x):\n    os.kill(os.getpid(), signal.SIGKILL)\n"
    assert pool.run_matrix([solution], [TEST], LIMITS)[0][0].outcome is Outcome.KILLED


def test_a_pair_the_cgroup_kills_for_memory_is_memory(pool: JailPool) -> None:
    """Five processes of 128 MiB under a 256 MiB pair limit: the cgroup's OOM killer steps in."""
    if os.geteuid() != 0:
        pytest.skip("no writable cgroup for an ordinary user here")
    solution = (
        "import os, time\n\ndef f(x):\n    for _ in range(4):\n        if os.fork() == 0:\n"
        "            data = b'x' * (128 * 2**20)\n            time.sleep(30)\n"
        "    data = b'x' * (128 * 2**20)\n    time.sleep(30)\n"
    )
    result = pool.run_matrix([solution], [TEST], LIMITS)[0][0]
    assert result.outcome is Outcome.MEMORY, result
