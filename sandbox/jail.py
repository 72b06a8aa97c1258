"""The worker's side of a jail: start it once, send it solutions, read back outcomes.

A jail that dies is started again; the pair it was running is run once more before it is reported
as `killed` (see `Jail.run`). A sandbox failure is a result, never a crash of the worker.
"""

from __future__ import annotations

import json
import logging
import os
import selectors
import signal
import struct
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from sandbox.cgroups import oom_kills
from sandbox.isolation import LaunchSpec, SandboxUnavailableError, build_launch
from sandbox.outcomes import Outcome, PairResult
from sandbox.policy import SandboxPolicy

logger = logging.getLogger(__name__)

_START_TIMEOUT_S = 30.0
# Told the results of a solution so far, whether to run its next test.
KeepGoing = Callable[[list[PairResult]], bool]
# On top of the pairs' own limits: forks, the solution's load, and the jail's bookkeeping.
_SLACK_PER_TEST_S = 0.5
_SLACK_PER_REQUEST_S = 10.0


class _JailDied(Exception):
    pass


class Jail:
    """One long-lived jail process; not thread-safe (a `JailPool` hands each to one thread at a time)."""

    def __init__(self, policy: SandboxPolicy) -> None:
        self.policy = policy
        self.process: subprocess.Popen[bytes] | None = None
        self.spec: LaunchSpec | None = None
        self.memory_bytes = 0
        self.stderr: IO[bytes] | None = None
        self.info: dict[str, Any] = {}

    def _ceiling(self, memory_bytes: int) -> int:
        # The cgroup holds the jail and one pair at a time: the pair's memory, whatever it keeps in
        # its tmpfs, and the jail's own.
        policy = self.policy
        return memory_bytes + ((policy.tmpfs_mb + policy.shm_mb + policy.jail_memory_mb) << 20)

    def start(self, memory_bytes: int) -> None:
        self.memory_bytes = memory_bytes
        self.spec = build_launch(self.policy, memory_bytes=self._ceiling(memory_bytes))
        # In memory, not in TMPDIR: a full temporary folder must not keep jails from starting.
        self.stderr = os.fdopen(os.memfd_create("coderm-jail-stderr", 0), "w+b")  # close() closes it
        self.process = subprocess.Popen(
            self.spec.argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.stderr,
            env=self.spec.env,
            pass_fds=self.spec.pass_fds,
            preexec_fn=self.spec.preexec,
            close_fds=True,
        )
        try:
            self.info = self._read_message(time.monotonic() + _START_TIMEOUT_S)
        except _JailDied as exc:
            message = self._stderr_text() or str(exc)
            self.close()
            hint = (
                "; set CODERM_SANDBOX_ISOLATION=rlimits to run without namespaces (weaker)"
                if self.policy.isolation == "namespaces"
                else ""
            )
            raise SandboxUnavailableError(f"the sandbox jail did not start: {message.strip()}{hint}") from exc
        if self.policy.isolation == "rlimits":
            logger.warning(
                "sandbox isolation is 'rlimits': no namespaces; sandboxed code can use the network, "
                "read world-readable host files and write the host's /tmp"
            )

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def run(
        self,
        solution: str,
        tests: Sequence[str],
        limits: dict[str, Any],
        keep_going: KeepGoing | None = None,
    ) -> list[PairResult]:
        """Run one solution against `tests`; once `keep_going(results so far)` says no, the rest are
        `not run` (pruning: the solution can no longer win). With `keep_going` the jail waits for
        the answer before it starts the next test, so no test runs after a no.

        The jail parses and compiles both itself: what does not compile is `invalid`, with the
        reason. A pair the jail could not finish for a reason that is not its own (the jail, or the
        pair's process, killed from outside: an operator, a node drain, the host's OOM killer) is run
        once more in a fresh process or jail; only a pair that dies that way twice is `killed`. A pair
        that the jail's cgroup killed for memory is `memory`.
        """
        results: list[PairResult] = []
        killed: list[tuple[int, int]] = []  # (position, signal) of pair children killed without a verdict
        retried: set[int] = set()
        while len(results) < len(tests):
            done = self._request(solution, tests[len(results) :], limits, keep_going, results)
            killed += [(len(results) + i, signalled) for i, (_, signalled) in enumerate(done) if signalled]
            results += [result for result, _ in done]
            if len(results) < len(tests):  # the jail died while it ran tests[len(results)]
                if len(results) in retried:
                    results.append(PairResult(Outcome.KILLED, 0, output="the sandbox jail died, twice"))
                retried.add(len(results))
        for position, signalled in killed:
            if signalled == signal.SIGKILL and position not in retried:  # a kill it did not bring on itself
                again = self._request(solution, [tests[position]], limits, None, [])
                if again:
                    results[position] = again[0][0]
        return results

    def _request(
        self,
        solution: str,
        tests: Sequence[str],
        limits: dict[str, Any],
        keep_going: KeepGoing | None,
        before: list[PairResult],
    ) -> list[tuple[PairResult, int]]:
        """(result, signal that killed the pair child without a verdict, or 0) for each test, in
        order, as far as the jail got: fewer than `tests` if it died (it starts afresh next time)."""
        memory_bytes = int(limits["memory_bytes"])
        if not self.running:
            self.close()
            self.start(memory_bytes)
        elif memory_bytes != self.memory_bytes and self.spec is not None and self.spec.cgroup is not None:
            self.spec.cgroup.set_memory(self._ceiling(memory_bytes))  # a job with another memory limit
            self.memory_bytes = memory_bytes
        cgroup = self.spec.cgroup if self.spec is not None else None
        events = cgroup.oom_events_file() if cgroup is not None else None
        per_pair = 2 * (float(limits["time_limit_s"]) + _SLACK_PER_TEST_S) + _SLACK_PER_REQUEST_S
        done: list[tuple[PairResult, int]] = []
        stopped = False
        oom_before = oom_kills(events)
        try:
            confirm = keep_going is not None  # the jail waits for a word after each test
            self._write_message(
                {"solution": solution, "tests": list(tests), "limits": limits, "confirm": confirm}
            )
            for _ in tests:
                oom_before = oom_kills(events)
                outcome, duration_ms, run, failures, errors, output, signalled = self._read_message(
                    time.monotonic() + per_pair
                )
                result = PairResult(Outcome(outcome), duration_ms, run, failures, errors, output)
                if oom_kills(events) > oom_before and result.outcome is not Outcome.PASS:
                    # The cgroup's OOM killer took one of the pair's processes: the pair's own
                    # memory, not a kill from outside, whichever process it was.
                    result, signalled = PairResult(Outcome.MEMORY, duration_ms, output=output), 0
                done.append((result, signalled))
                if keep_going is not None and not stopped and len(done) < len(tests):
                    try:
                        stopped = not keep_going(before + [r for r, _ in done])
                    except BaseException:
                        self.close()  # it waits for a word that will not come
                        raise
                    # On stop the rest come back not run, at once.
                    self._write_message({"stop": True} if stopped else {"go": True})
        except (_JailDied, BrokenPipeError) as exc:
            logger.warning("sandbox jail died during a request (%s): %s", exc, self._stderr_text()[-500:])
            self.close()
            if len(done) < len(tests) and oom_kills(events) > oom_before:
                # The cgroup's OOM killer took the jail while this pair ran: the pair's own memory.
                done.append((PairResult(Outcome.MEMORY, 0, output="the jail's memory ran out"), 0))
        return done

    def close(self) -> None:
        if self.process is not None:
            if self.process.poll() is None:
                self.process.kill()
            self.process.wait()
            for stream in (self.process.stdin, self.process.stdout):
                if stream is not None:
                    stream.close()
            self.process = None
        if self.spec is not None:
            self.spec.cleanup()
            self.spec = None
        if self.stderr is not None:
            self.stderr.close()
            self.stderr = None

    def _stderr_text(self) -> str:
        if self.stderr is None:
            return ""
        self.stderr.seek(0)
        return self.stderr.read().decode("utf-8", "replace")

    def _write_message(self, message: dict[str, Any]) -> None:
        assert self.process is not None and self.process.stdin is not None
        body = json.dumps(message).encode()
        self.process.stdin.write(struct.pack(">I", len(body)) + body)
        self.process.stdin.flush()

    def _read_message(self, deadline: float) -> Any:
        assert self.process is not None and self.process.stdout is not None
        header = self._read_exactly(4, deadline)
        return json.loads(self._read_exactly(struct.unpack(">I", header)[0], deadline))

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        assert self.process is not None and self.process.stdout is not None
        stream = self.process.stdout
        data = b""
        with selectors.DefaultSelector() as selector:
            selector.register(stream, selectors.EVENT_READ)
            while len(data) < size:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise _JailDied("no answer from the jail in time")
                if not selector.select(remaining):
                    continue
                # The raw fd, not the buffered stream: buffered bytes would be invisible to select().
                chunk = os.read(stream.fileno(), size - len(data))
                if not chunk:
                    raise _JailDied(f"the jail exited with status {self.process.wait()}")
                data += chunk
        return data
