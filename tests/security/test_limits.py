"""Limits without holes: top-level code and its threads, CPU pinning, memory across processes,
and programs built to break the parser, checked from outside.
"""

from __future__ import annotations

import time

import pytest
from hostile import LIMITS, NOT_PASS, WANTS_42, attack, run

from agents.extract import check_solution_code, clean_unit_test_code
from orchestrator.core.config import SandboxLimits
from sandbox.executor import JailPool
from sandbox.outcomes import Outcome

pytestmark = pytest.mark.security


def test_top_level_code_is_under_the_time_limit(pool: JailPool) -> None:
    started = time.monotonic()
    result = run(pool, "while True:\n    pass\n" + "def f():\n    return 42\n")
    assert result.outcome is Outcome.TIMEOUT
    assert time.monotonic() - started < LIMITS.time_limit_s + 3


def test_top_level_code_cannot_leave_threads_running(pool: JailPool) -> None:
    """No thread can start (the filter refuses it): nothing burns CPU through the tests."""
    solution = (
        "import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)], daemon=True).start()\n"
        "def f():\n    return 42\n"
    )
    result = run(pool, solution)
    assert result.outcome is Outcome.ERROR and "can't start new thread" in result.output


def test_threads_are_refused_at_test_time_too(pool: JailPool) -> None:
    result = run(pool, attack("threading.Thread(target=time.sleep, args=(1,)).start()"))
    assert result.outcome is Outcome.ERROR


def test_cpu_pinning_cannot_be_changed(pool: JailPool) -> None:
    result = run(pool, attack("os.sched_setaffinity(0, set(range(os.cpu_count() or 1)))"))
    assert result.outcome is Outcome.ERROR and "PermissionError" in result.output


def test_signal_handlers_cannot_be_installed(pool: JailPool) -> None:
    result = run(pool, attack("signal.signal(signal.SIGALRM, lambda *a: None)"))
    assert result.outcome is Outcome.ERROR


def test_no_other_program_runs(pool: JailPool) -> None:
    """Neither through the standard library nor around its audit event."""
    for body in (
        "import subprocess\nsubprocess.run(['/bin/true'], check=True)",
        "os.execv(sys.executable, [sys.executable, '-c', 'pass'])",
        "import _posixsubprocess\nr, w = os.pipe()\n_posixsubprocess.fork_exec([b'/bin/true'], [b'/bin/true'], True, (), None, None,"
        " -1, -1, -1, -1, -1, -1, r, w, True, False, None, None, None, -1, None, False)\n"
        "os.close(w)\nassert os.read(r, 100) == b''",
    ):
        assert run(pool, attack(body)).outcome in NOT_PASS, body


def test_memory_is_bounded_for_the_pair_not_per_process(pool: JailPool) -> None:
    """Six processes of 128 MiB each under a 256 MiB limit (RLIMIT_AS holds each of them): the six
    never hold their memory at once, the jail's cgroup kills one first. The control: under 1 GiB
    they do."""
    body = (
        "ready_r, ready_w = os.pipe()\nfor _ in range(6):\n    if os.fork() == 0:\n"
        "        data = b'x' * (128 * 2**20)\n        os.write(ready_w, b'.')\n        time.sleep(60)\n"
        "os.close(ready_w)\nimport select\nheld = b''\nwhile len(held) < 6:\n"
        "    assert os.waitpid(-1, os.WNOHANG) == (0, 0), 'a child was killed before all held their memory'\n"
        "    if select.select([ready_r], [], [], 0.05)[0]:\n        held += os.read(ready_r, 6)"
    )
    roomy = run(pool, attack(body), limits=SandboxLimits(time_limit_s=10.0, memory_mb=1024))
    assert roomy.outcome is Outcome.PASS, roomy
    tight = run(pool, attack(body), limits=SandboxLimits(time_limit_s=10.0, memory_mb=256))
    assert tight.outcome in NOT_PASS


@pytest.mark.parametrize(
    "program",
    [
        "x = " + "not " * 6000 + "1\n",
        "x = " + "(" * 5000 + "1" + ")" * 5000 + "\n",
        "x = " + "-" * 100000 + "1\n",
        "x = [" * 3000 + "]" * 3000 + "\n",
        "def f():\n    return 42\n" + "# padding\n" * 40000,
        "def f():\n    return 42\n\x00",
    ],
    ids=["not-chain", "parentheses", "unary-chain", "nested-lists", "too-large", "null-byte"],
)
def test_a_parser_bomb_is_invalid_not_a_crash(pool: JailPool, program: str) -> None:
    """In the jail (solution or test) and in the worker's extraction: invalid, with a reason."""
    as_solution = run(pool, program)
    assert as_solution.outcome is Outcome.INVALID and as_solution.output
    as_test = run(pool, "def f():\n    return 42\n", program + WANTS_42)
    assert as_test.outcome is Outcome.INVALID
    assert not check_solution_code(program).valid
    assert not clean_unit_test_code(program + WANTS_42).valid
