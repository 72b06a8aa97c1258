"""The jail: a long-lived server that runs solutions against unit tests (DESIGN §6).

This file runs inside the sandbox as `python -I -S -B jail.py`, using the standard library only.
It is started once per worker process (by `sandbox.jail.Jail`) and then serves one request at a
time over its stdin/stdout: a solution, the unit tests to run it against, and the limits.

For each solution the jail (trusted: it never runs untrusted code) forks a *solution child* that
executes the solution's top-level code once. For each unit test, the solution child forks a *test
child* that runs the test class in a copy of the solution's globals, so every pair starts from the
same clean state, as if solution + "\\n\\n" + test had been executed on its own. The test child
reports its verdict on a pipe of the harness's, tagged with a nonce; the verdict never comes from an
exit status or from the output, which the code under test controls. The jail times every test from
outside and, on a timeout or anything unexpected, kills every process but itself and starts a
fresh solution child for the remaining tests.

Protocol, both directions: a 4-byte big-endian length, then that many bytes of JSON.
    request:  {"solution": str, "tests": [str], "classes": [str], "limits": {...}}
    response: {"results": [[outcome, duration_ms, tests_run, failures, errors, output], ...]}
"""

import builtins
import ctypes
import gc
import json
import os
import resource
import select
import signal
import struct
import sys
import time
import unittest
import unittest.case
import unittest.loader
import unittest.result
import unittest.suite

PASS, FAIL, ERROR, TIMEOUT, MEMORY, KILLED = "P", "F", "E", "T", "M", "K"

# References taken before any untrusted code runs: code under test can rebind module attributes
# (os.fork = ..., unittest.TestResult.addFailure = ...), but not these names.
_fork, _write, _read, _close, _exit = os.fork, os.write, os.read, os.close, os._exit
_waitpid, _kill, _pipe, _dup2, _getpid = os.waitpid, os.kill, os.pipe, os.dup2, os.getpid
_setpgid, _killpg = os.setpgid, os.killpg
_monotonic, _select, _setrlimit = time.monotonic, select.select, resource.setrlimit
_dumps, _loads, _compile, _exec, _dict = json.dumps, json.loads, compile, exec, dict
_TestLoader = unittest.TestLoader
_load_tests = unittest.TestLoader.loadTestsFromTestCase
_count_cases = unittest.TestSuite.countTestCases
_TestCase, _TestSuite = unittest.TestCase, unittest.TestSuite
_callable, _getattr, _sorted = callable, getattr, sorted
_WATCHED_MODULES = (unittest,)
_WATCHED_CLASSES = (
    unittest.TestCase,
    unittest.TestSuite,
    unittest.suite.BaseTestSuite,
    unittest.TestResult,
    unittest.TestLoader,
    unittest.case._Outcome,  # type: ignore[attr-defined]
)


def _snapshot() -> list:
    """Identity of the unittest machinery a verdict depends on: its module and its classes' members.

    Checked after every passing test, so it is kept to what a pass depends on: every value read here
    costs a copy-on-write page fault in the test child.
    """
    entries: list[tuple] = []
    for module in _WATCHED_MODULES:
        entries.extend((module, name, value) for name, value in list(vars(module).items()))
    for cls in _WATCHED_CLASSES:
        entries.extend((cls, name, value) for name, value in list(vars(cls).items()))
    entries.append((sys.modules, "unittest", sys.modules.get("unittest")))
    return entries


_ORIGINAL = _snapshot()
_MISSING = object()


def _untouched() -> bool:
    for owner, name, value in _ORIGINAL:
        current = owner.get(name, _MISSING) if owner is sys.modules else vars(owner).get(name, _MISSING)
        if current is not value:
            return False
    return True


def _suite_of(test_class):
    """`TestLoader().loadTestsFromTestCase(test_class)`, without walking TestCase's own members.

    For a class derived from TestCase alone (what CodeRM writes) its test methods are its own
    attributes, so listing them gives exactly the loader's suite, at a fraction of the copy-on-write
    faults of `dir()` over TestCase's hundred members. Anything else goes to the loader itself.
    """
    if test_class.__bases__ != (_TestCase,) or not isinstance(test_class, type):
        return _load_tests(_TestLoader(), test_class)
    names = _sorted(
        name for name in vars(test_class) if name.startswith("test") and _callable(_getattr(test_class, name))
    )
    if not names and hasattr(test_class, "runTest"):
        names = ["runTest"]
    return _TestSuite(map(test_class, names))


class _RecordingResult(unittest.TestResult):
    """A TestResult that also counts successes, so a pass needs every test to report one."""

    def __init__(self) -> None:
        super().__init__()
        self.successes = 0

    def addSuccess(self, test) -> None:  # noqa: N802 - unittest's name
        self.successes += 1


# ---------------------------------------------------------------------------------------------
# The jail process itself: trusted, runs no untrusted code.


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    _libc().prctl(option, value, 0, 0, 0)


PR_SET_DUMPABLE, PR_SET_CHILD_SUBREAPER, PR_SET_NO_NEW_PRIVS = 4, 36, 38


def _empty_folders(folders) -> None:
    for top in folders:
        if not os.listdir(top):
            continue
        for root, dirs, files in os.walk(top, topdown=False):
            for name in files:
                try:
                    os.unlink(os.path.join(root, name))
                except OSError:
                    pass
            for name in dirs:
                path = os.path.join(root, name)
                try:
                    os.chmod(path, 0o700)
                    os.rmdir(path)
                except OSError:
                    pass


def _read_exactly(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = _read(fd, size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def _read_message(fd: int):
    header = _read_exactly(fd, 4)
    if not header:
        return None
    return _loads(_read_exactly(fd, struct.unpack(">I", header)[0]))


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[_write(fd, data) :]


def _write_message(fd: int, message) -> None:
    body = _dumps(message).encode()
    _write_all(fd, struct.pack(">I", len(body)) + body)


class Jail:
    def __init__(self, in_pid_namespace: bool, scratch_folders: tuple) -> None:
        self.in_pid_namespace = in_pid_namespace
        # Emptied after every pair: the work directory (first) and, when the launcher mounted a
        # private one, /dev/shm. Only the launcher knows which folders are the jail's own.
        self.scratch_folders = scratch_folders
        self.me = _getpid()
        self.compiled: dict = {}

    def compile_tests(self, tests: list) -> list:
        """Code objects of the tests, compiled here once rather than in every test child."""
        if len(self.compiled) > 4096:
            self.compiled.clear()
        codes = []
        for test in tests:
            if test not in self.compiled:
                try:
                    self.compiled[test] = _compile(test, "<test>", "exec")
                except (SyntaxError, ValueError):
                    self.compiled[test] = None
            codes.append(self.compiled[test])
        return codes

    # -- process housekeeping --------------------------------------------------------------

    @staticmethod
    def _only_expected(expected: set) -> bool:
        """In our own pid namespace, /proc lists our processes only: a cheap check before a scan."""
        return {int(entry) for entry in os.listdir("/proc") if entry.isdigit()} <= expected

    def _process_table(self) -> dict:
        """pid -> parent pid of every process we can see."""
        table = {}
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
                table[int(entry)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue  # gone meanwhile
        return table

    def _descendants(self) -> set:
        table = self._process_table()
        found, frontier = set(), {self.me}
        while frontier:
            children = {pid for pid, parent in table.items() if parent in frontier and pid not in found}
            found |= children
            frontier = children
        return found

    def kill_all(self, keep: int = 0) -> None:
        """Kill every process the sandboxed code started (but `keep`), and reap them."""
        for _ in range(100):
            if self.in_pid_namespace and self._only_expected({1, keep}):
                break
            victims = self._descendants() - {keep}
            if not victims:
                break
            for pid in victims:
                try:
                    _kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            for pid in victims:  # our children (orphans are re-parented to us) die before we look again
                try:
                    _waitpid(pid, 0)
                except ChildProcessError:
                    pass
        self.reap()

    def wait_for_exit(self, pid: int, seconds: float) -> bool:
        """Reap `pid` if it exits within `seconds` (a solution child leaves right after its last report)."""
        deadline = _monotonic() + seconds
        while _monotonic() < deadline:
            try:
                done, _ = _waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                return True
            if done:
                return True
            _select([], [], [], 0.0005)
        return False

    def reap(self) -> dict:
        """Collect every exited child (orphans are re-parented to us); returns pid -> status."""
        statuses: dict[int, int] = {}
        while True:
            try:
                pid, status = _waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return statuses
            if pid == 0:
                return statuses
            statuses[pid] = status

    def clean_tmp(self) -> None:
        """Each pair starts with an empty work directory (and, in the namespace, an empty /dev/shm)."""
        _empty_folders(self.scratch_folders)

    # -- one request ------------------------------------------------------------------------

    def serve(self, request_fd: int, response_fd: int) -> None:
        while True:
            request = _read_message(request_fd)
            if request is None:
                return
            results = self.run_solution(request)
            self.kill_all()
            self.clean_tmp()
            _write_message(response_fd, {"results": results})

    def run_solution(self, request) -> list:
        tests, limits = request["tests"], request["limits"]
        request["codes"] = self.compile_tests(tests)
        try:  # compiled here, once, rather than after every fork of a solution child
            request["solution_code"] = _compile(request["solution"], "<solution>", "exec")
        except (SyntaxError, ValueError) as exc:
            return [[ERROR, 0, 0, 0, 0, f"{type(exc).__name__} in the solution"]] * len(tests)
        request["nonces"] = [os.urandom(8).hex() for _ in tests]
        results: list = [None] * len(tests)
        start = 0
        while start < len(tests):
            child = SolutionChild(self, request, start)
            failed_load = child.load(float(limits["time_limit_s"]))
            if failed_load is not None:  # every remaining pair shares the solution's fate
                results[start:] = [failed_load] * (len(tests) - start)
                child.stop()
                break
            index = start
            while index < len(tests) and child.alive:
                results[index] = child.next_result(index)
                index += 1
            # A timeout or a dead solution child ends this one; a fresh one takes the rest.
            child.stop(finished=index == len(tests) and child.alive)
            self.clean_tmp()
            start = index
        return results


class SolutionChild:
    """The jail's handle on one solution child, which runs tests `start`, `start + 1`, ... in turn.

    It reports `L <status>` once the solution is loaded and `R <index> <wait status>` after each
    test child; the test children write their verdicts to a pipe of their own. The jail times each
    test from the report of the one before.
    """

    def __init__(self, jail: Jail, request, start: int) -> None:
        self.jail = jail
        self.limits = request["limits"]
        self.nonces = request["nonces"]
        self.capture = bool(self.limits.get("capture_output"))
        self.output_limit = int(self.limits.get("output_limit_bytes", 0))
        self.evt_r, evt_w = _pipe()
        self.verdict_r, verdict_w = _pipe()
        self.out_r, out_w = _pipe() if self.capture else (-1, -1)
        self.events = b""
        self.verdict_lines = b""
        self.output = b""
        self.alive = True
        self.load_seconds = 0.0
        self.last_report = 0.0
        pid = _fork()
        if pid == 0:
            try:
                for fd in (self.evt_r, self.verdict_r, self.out_r):
                    if fd >= 0:
                        _close(fd)
                _solution_child_main(request, start, evt_w, verdict_w, out_w, jail.scratch_folders)
            finally:
                _exit(70)
        self.pid = pid
        for fd in (evt_w, verdict_w, out_w):
            if fd >= 0:
                _close(fd)
        self.watched = [fd for fd in (self.evt_r, self.verdict_r, self.out_r) if fd >= 0]
        for fd in self.watched:
            os.set_blocking(fd, False)

    def _drain(self, fd: int) -> bool:
        """Move what the pipe holds into our buffers; False at end of file."""
        while True:
            try:
                chunk = _read(fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            if fd == self.evt_r:
                self.events += chunk
            elif fd == self.verdict_r:
                self.verdict_lines += chunk
            elif self.output_limit:
                self.output = (self.output + chunk)[-self.output_limit :]

    def _wait_for(self, kind: str, deadline: float):
        """The next report of `kind` ('L' or 'R'), 'eof' if the child died, None at the deadline."""
        while True:
            while b"\n" in self.events:
                line, self.events = self.events.split(b"\n", 1)
                fields = line.decode("ascii", "replace").split()
                if fields and fields[0] == kind:
                    self.last_report = _monotonic()
                    return fields
            if self.evt_r not in self.watched:
                self.alive = False
                return "eof"
            remaining = deadline - _monotonic()
            if remaining <= 0:
                return None
            readable, _, _ = _select(self.watched, [], [], remaining)
            for fd in readable:
                if not self._drain(fd):
                    self.watched.remove(fd)

    def load(self, time_limit: float):
        """Wait for the solution's top-level code; a result for every pair if it did not load."""
        started = _monotonic()
        event = self._wait_for("L", started + time_limit)
        self.load_seconds = _monotonic() - started
        elapsed_ms = int(self.load_seconds * 1000)
        if event is None:
            return [TIMEOUT, elapsed_ms, 0, 0, 0, "the solution's top-level code timed out"]
        if event == "eof":
            return [KILLED, elapsed_ms, 0, 0, 0, "the solution's top-level code ended the process"]
        if event[1] == "memory":
            return [MEMORY, elapsed_ms, 0, 0, 0, "MemoryError in the solution's top-level code"]
        if event[1] != "ok":
            return [ERROR, elapsed_ms, 0, 0, 0, f"{event[2] if len(event) > 2 else 'error'} in the solution"]
        return None

    def next_result(self, index: int) -> list:
        # The paper gives the whole program (solution + test) one time limit.
        budget = max(float(self.limits["time_limit_s"]) - self.load_seconds, 0.05)
        started = self.last_report
        event = self._wait_for("R", started + budget) if self.alive else "eof"
        for fd in list(self.watched):
            if fd != self.evt_r and not self._drain(fd):
                self.watched.remove(fd)
        duration_ms = int((_monotonic() - started + self.load_seconds) * 1000)
        status = None
        if isinstance(event, list):
            if event[1] != str(index):
                self.alive = False  # reports out of order: the child is not to be trusted further
            else:
                status = int(event[2])
        elif event is None:
            self.alive = False  # timed out: stop() kills it, and a fresh child takes the next test
        text = self.output.decode("utf-8", "replace") if self.output_limit else ""
        self.output = b""
        verdicts, self.verdict_lines = self._verdicts_for(index)
        return self._judge(index, verdicts, status, event is None, duration_ms, text)

    def _verdicts_for(self, index: int) -> tuple:
        """This test's verdict lines, and what is left (a later test's, written early)."""
        mine, rest = [], []
        for line in self.verdict_lines.split(b"\n"):
            if not line:
                continue
            fields = line.split()
            if len(fields) > 1 and fields[1].isdigit() and int(fields[1]) > index:
                rest.append(line)
            else:
                mine.append(line)
        return mine, b"".join(line + b"\n" for line in rest)

    def _judge(self, index, verdicts, status, timed_out, duration_ms, text) -> list:
        expected = f"{self.nonces[index]} {index} ".encode()
        if len(verdicts) == 1 and verdicts[0].startswith(expected):
            fields = verdicts[0][len(expected) :].decode().split()
            if len(fields) == 4 and fields[0] in (PASS, FAIL, ERROR, MEMORY):
                outcome, run, failures, errors = fields
                return [outcome, duration_ms, int(run), int(failures), int(errors), text]
        if verdicts:
            return [ERROR, duration_ms, 0, 0, 0, (text + "\n[coderm] forged or duplicate verdict").strip()]
        if timed_out:
            return [TIMEOUT, duration_ms, 0, 0, 0, text]
        if status is not None and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGXCPU:
            return [TIMEOUT, duration_ms, 0, 0, 0, text]
        return [KILLED, duration_ms, 0, 0, 0, text]

    def stop(self, finished: bool = False) -> None:
        """Close the pipes and make sure nothing of this solution runs on."""
        for fd in (self.evt_r, self.verdict_r, self.out_r):
            if fd >= 0:
                try:
                    _close(fd)
                except OSError:
                    pass
        self.alive = False
        exited = finished and self.jail.wait_for_exit(self.pid, 0.1)
        if exited and self.jail.in_pid_namespace and self.jail._only_expected({1}):
            return
        self.jail.kill_all()


# ---------------------------------------------------------------------------------------------
# The solution child and its test children: these run untrusted code.


def _limit_self(limits) -> None:
    memory = int(limits["memory_bytes"])
    _setrlimit(resource.RLIMIT_AS, (memory, memory))
    _setrlimit(resource.RLIMIT_NOFILE, (int(limits["max_open_files"]),) * 2)
    _setrlimit(resource.RLIMIT_NPROC, (int(limits["max_processes"]),) * 2)
    _setrlimit(resource.RLIMIT_FSIZE, (int(limits["file_size_bytes"]),) * 2)
    _setrlimit(resource.RLIMIT_CORE, (0, 0))
    try:  # let the kernel's OOM killer pick sandboxed code before the jail
        with open("/proc/self/oom_score_adj", "w") as adj:
            adj.write("1000")
    except OSError:
        pass


def _solution_child_main(request, start, evt_w, verdict_w, out_w, scratch_folders) -> None:
    os.setsid()
    keep = {evt_w, verdict_w}
    null = os.open("/dev/null", os.O_RDWR)
    _dup2(null, 0)
    _dup2(out_w if out_w >= 0 else null, 1)
    _dup2(out_w if out_w >= 0 else null, 2)
    # Nothing of the jail's stays reachable (its protocol pipes above all): close every other fd.
    previous = 2
    for fd in sorted(keep) + [os.sysconf("SC_OPEN_MAX")]:
        os.closerange(previous + 1, fd)
        previous = fd
    limits = request["limits"]
    _limit_self(limits)
    if out_w >= 0:  # line-buffered, so what a test prints is in the pipe before its verdict
        sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
        sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    # Not "__main__": like the paper's harness, a solution's `if __name__ == "__main__":` stays idle.
    namespace = {"__name__": "solution", "__builtins__": builtins}
    status, detail = "ok", "-"
    try:
        _exec(request["solution_code"], namespace)
    except MemoryError:
        status = "memory"
    except BaseException as exc:  # noqa: BLE001 - SystemExit included: the program ended early
        status, detail = "error", type(exc).__name__
    _write(evt_w, f"L {status} {detail}\n".encode())
    if status != "ok":
        _exit(0)
    # What exists now is shared by every test child: keep the collector from touching (and so
    # copying) it in each of them.
    gc.freeze()
    codes, classes, nonces = request["codes"], request["classes"], request["nonces"]
    cpu_seconds = int(float(limits["time_limit_s"])) + 1
    for index in range(start, len(codes)):
        pid = _fork()
        if pid == 0:
            _setpgid(0, 0)
            _setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds + 1))
            _close(evt_w)
            _test_child_main(namespace, codes[index], classes[index], index, nonces[index], verdict_w)
        _, wait_status = _waitpid(pid, 0)
        try:  # what the test started and left behind (the jail kills the rest after the solution)
            _killpg(pid, signal.SIGKILL)
        except OSError:
            pass
        _empty_folders(scratch_folders)  # the next pair starts with an empty work directory
        _write(evt_w, f"R {index} {wait_status}\n".encode())
    _exit(0)


def _test_child_main(namespace, test_code, class_name, index, nonce, verdict_w) -> None:
    gc.disable()  # a short life: collecting would only copy pages shared with the solution child
    outcome, run, failures, errors = ERROR, 0, 0, 0
    try:
        scope = _dict(namespace)
        _exec(test_code, scope)
        suite = _suite_of(scope[class_name])
        expected = _count_cases(suite)
        result = _RecordingResult()
        result.startTestRun()
        suite(result)
        result.stopTestRun()
        run, failures = result.testsRun, len(result.failures)
        errors = len(result.errors)
        for test, trace in result.errors + result.failures:  # shown when output is captured
            sys.stderr.write(f"{'=' * 70}\n{test}\n{'-' * 70}\n{trace}\n")
        reported = result.successes + len(result.skipped) + len(result.expectedFailures)
        memory = any("MemoryError" in trace for _, trace in result.errors)
        if memory:
            outcome = MEMORY
        elif failures or errors or result.unexpectedSuccesses:
            outcome = ERROR if errors and not failures else FAIL
        elif reported == expected == run:
            outcome = PASS
        else:
            outcome = ERROR  # tests that vanished without a verdict of their own
    except MemoryError:
        outcome = MEMORY
    except BaseException as exc:  # noqa: BLE001 - the class failed to load, or the run was broken out of
        outcome = ERROR
        try:
            sys.stderr.write(f"{type(exc).__name__}: {exc}\n")
        except BaseException:  # noqa: BLE001, S110
            pass
    if outcome == PASS and not _untouched():
        outcome = ERROR  # the unittest machinery or builtins were patched: no trustworthy pass
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110 - the code under test may have replaced them
            pass
    _write(verdict_w, f"{nonce} {index} {outcome} {run} {failures} {errors}\n".encode())
    _exit(0)


def main() -> None:
    in_pid_namespace = os.getpid() == 1
    scratch_folders, jail_uid, cpu = tuple(sys.argv[1].split(",")), int(sys.argv[2]), int(sys.argv[3])
    if cpu >= 0:
        # The jail, its solution child and test child hand work to each other hundreds of times a
        # second: on one CPU they skip the cross-CPU wake-ups, which cost most in virtual machines.
        os.sched_setaffinity(0, {cpu})
    if jail_uid >= 0 and os.getuid() == 0:
        # Started by root: drop to an unprivileged uid of this jail's own, which also makes
        # RLIMIT_NPROC count (the kernel never applies it to root).
        os.setgroups([])
        os.setgid(jail_uid)
        os.setuid(jail_uid)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    _prctl(PR_SET_DUMPABLE, 0)  # other processes of this uid cannot read or write our memory
    _prctl(PR_SET_CHILD_SUBREAPER, 1)  # orphans of sandboxed code come back to us to be killed
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGPIPE"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    # Move the protocol pipes out of the way; 0, 1 and 2 become /dev/null.
    request_fd, response_fd = os.dup(0), os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1, 2):
        _dup2(null, fd)
    _write_message(response_fd, {"ready": True, "pid_namespace": in_pid_namespace, "uid": os.getuid()})
    os.chdir(scratch_folders[0])
    Jail(in_pid_namespace, scratch_folders).serve(request_fd, response_fd)


if __name__ == "__main__":
    main()
