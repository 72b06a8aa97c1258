"""Executes the matrix of solutions x unit tests, one fresh interpreter per pair.

Each pair runs in its own `python -I -S` process with an empty environment and rlimits on memory,
CPU time, file size and processes; the verdict travels over a pipe that the harness opens before the
program runs, never through the program's exit status or output.
"""

from __future__ import annotations

import ast
import json
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from orchestrator.config import SandboxLimits
from sandbox.outcomes import Outcome, PairResult

_HARNESS = Path(__file__).with_name("_pair_harness.py")
# Interpreter start-up is not the program's time: the wall clock allows for it on top of the limit.
_STARTUP_ALLOWANCE_S = 1.0


def test_class_name(test_code: str) -> str | None:
    """The name of the single TestCase class of an extracted unit test."""
    try:
        tree = ast.parse(test_code)
    except (SyntaxError, ValueError):
        return None
    classes = [node.name for node in tree.body if isinstance(node, ast.ClassDef)]
    return classes[0] if len(classes) == 1 else None


def _limit_child(limits: SandboxLimits) -> Callable[[], None]:
    def apply() -> None:
        memory = limits.memory_mb * 1024 * 1024
        cpu = int(limits.time_limit_s) + 1
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        os.setsid()

    return apply


def run_pair(solution: str, test: str, limits: SandboxLimits) -> PairResult:
    class_name = test_class_name(test)
    if class_name is None:
        return PairResult(Outcome.INVALID, 0)
    try:
        compile(solution + "\n\n" + test, "<program>", "exec")
    except (SyntaxError, ValueError):
        return PairResult(Outcome.INVALID, 0)

    read_fd, write_fd = os.pipe()
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-I", "-S", str(_HARNESS), str(write_fd)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        pass_fds=(write_fd,),
        env={},
        cwd="/tmp",
        preexec_fn=_limit_child(limits),
    )
    os.close(write_fd)
    payload = json.dumps({"solution": solution, "test": test, "class_name": class_name}).encode()
    timed_out = False
    try:
        output, _ = process.communicate(payload, timeout=limits.time_limit_s + _STARTUP_ALLOWANCE_S)
    except subprocess.TimeoutExpired:
        timed_out = True
        os.killpg(process.pid, 9)
        output, _ = process.communicate()
    duration_ms = int((time.perf_counter() - started) * 1000)
    with os.fdopen(read_fd, "rb") as verdict_pipe:
        raw_verdict = verdict_pipe.read()
    tail = output[-limits.output_limit_bytes :].decode("utf-8", "replace") if output else ""
    if timed_out:
        return PairResult(Outcome.TIMEOUT, duration_ms, output=tail)
    return _judge(raw_verdict, process.returncode, duration_ms, tail)


def _judge(raw_verdict: bytes, returncode: int, duration_ms: int, output: str) -> PairResult:
    try:
        verdict = json.loads(raw_verdict)
    except ValueError:
        if returncode == -9 or returncode == -24:  # SIGKILL / SIGXCPU from the CPU limit
            return PairResult(Outcome.TIMEOUT, duration_ms, output=output)
        return PairResult(Outcome.KILLED, duration_ms, output=output)
    if verdict.get("memory"):
        return PairResult(Outcome.MEMORY, duration_ms, output=output)
    if "exception" in verdict:
        return PairResult(Outcome.ERROR, duration_ms, output=output)
    counts = {k: int(verdict[k]) for k in ("tests_run", "failures", "errors")}
    if verdict["successful"]:
        return PairResult(Outcome.PASS, duration_ms, output=output, **counts)
    outcome = Outcome.ERROR if counts["errors"] and not counts["failures"] else Outcome.FAIL
    return PairResult(outcome, duration_ms, output=output, **counts)


def run_matrix(
    solutions: Sequence[str], tests: Sequence[str], limits: SandboxLimits
) -> list[list[PairResult]]:
    """Every solution against every test: `result[i][j]` is solution i against test j."""
    return [[run_pair(solution, test, limits) for test in tests] for solution in solutions]
