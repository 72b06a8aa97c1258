"""The jail: a long-lived server inside the sandbox that runs solutions against unit tests.

This file runs as `python -I -S -B jail.py CONFIG`, with the standard library, `programs.py` and
the native module `_jailsys` beside it. The worker starts it once (`sandbox.jail.Jail`) and sends it
one solution at a time with the unit tests to run it against, over stdin/stdout:

    request:  {"solution": str, "tests": [str], "limits": {...}, "confirm": bool}
    response: one message per test, in order, as soon as it is known:
              [outcome, duration_ms, tests_run, failures, errors, output, killed_by_signal]
    confirm:  with "confirm" (early exit), the jail waits after each response but the last for
              {"go": true}, or {"stop": true}: the remaining tests come back not run ("N"), at once
(both directions: a 4-byte big-endian length, then that much JSON).

How a pair runs, and why it cannot be forged
--------------------------------------------
The jail itself (pid 1 of the sandbox's pid namespace) never runs untrusted code, so its memory is
the pristine interpreter: unittest and a set of preloaded modules, untouched. For every pair it
forks a *pair child*, which drops to the pair's uid and capabilities, takes the pair's rlimits and
installs the pair's seccomp filter (no programs, no threads, no signal handlers, no CPU affinity,
no System V or POSIX message-queue IPC, no mounts or namespaces, no ptrace), and then calls
`_drive`, which runs the solution's top-level code and the test class in that one process, as the
paper's harness runs `solution + "\\n\\n" + test`.

The verdict comes from `_drive` alone and is written by the native module (`_jailsys.c`): the nonce
that authenticates it is generated there for each pair and never exists as a Python object, and
`write_verdict` works once, only when called from `_drive`'s own frame at its one call site.
Frames are therefore not hidden (honest code uses them: logging, warnings, namedtuple, inspect,
traceback): reading `_drive`'s locals gives nothing to forge with, and nothing rewrites them
(trace and profile functions, new code objects and marshal are refused by an audit hook; ctypes
and the other ways to native code are refused too; the sandbox has no /proc). Everything `_drive`
uses after untrusted code has started is a local it bound on entry (`tools_for_pairs`), never a
global that untrusted code could replace.

A pass needs every test method the test's own source defines (counted here, from the source, by
`programs.read_test`) to have run and returned: a method that raised, skipped itself
(`unittest.SkipTest`), stopped the run (`_ShouldStop`) or is marked as an expected failure is not a
pass. The methods are called by `_drive`, not by unittest's runner, so nothing of TestResult,
TestSuite or TestLoader decides anything; a plain method is only called if its function is the one
its source compiled to. After the solution's top-level code the interpreter's pristine bindings
(module globals, unittest's classes, builtins) are put back, and after every test method
unittest's and the builtins' are checked: a change made by the code under test makes the pair an
error. The test reads the solution's names over its own copy of the pristine builtins.

Every pair starts from a clean slate: a fresh process forked from the pristine jail; no process of
an earlier pair alive (the jail kills every other process of its namespace after each pair); a
fresh tmpfs at /tmp and /dev/shm when the pair changed them (nothing of the code under test is
ever walked or deleted); no System V IPC at all. Every buffer fed by the pair is bounded and every
read runs under the pair's deadline.
"""

import _imp
import builtins
import dis
import gc
import importlib._bootstrap_external
import json
import os
import resource
import select
import signal
import socket
import struct
import sys
import time
import types
import unittest
import unittest.case

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves the script's folder out
import _jailsys as native  # noqa: E402
import programs  # noqa: E402

del sys.path[0]

PASS, FAIL, ERROR, TIMEOUT, MEMORY, KILLED, INVALID, NOT_RUN = "P", "F", "E", "T", "M", "K", "I", "N"

# Modules a solution or a test commonly imports: loaded once here, so that a pair child finds them
# in sys.modules. Not `threading` nor what imports it (logging, queue, asyncio, unittest.mock): its
# fork handler would cost every pair child a third of a millisecond. A module first imported in a
# pair child is loaded from the installation's bytecode (`_trusted_bytecode`).
PRELOADED = (
    "abc", "array", "ast", "base64", "binascii", "bisect", "cmath", "collections", "collections.abc",
    "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "enum", "fractions",
    "functools", "hashlib", "heapq", "inspect", "io", "itertools", "json", "keyword", "math", "numbers",
    "operator", "pprint", "random", "re", "statistics", "string", "struct", "textwrap", "traceback",
    "types", "typing", "unicodedata", "unittest", "warnings", "weakref", "zlib",
)  # fmt: skip
# Never importable by sandboxed code: native code within its reach.
FORBIDDEN_MODULES = frozenset({"ctypes", "_ctypes", "_xxsubinterpreters", "_xxinterpchannels", "_xxtestfuzz"})

MS_NOSUID, MS_NODEV, MS_NOEXEC, MNT_DETACH = 2, 4, 8, 2
_VERDICT_FD = 3
_VERDICT_LIMIT = 256  # a verdict line is about 50 bytes: a longer message is garbage
_VERDICT_MESSAGES = 4  # a pair sends one: more is a flood, not read further
_EXIT_GRACE_S = 0.5  # for a pair child to exit after its verdict, and for the killed to die


# ---------------------------------------------------------------------------------------------
# The driver: runs in the pair child. It reads no global and has no closure: untrusted code may
# replace any global (builtins too) or closure cell. Everything it uses is a local bound on entry.


def _drive(job, tools):
    (solution_code, test_code, class_name, methods, class_names, verdict_fd, index, capture, _) = job
    (
        enter, write_verdict, restore, changes, shadowing, test_globals, dict_get, class_dict, exec_,
        id_, type_, isinstance_, getattr_, callable_, repr_, len_, bool_, say, describe, flush,
        exit_, builtins_module, FunctionType, MethodType, BaseException_, MemoryError_,
        AssertionError_, SkipTest, pristine_classes, hook_table,
    ) = tools  # fmt: skip
    enter()
    outcome, run, failures, errors, memory, tampered = "E", 0, 0, 0, False, ""
    namespace = {"__name__": "solution", "__builtins__": builtins_module}
    loaded = False
    try:
        exec_(solution_code, namespace)
        loaded = True
    except MemoryError_:
        memory = True
    except BaseException_ as exc:  # noqa: BLE001 - SystemExit included: the program ended early
        say(capture, describe(exc) + " in the solution's top-level code")
    test_class = hooks = None
    if loaded:
        restore()
        scope = test_globals(namespace)
        try:
            exec_(test_code, scope)
            test_class = dict_get(scope, class_name)
        except MemoryError_:
            memory = True
        except BaseException_ as exc:  # noqa: BLE001
            say(capture, describe(exc) + " loading the unit test")
        if test_class is not None and not isinstance_(test_class, type_):
            say(capture, "[coderm] " + class_name + " is not a class")
            test_class = None
    if test_class is not None:
        # Its bases must be unittest's own; the unittest hooks it is run through are taken from
        # them (the jail's references), never looked up on the class or its instances.
        for base in type_.mro(test_class)[1:]:
            if id_(base) not in pristine_classes:
                say(capture, "[coderm] the test class derives from " + repr_(base) + ", not from unittest")
                test_class = None
                break
            for class_id, class_hooks in hook_table:
                if hooks is None and class_id == id_(base):
                    hooks = class_hooks
        if hooks is None:
            test_class = None
    functions = ()
    if test_class is not None:
        own = class_dict(test_class)
        for name, plain, code in methods:
            function = dict_get(own, name)
            if plain and not (
                type_(function) is FunctionType
                and function.__code__ is code
                and function.__globals__ is scope
                and function.__closure__ is None
                and function.__defaults__ is None
                and function.__kwdefaults__ is None
            ):
                tampered = "the test method " + name + " is not the one its source defines"
            elif not plain and (function is None or not callable_(function)):
                tampered = "the test method " + name + " is missing"
            functions += ((name, plain, function),)
        tampered = tampered or shadowing(test_class, class_names)
        class_ok = not tampered
        if class_ok:
            try:
                test_class.setUpClass()
            except MemoryError_:
                memory, class_ok = True, False
            except BaseException_ as exc:  # noqa: BLE001
                say(capture, "setUpClass: " + describe(exc))
                class_ok = False
                errors += 1
        call_setup, call_method, call_teardown, do_cleanups, setup_runner, teardown_runner = hooks
        for name, plain, function in functions if class_ok else ():
            run += 1
            failed = errored = False
            if dict_get(class_dict(test_class), name) is not function:
                tampered = "the test method " + name + " was replaced during the test"
                break
            try:
                instance = test_class(name)
                skipped = bool_(getattr_(test_class, "__unittest_skip__", False)) or bool_(
                    getattr_(function, "__unittest_skip__", False)
                )
                expecting = bool_(getattr_(function, "__unittest_expecting_failure__", False)) or bool_(
                    getattr_(instance, "__unittest_expecting_failure__", False)
                )
            except MemoryError_:
                memory = True
                break
            except BaseException_ as exc:  # noqa: BLE001
                say(capture, name + ": " + describe(exc))
                errors += 1
                continue
            if skipped or expecting:
                say(capture, name + (": skipped" if skipped else ": an expected failure") + ", not a pass")
                failures += 1
                continue
            try:
                if setup_runner is not None:
                    setup_runner(instance)
                call_setup(instance)
            except MemoryError_:
                memory = True
            except BaseException_ as exc:  # noqa: BLE001 - SkipTest and _ShouldStop too
                say(capture, name + " (setUp): " + describe(exc))
                errored = True
            else:
                tampered = shadowing(instance, ()) or shadowing(test_class, class_names) or tampered
                try:
                    call_method(
                        instance, MethodType(function, instance) if plain else getattr_(instance, name)
                    )
                except MemoryError_:
                    memory = True
                except AssertionError_ as exc:
                    say(capture, "FAIL " + name + ": " + describe(exc))
                    failed = True
                except SkipTest as exc:
                    say(capture, name + ": skipped (" + describe(exc) + "), not a pass")
                    failed = True
                except BaseException_ as exc:  # noqa: BLE001
                    say(capture, "ERROR " + name + ": " + describe(exc))
                    errored = True
                changed = changes()
                if changed:
                    tampered = "the code under test changed " + repr_(changed)
                tampered = tampered or shadowing(instance, ()) or shadowing(test_class, class_names)
                try:
                    call_teardown(instance)
                except MemoryError_:
                    memory = True
                except BaseException_ as exc:  # noqa: BLE001
                    say(capture, name + " (tearDown): " + describe(exc))
                    errored = True
            try:
                if do_cleanups(instance) is not True:
                    errored = True
                if teardown_runner is not None:
                    teardown_runner(instance)
            except BaseException_ as exc:  # noqa: BLE001
                say(capture, name + " (cleanups): " + describe(exc))
                errored = True
            changed = changes()
            if changed and not tampered:
                tampered = "the code under test changed " + repr_(changed)
            failures += failed
            errors += errored and not failed
            if memory or tampered:
                break
        if class_ok and not tampered and not memory:
            for hook in ("tearDownClass", "doClassCleanups"):
                try:
                    getattr_(test_class, hook)()
                except BaseException_ as exc:  # noqa: BLE001
                    say(capture, hook + ": " + describe(exc))
                    errors += 1
            try:
                if getattr_(test_class, "tearDown_exceptions", None):
                    errors += 1
            except BaseException_:  # noqa: BLE001
                errors += 1
    if tampered:
        say(capture, "[coderm] " + tampered)
    # Letters, not the module's constants: a global could have been rebound.
    if memory:
        outcome = "M"
    elif tampered or test_class is None:
        outcome = "E"
    elif failures:
        outcome = "F"
    elif errors or run != len_(methods):
        outcome = "E"
    else:
        outcome = "P"
    flush()  # what the code under test printed is in the pipe before the verdict
    write_verdict(verdict_fd, index, outcome, run, failures, errors)
    exit_(0)


def _say(capture, text):
    """A line of the pair's captured output (what `coderm sandbox exec` shows)."""
    if capture:
        try:
            os.write(2, (text + "\n").encode("utf-8", "replace"))
        except BaseException:  # noqa: BLE001, S110 - the code under test may have closed fd 2
            pass


def _describe(exc):
    try:
        return f"{type(exc).__name__}: {exc}"
    except BaseException:  # noqa: BLE001
        return "an exception that cannot be shown"


def _flush():
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001, S110 - the code under test may have replaced them
            pass


def _check_driver(function):
    """`_drive` must read no global and have no closure (see above); the jail refuses to start otherwise."""
    code = function.__code__
    if code.co_cellvars or code.co_freevars:
        raise RuntimeError(f"{function.__name__} must have no closure: {code.co_cellvars + code.co_freevars}")
    names = {
        ins.argval for ins in dis.get_instructions(function) if ins.opname in ("LOAD_GLOBAL", "LOAD_NAME")
    }
    if names:
        raise RuntimeError(f"{function.__name__} must read no global: {sorted(names)}")


def _call_offset(function, callee):
    """Byte offset of the one CALL of the local `callee` in `function` (the native side checks it)."""
    instructions = list(dis.get_instructions(function))
    loads = [i for i, ins in enumerate(instructions) if ins.opname == "LOAD_FAST" and ins.argval == callee]
    if len(loads) != 1:
        raise RuntimeError(f"{function.__name__} must load {callee} exactly once")
    for ins in instructions[loads[0] + 1 :]:
        if ins.opname == "CALL":
            return ins.offset
        if ins.opname not in ("LOAD_FAST", "LOAD_CONST", "PRECALL", "KW_NAMES"):
            raise RuntimeError(f"{function.__name__}: only locals may be passed to {callee}")
    raise RuntimeError(f"{function.__name__} never calls {callee}")


def _hooks(cls, runner):
    """The unittest hooks `_drive` runs a test method through, taken from a pristine class."""
    return (
        cls._callSetUp, cls._callTestMethod, cls._callTearDown, cls.doCleanups,
        cls._setupAsyncioRunner if runner else None, cls._tearDownAsyncioRunner if runner else None,
    )  # fmt: skip


def _tools_for_pairs(pristine_classes, hook_table):
    """Everything `_drive` uses, bound while the interpreter is still pristine."""
    return (
        native.enter_driver, native.write_verdict, native.restore_pristine, native.pristine_changes,
        native.shadowing, native.test_globals, native.dict_get, native.class_dict, exec, id, type,
        isinstance, getattr, callable, repr, len, bool, _say, _describe, _flush, os._exit,
        builtins, types.FunctionType, types.MethodType, BaseException, MemoryError, AssertionError,
        unittest.SkipTest, pristine_classes, hook_table,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# The pair child before `_drive`: trusted code, nothing untrusted has run in this process yet.


def _limit_self(limits):
    memory = int(limits["memory_bytes"])
    cpu = int(float(limits["time_limit_s"])) + 1
    for limit, value in (
        (resource.RLIMIT_AS, memory),
        (resource.RLIMIT_CPU, cpu),
        (resource.RLIMIT_NOFILE, int(limits["max_open_files"])),
        (resource.RLIMIT_NPROC, int(limits["max_processes"])),
        (resource.RLIMIT_FSIZE, int(limits["file_size_bytes"])),
        (resource.RLIMIT_CORE, 0),
    ):
        resource.setrlimit(limit, (value, value))


def _pair_child(jail, job, tools, limits, verdict_w, out_w):
    try:
        null = os.open("/dev/null", os.O_RDWR)
        os.dup2(null, 0)
        os.dup2(out_w if out_w >= 0 else null, 1)
        os.dup2(out_w if out_w >= 0 else null, 2)
        os.dup2(verdict_w, _VERDICT_FD, inheritable=False)
        os.closerange(_VERDICT_FD + 1, os.sysconf("SC_OPEN_MAX"))  # the jail's pipes above all
        if not jail.pid_namespace:
            os.setsid()  # the jail kills the pair's session afterwards
        os.chdir(jail.work_dir)
        if jail.pair_uid >= 0:
            os.setgroups([])
            os.setresgid(jail.pair_uid, jail.pair_uid, jail.pair_uid)
            os.setresuid(jail.pair_uid, jail.pair_uid, jail.pair_uid)
        native.drop_capabilities()
        _limit_self(limits)
        if job[8]:  # a test on IsolatedAsyncioTestCase: asyncio is loaded here, before the hook is armed
            from unittest.async_case import IsolatedAsyncioTestCase

            tools = tools[:-2] + (
                tools[-2] | {id(c) for c in IsolatedAsyncioTestCase.__mro__},
                ((id(IsolatedAsyncioTestCase), _hooks(IsolatedAsyncioTestCase, True)), *tools[-1]),
            )
        if out_w >= 0:  # line-buffered, so what a test prints is in the pipe before its verdict
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115 - lives as long as the process
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
        native.arm()  # from here on, and in all this process forks, the audit hook refuses
        _drive(job, tools)
    finally:
        os._exit(70)


# ---------------------------------------------------------------------------------------------
# The jail process itself: trusted, runs no untrusted code.


def _read_exactly(fd, size):
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return b""
        data += chunk
    return data


def _read_message(fd):
    header = _read_exactly(fd, 4)
    if not header:
        return None
    return json.loads(_read_exactly(fd, struct.unpack(">I", header)[0]))


def _write_message(fd, message):
    data = json.dumps(message).encode()
    data = struct.pack(">I", len(data)) + data
    while data:
        data = data[os.write(fd, data) :]


class Jail:
    def __init__(self, config, tools):
        self.pid_namespace = os.getpid() == 1
        self.pair_uid = int(config["pair_uid"])
        self.scratch = [(path, int(size)) for path, size in config["scratch"]]  # [(path, bytes)]
        self.mount_scratch = bool(config["mount_scratch"])
        self.work_dir = self.scratch[0][0]
        self.pair_filter = None
        if config.get("pair_filter"):
            with open(config["pair_filter"], "rb") as bpf:
                self.pair_filter = bpf.read()
        self.tools = tools
        self.tests: dict = {}  # source -> (TestProgram or reason, code, method codes)
        self.scratch_state: list = []

    # -- scratch folders ------------------------------------------------------------------

    def fresh_scratch(self):
        """A new, empty tmpfs at each scratch folder (the old one is detached, never walked)."""
        for path, size in self.scratch:
            if self.mount_scratch:
                try:
                    native.umount(path, MNT_DETACH)
                except OSError:
                    pass
                native.mount(
                    "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, f"size={size},mode=1777"
                )
        os.chdir(self.work_dir)
        self.scratch_state = [self._state(path) for path, _ in self.scratch]

    @staticmethod
    def _state(path):
        status = os.stat(path)
        return (status.st_ino, status.st_dev, status.st_mtime_ns, status.st_ctime_ns)

    def scratch_dirty(self):
        # Any change inside a folder moves its mtime; a change of the folder itself (mode, owner,
        # attributes) its ctime, which nothing can set back.
        return [self._state(path) for path, _ in self.scratch] != self.scratch_state

    def clean_scratch(self):
        if not self.scratch_dirty():
            return
        if self.mount_scratch:
            self.fresh_scratch()
            return
        # Without a mount namespace (isolation=rlimits): empty the folders without following links.
        import shutil

        for path, _ in self.scratch:
            for entry in os.scandir(path):
                if entry.is_dir(follow_symlinks=False):
                    shutil.rmtree(entry.path, ignore_errors=True)
                else:
                    try:
                        os.unlink(entry.path)
                    except OSError:
                        pass
        os.chdir(self.work_dir)
        self.scratch_state = [self._state(path) for path, _ in self.scratch]

    # -- processes ---------------------------------------------------------------------------

    def reap(self):
        """Collect every exited child (orphans come back to us); True if none is left."""
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return True
            if pid == 0:
                return False

    def kill_leftovers(self, session):
        """Kill every process but the jail, until none is left (a fork bomb forks while it is being
        killed), waiting a little for the killed to be gone."""
        deadline = time.monotonic() + _EXIT_GRACE_S
        while not self.reap():
            if self.pid_namespace:
                try:
                    os.kill(-1, signal.SIGKILL)  # every process of our namespace but ourselves
                except OSError:
                    pass
            else:  # isolation=rlimits: the pair's session, and whatever descends from us
                try:
                    if session > 0:
                        os.killpg(session, signal.SIGKILL)
                except OSError:
                    pass
                for victim in self._descendants():
                    try:
                        os.kill(victim, signal.SIGKILL)
                    except OSError:
                        pass
            if time.monotonic() > deadline:
                return
            select.select([], [], [], 0.001)

    def _descendants(self):
        """Without a pid namespace: every process descending from us, from /proc."""
        table = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat", "rb") as stat:
                        table[int(entry)] = int(stat.read().rsplit(b")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        found, frontier = set(), {os.getpid()}
        while frontier:
            frontier = {pid for pid, parent in table.items() if parent in frontier and pid not in found}
            found |= frontier
        return found

    # -- one request ------------------------------------------------------------------------

    def read_test(self, source):
        """(TestProgram, code, method codes) for a unit test's source, or the reason it is invalid."""
        if source not in self.tests:
            if len(self.tests) > 4096:
                self.tests.clear()
            try:
                test = programs.read_test(source)
                code = programs.compile_program(source, "<test>", "unit test")
                self.tests[source] = (test, code, programs.method_codes(code, test.class_name))
            except programs.InvalidProgram as exc:
                self.tests[source] = str(exc)
        return self.tests[source]

    def serve(self, request_fd, response_fd):
        """Each pair's result is sent as soon as it is known: if the jail dies (killed from outside,
        say), the worker keeps what was done and knows which pair was running."""
        while True:
            request = _read_message(request_fd)
            if request is None:
                return
            results = self.run_solution(request)
            for sent, result in enumerate(results, 1):
                _write_message(response_fd, result)
                if sent < len(request["tests"]) and request.get("confirm") and self._told_to_stop(request_fd):
                    # The solution can no longer win the vote: the rest are not run.
                    results.close()
                    for _ in range(len(request["tests"]) - sent):
                        _write_message(response_fd, [NOT_RUN, 0, 0, 0, 0, "", 0])
                    break

    @staticmethod
    def _told_to_stop(request_fd):
        """Wait for the worker's word on the request being served: {"go": true} or {"stop": true}.
        Waiting (not peeking) is what makes the stop exact: no test starts before the worker has
        seen the one before it."""
        message = _read_message(request_fd)
        return message is None or bool(message.get("stop"))

    def run_solution(self, request):
        tests, limits = request["tests"], request["limits"]
        try:
            solution = programs.compile_program(request["solution"], "<solution>", "solution")
        except programs.InvalidProgram as exc:
            yield from [[INVALID, 0, 0, 0, 0, str(exc), 0]] * len(tests)
            return
        for index, source in enumerate(tests):
            test = self.read_test(source)
            if isinstance(test, str):
                yield [INVALID, 0, 0, 0, 0, test, 0]
                continue
            program, code, codes = test
            methods = tuple((m.name, m.plain, codes.get(m.name)) for m in program.methods)
            capture = bool(limits.get("capture_output"))
            job = (
                solution, code, program.class_name, methods, program.names, _VERDICT_FD, index, capture,
                program.asynchronous,
            )  # fmt: skip
            yield self.run_pair(job, limits)

    def run_pair(self, job, limits):
        index, capture = job[6], job[7]
        output_limit = int(limits.get("output_limit_bytes", 0)) if capture else 0
        native.new_nonce()
        # The verdict travels on a socket that tells us the pid of each message's sender: only the
        # pair child's own counts, not one of a process it forked (which could report from a
        # branch of the run that happened to pass).
        verdict_sock, verdict_w = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        verdict_sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        out_r, out_w = os.pipe() if capture else (-1, -1)
        started = time.monotonic()
        try:
            pid = os.fork()
        except OSError as exc:  # what an earlier pair left may still hold the process limit
            verdict_sock.close()
            verdict_w.close()
            for fd in (out_r, out_w):
                if fd >= 0:
                    os.close(fd)
            self.kill_leftovers(0)
            return [KILLED, 0, 0, 0, 0, f"[coderm] the jail could not fork the pair: {exc}", 0]
        if pid == 0:
            _pair_child(self, job, self.tools, limits, verdict_w.fileno(), out_w)
        verdict_w.close()
        if out_w >= 0:
            os.close(out_w)
        pidfd = os.pidfd_open(pid)
        verdict_r = verdict_sock.fileno()
        deadline = started + float(limits["time_limit_s"])
        messages, output, status = [], b"", None
        timed_out = False
        watched = [fd for fd in (verdict_r, out_r, pidfd) if fd >= 0]
        for fd in watched:
            os.set_blocking(fd, False)

        def read(fd):  # one read of a ready fd; False at its end
            nonlocal status, output
            if fd == pidfd:
                status = os.waitpid(pid, 0)[1]
                return False
            if fd == verdict_r:
                message = self._receive(verdict_sock)
                if message:
                    messages.append(message)
                return message is not None and len(messages) <= _VERDICT_MESSAGES
            chunk = self._read_some(fd)
            if chunk and output_limit:
                output = (output + chunk)[-output_limit:]
            return chunk is not None

        try:
            while status is None and not messages and watched:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    timed_out = True
                    break
                for fd in select.select(watched, [], [], remaining)[0]:
                    if not read(fd):
                        watched.remove(fd)
            # The verdict is in: the pair child exits right after sending it.
            exiting = messages and status is None and pidfd in watched
            if exiting and select.select([pidfd], [], [], _EXIT_GRACE_S)[0]:
                read(pidfd)
            for _ in range(16):  # what is already on its way, within bounds
                ready = select.select([fd for fd in watched if fd != pidfd], [], [], 0)[0]
                if not ready:
                    break
                for fd in ready:
                    if not read(fd):
                        watched.remove(fd)
        finally:
            elapsed_ms = int((time.monotonic() - started) * 1000)
            verdict_sock.close()
            for fd in (out_r, pidfd):
                if fd >= 0:
                    os.close(fd)
            self.kill_leftovers(pid)
            self.clean_scratch()
        text = output.decode("utf-8", "replace")
        return self._judge(index, pid, messages, timed_out, status, elapsed_ms, text)

    @staticmethod
    def _receive(sock):
        """(sender pid, data) of the next message, b"" if none is waiting, None at end of file."""
        try:
            data, ancillary, flags, _ = sock.recvmsg(_VERDICT_LIMIT, socket.CMSG_SPACE(12))
        except BlockingIOError:
            return b""
        except OSError:
            return None
        if not data and not ancillary:
            return None
        sender = -1
        for level, kind, value in ancillary:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS and len(value) >= 12:
                sender = struct.unpack("iII", value[:12])[0]
        return (sender, b"" if flags & socket.MSG_TRUNC else data)

    @staticmethod
    def _read_some(fd):
        """What a pipe holds now (at most 64 KiB); None at end of file."""
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            return b""
        return chunk or None

    @staticmethod
    def _judge(index, pid, messages, timed_out, status, duration_ms, text):
        """[outcome, duration_ms, tests run, failures, errors, output, the signal that ended the pair
        child without a verdict or 0]: the worker tells a pair killed from outside by that signal."""
        if messages:
            sender, line = messages[0]
            fields = native.check_verdict(line.rstrip(b"\n"), index) if sender == pid else None
            parts = fields.decode("ascii", "replace").split() if fields is not None else []
            if len(messages) == 1 and len(parts) == 4 and parts[0] in (PASS, FAIL, ERROR, MEMORY):
                return [parts[0], duration_ms, int(parts[1]), int(parts[2]), int(parts[3]), text, 0]
            note = (
                "[coderm] a verdict that is not the pair's own: forged, repeated or sent by another process"
            )
            return [ERROR, duration_ms, 0, 0, 0, (text + "\n" + note).strip(), 0]
        if timed_out:
            return [TIMEOUT, duration_ms, 0, 0, 0, text, 0]
        signalled = os.WTERMSIG(status) if status is not None and os.WIFSIGNALED(status) else 0
        if signalled == signal.SIGXCPU:
            return [TIMEOUT, duration_ms, 0, 0, 0, text, 0]
        return [KILLED, duration_ms, 0, 0, 0, text, signalled]


def _trusted_bytecode(data, name=None, bytecode_path=None, source_path=None):
    """importlib's `_compile_bytecode`, for the pair children: marshal is refused to sandboxed code
    (hand-made bytecode reaches arbitrary memory), so a module's cached bytecode is read by the
    native side, and only from a read-only mount, never from the bytes importlib passes along.
    Bytecode anywhere else (isolation=rlimits: the host's own files) is left unread: the module is
    compiled from its source."""
    del data, name
    try:
        code = native.read_trusted_code(bytecode_path)
    except ImportError:
        if source_path is None:
            raise
        with open(source_path, "rb") as source:
            return compile(source.read(), source_path, "exec", dont_inherit=True)
    if source_path is not None:
        _imp._fix_co_filename(code, source_path)
    return code


def _pristine_namespaces():
    """What `_drive` restores after the solution's top-level code, and what it guards afterwards."""
    modules = [
        m for name, m in list(sys.modules.items()) if isinstance(m, types.ModuleType) and name != "sys"
    ]
    unittest_modules = [m for m in modules if m.__name__ == "unittest" or m.__name__.startswith("unittest.")]
    unittest_classes = [
        value
        for module in unittest_modules
        for value in vars(module).values()
        if isinstance(value, type) and value.__module__.startswith("unittest")
    ]
    unittest_classes = list({id(c): c for c in unittest_classes}.values())
    namespaces = [vars(m) for m in modules] + [sys.modules] + unittest_classes
    guarded = [vars(m) for m in unittest_modules] + [vars(builtins)] + unittest_classes
    classes = {id(v) for m in modules for v in vars(m).values() if isinstance(v, type)}
    return namespaces, guarded, frozenset(classes | {id(object)})


# What IsolatedAsyncioTestCase adds to TestCase (its module is not loaded in the jail: asyncio).
_ASYNC_MACHINERY = (
    "_callAsync", "_callMaybeAsync", "_setupAsyncioRunner", "_tearDownAsyncioRunner", "asyncSetUp",
    "asyncTearDown", "addAsyncCleanup", "enterAsyncContext",
)  # fmt: skip


def _shadowed_names():
    """Names of unittest's machinery that neither a test instance nor (unless its source defines
    them) a test class may hide with its own: the assertions and the private hooks they rest on."""
    kept = {"debug", "run", "subTest", "skipTest", "addTypeEqualityFunc"}
    names = {
        name
        for name in dir(unittest.TestCase)
        if callable(getattr(unittest.TestCase, name))
        and (name.startswith(("assert", "fail", "_")) and not name.startswith("__") or name in kept)
    }
    return frozenset(names | {name for name in _ASYNC_MACHINERY if name.startswith("_")})


def main():
    if sys.version_info >= (3, 13):
        # From 3.13 (PEP 667) writes to frame.f_locals reach a running function: _drive's locals
        # would no longer be out of reach of the code under test.
        raise SystemExit("the coderm jail needs Python 3.11 or 3.12")
    config = json.loads(sys.argv[1])
    if config["cpu"] >= 0:
        # The jail and its pair children hand work to each other hundreds of times a second: on
        # one CPU they skip the cross-CPU wake-ups, which cost most in virtual machines.
        os.sched_setaffinity(0, {config["cpu"]})
    for name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGQUIT", "SIGPIPE"):
        signal.signal(getattr(signal, name), signal.SIG_IGN)
    # Move the protocol pipes out of the way; 0 and 1 become /dev/null. 2 stays the worker's record
    # of what went wrong here (a pair child points its own 1 and 2 elsewhere).
    request_fd, response_fd = os.dup(0), os.dup(1)
    null = os.open("/dev/null", os.O_RDWR)
    for fd in (0, 1):
        os.dup2(null, fd)

    for name in PRELOADED:
        try:
            __import__(name)
        except ImportError:
            pass
    if "threading" in sys.modules:
        raise SystemExit("a preloaded module imported threading: every pair child would pay its fork handler")
    importlib._bootstrap_external._compile_bytecode = _trusted_bytecode
    if config.get("packages"):  # the third-party packages pairs may import, loaded on demand
        sys.path.append(config["packages"])
    namespaces, guarded, pristine_classes = _pristine_namespaces()
    native.snapshot_pristine(namespaces, guarded, vars(builtins), _shadowed_names())
    _check_driver(_drive)
    native.register_driver(_drive.__code__, _call_offset(_drive, "write_verdict"))
    tools = _tools_for_pairs(pristine_classes, ((id(unittest.TestCase), _hooks(unittest.TestCase, False)),))
    jail = Jail(config, tools)
    if config["jail_uid"] >= 0 and os.getuid() == 0:
        # isolation=rlimits, started by root: the jail leaves root for a uid of its own (after
        # loading what it needs from the installation, which that uid may not be able to read).
        os.setgroups([])
        os.setgid(config["jail_uid"])
        os.setuid(config["jail_uid"])
    native.set_dumpable(False)  # processes of our uid cannot read or write our memory
    if not jail.pid_namespace:
        native.set_child_subreaper()  # orphans of sandboxed code come back to us to be killed
    jail.fresh_scratch()
    native.install_audit_hook(FORBIDDEN_MODULES, not jail.pid_namespace)
    if jail.pair_filter is not None:
        # The pair filter goes on the jail itself, which needs none of what it refuses from here on:
        # every pair child inherits it at fork, for free. (Mounts, which the jail still makes, are
        # refused to pair children by their lack of capabilities.)
        native.load_seccomp(jail.pair_filter)
    gc.freeze()  # what exists now is shared with every pair child: the collector leaves it alone
    _write_message(response_fd, {"ready": True, "pid_namespace": jail.pid_namespace, "uid": os.getuid()})
    jail.serve(request_fd, response_fd)


if __name__ == "__main__":
    main()
