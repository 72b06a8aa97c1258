"""One solution changing another's verdict: several solutions through one long-lived jail, in order.

Each case runs a hostile solution and then an honest one (or a reader looking for what the first
left) through the same jail, as a pool runs a problem, and checks every verdict from outside. A
pair must start from a clean slate: no file, link, shared-memory segment, semaphore or process of
an earlier pair may be seen by a later one, and nothing an earlier one left may slow it down.
"""

from __future__ import annotations

import pytest
from hostile import LIMITS, NOT_PASS, WANTS_42, attack, jail_namespace_members, run_in_order

from sandbox.executor import JailPool
from sandbox.outcomes import Outcome, PairResult

pytestmark = pytest.mark.security

HONEST_WRITER = "def f():\n    with open('/tmp/out', 'w') as out:\n        out.write('42')\n    return int(open('/tmp/out').read())\n"
# Passes only on a clean slate: nothing in /tmp or /dev/shm, and its own file writable.
CLEAN_READER = attack(
    "assert os.listdir('/tmp') == [] and os.listdir('/dev/shm') == [], (os.listdir('/tmp'), os.listdir('/dev/shm'))\n"
    "with open('/tmp/mine', 'w') as out:\n    out.write('x')"
)


def _in_order(pool: JailPool, *solutions: str, test: str = WANTS_42) -> list[Outcome]:
    results = run_in_order(pool, list(solutions), test)
    assert len(jail_namespace_members(pool)) == 1, "processes survived"
    return [r.outcome for r in results]


CASES = {
    "a symlink to a directory left in /tmp": (
        "os.makedirs('/tmp/elsewhere', exist_ok=True)\nos.symlink('/tmp/elsewhere', '/tmp/out')\n"
        "os.chmod('/tmp/elsewhere', 0o500)\nreturn 0"
    ),
    "a symlink to / left in /tmp": "os.symlink('/', '/tmp/out')\nos.symlink('/', '/tmp/root')\nreturn 0",
    "100,000 leftover links": "for i in range(100000):\n    os.symlink('/', f'/tmp/l{i}')\nreturn 0",
    "a full /tmp": (
        "try:\n    with open('/tmp/fill', 'wb') as out:\n        while True:\n            out.write(b'x' * 2**20)\n"
        "except OSError:\n    pass\nreturn 0"
    ),
    "a file in /dev/shm": "open('/dev/shm/leftover', 'w').write('42')\nreturn 0",
    "a POSIX semaphore and shared memory": (
        "import multiprocessing.shared_memory, _multiprocessing\n"
        "multiprocessing.shared_memory.SharedMemory('coderm-left', create=True, size=4096)\n"
        "_multiprocessing.SemLock(1, 1, 1, '/coderm-sem', False)\nreturn 0"
    ),
    "a changed mode of /tmp itself": "os.chmod('/tmp', 0o500)\nreturn 0",
    "an attribute on /tmp itself": "os.setxattr('/tmp', 'user.coderm', b'left')\nreturn 0",
    "a daemon that writes later": (
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(0.2)\n"
        "        open('/tmp/late', 'w').write('x')\n        time.sleep(60)\n    os._exit(0)\nreturn 0"
    ),
    "a daemon that kills whatever runs next": (
        "if os.fork() == 0:\n    os.setsid()\n    while True:\n        os.kill(-1, 9)\n        time.sleep(0.001)\nreturn 0"
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_what_a_solution_leaves_does_not_reach_the_next(pool: JailPool, name: str) -> None:
    outcomes = _in_order(pool, attack(CASES[name]), CLEAN_READER, attack("return 0") + HONEST_WRITER)
    assert outcomes[0] in NOT_PASS
    assert outcomes[1] is Outcome.PASS, f"{name}: the next solution did not start clean"
    assert outcomes[2] is Outcome.PASS, f"{name}: an honest writer failed after it"


def test_system_v_ipc_cannot_carry_state_to_a_later_solution(pool: JailPool) -> None:
    """The issue's writer/reader pair: the writer cannot even create a segment (no ctypes, no
    programs, no System V calls), so the reader, a different solution, finds none."""
    writer = attack(
        "for way in ('import ctypes', \"os.execv('/usr/bin/ipcmk', ['ipcmk', '-M', '4096'])\"):\n"
        "    try:\n        exec(way)\n    except (ImportError, OSError):\n        pass\nreturn 0"
    )
    reader = attack(
        "import subprocess\nsubprocess.run(['ipcs', '-m'], check=True)\nreturn 0"  # refused: no programs
    )
    assert _in_order(pool, writer, reader) == [Outcome.FAIL, Outcome.ERROR]


def test_a_file_left_by_one_solution_is_not_seen_by_the_next(pool: JailPool) -> None:
    writer = attack(
        "open('/tmp/answer', 'w').write('42')\nopen('/dev/shm/answer', 'w').write('42')\nreturn 0"
    )
    reader = "import os\n\ndef f():\n    for path in ('/tmp/answer', '/dev/shm/answer'):\n        if os.path.exists(path):\n            return 42\n    return 0\n"
    assert _in_order(pool, writer, reader) == [Outcome.FAIL, Outcome.FAIL]


@pytest.mark.parametrize("name", ["a daemon that writes later", "a daemon that kills whatever runs next"])
def test_what_a_solution_leaves_is_gone_while_the_jail_waits_for_the_word_of_early_exit(
    pool: JailPool, name: str
) -> None:
    """In an early-exit request the jail waits, after each result, for the worker's go or stop. What
    the pair started must be gone by then, not left running through the wait or past a stop."""
    alive_while_waiting: list[int] = []

    def stop_after_the_first(solution: str, results: list[PairResult]) -> bool:
        alive_while_waiting.append(len(jail_namespace_members(pool)))
        return False

    second_test = WANTS_42.replace("TestF", "TestG")
    (row,) = pool.run_matrix(
        [attack(CASES[name])], [WANTS_42, second_test], LIMITS, keep_going=stop_after_the_first
    )
    assert row[0].outcome in NOT_PASS and row[1].outcome is Outcome.NOT_RUN
    assert alive_while_waiting == [1], "the pair's processes outlived it into the wait"
    assert _in_order(pool, CLEAN_READER) == [Outcome.PASS]
