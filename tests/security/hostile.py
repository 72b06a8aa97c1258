"""What the security tests share: the attack templates and the checks made from outside the jail.

Most attacks are written as a solution whose `f()` returns 42 only if the attack worked (or whose
`f()` is wrong and the attack tries to make its pair pass anyway); the unit test asserts
`f() == 42`, so a contained attack never passes. After every program `run` looks at the jail from
the host: the jail is alive and alone in its pid namespace (nothing the program started survives),
and an ordinary pair still passes.
"""

from __future__ import annotations

import os
import socketserver
import uuid
from pathlib import Path

from services import process_parents

from orchestrator.core.config import SandboxLimits
from sandbox.executor import JailPool
from sandbox.outcomes import Outcome, PairResult
from sandbox.policy import SandboxPolicy

WANTS_42 = "import unittest\n\n\nclass TestF(unittest.TestCase):\n    def test_f(self):\n        self.assertEqual(f(), 42)\n"
HONEST = "def f():\n    return 42\n"
LIMITS = SandboxLimits(time_limit_s=1.0, memory_mb=512, output_limit_bytes=4096)
CANARY = f"coderm-canary-{uuid.uuid4().hex}"
HOST_FILE = Path(f"/tmp/coderm-host-secret-{uuid.uuid4().hex}")
OUTSIDE = Path(f"/var/tmp/coderm-outside-{uuid.uuid4().hex}")  # the jail's /tmp is its own
ATTACK_TARGETS = [Path("/tmp/big"), Path("/tmp/huge"), Path("/tmp/mark"), Path("/dev/shm/big"), OUTSIDE]
NOT_PASS = {Outcome.FAIL, Outcome.ERROR, Outcome.TIMEOUT, Outcome.MEMORY, Outcome.KILLED}


def attack(body: str) -> str:
    """A solution whose f() runs `body` and returns 42 only if the body gets to its end."""
    indented = "\n".join("    " + line for line in body.strip("\n").splitlines())
    return f"import os, sys, socket, signal, threading, time\n\n\ndef f():\n{indented}\n    return 42\n"


def unit_test(*lines: str, name: str = "TestF") -> str:
    """A unittest class whose single method runs `lines`."""
    body = "\n".join(f"        {line}" for line in lines)
    return f"import unittest\n\n\nclass {name}(unittest.TestCase):\n    def test_f(self):\n{body}\n"


class Counting(socketserver.BaseRequestHandler):
    connections = 0

    def handle(self) -> None:
        Counting.connections += 1


def sandbox_owned_files(policy: SandboxPolicy) -> list[Path]:
    """Files in the host's /tmp and /dev/shm owned by a jail's uid: sandboxed code wrote them."""
    owned = []
    for folder in (Path("/tmp"), Path("/dev/shm")):
        for entry in folder.iterdir():
            try:
                if entry.lstat().st_uid >= policy.uid_base:
                    owned.append(entry)
            except FileNotFoundError:  # other processes come and go
                continue
    return owned


def jail_namespace_members(pool: JailPool) -> list[int]:
    """Host pids of every process in the jail's pid namespace, seen from outside."""
    (jail,) = pool._all
    assert jail.process is not None and jail.running, "the jail died"
    launcher = jail.process.pid
    children = [pid for pid, parent in process_parents().items() if parent == launcher]
    inside = children[0] if children else launcher
    namespace = os.readlink(f"/proc/{inside}/ns/pid")
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.readlink(f"/proc/{entry}/ns/pid") == namespace:
                    members.append(int(entry))
            except OSError:
                continue
    return members


def run(pool: JailPool, solution: str, test: str = WANTS_42, limits: SandboxLimits = LIMITS) -> PairResult:
    """One pair, with its output captured; then, from outside, the jail is alive and alone, and an
    honest pair still passes."""
    result = pool.run_matrix([solution], [test], limits, capture_output=True)[0][0]
    assert len(jail_namespace_members(pool)) == 1, "processes survived the request"
    assert pool.run_matrix([HONEST], [WANTS_42], LIMITS)[0][0].outcome is Outcome.PASS
    return result


def run_in_order(pool: JailPool, solutions: list[str], test: str) -> list[PairResult]:
    """Several solutions through one jail, one after the other (the way a pool runs a problem)."""
    return [pool.run_matrix([solution], [test], LIMITS, capture_output=True)[0][0] for solution in solutions]
