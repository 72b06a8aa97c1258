"""The in-process walls on their own, each seen from a process that has them and from one that has not.

The pair filter (seccomp) is checked from a forked test process that loads it and then makes the
system calls with ctypes, the worst case of native code inside a pair: every refused call must fail
at the kernel. The audit hook is checked in a fresh interpreter: it arms itself in forked children
only, so the jail itself (the parent) is unaffected.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from sandbox.policy import PAIR_DENIED_SYSCALLS
from sandbox.seccomp import compile_filter, seccomp_available

pytestmark = pytest.mark.security

# Runs in a forked child under the pair filter, with no capability left (so that, were the filter
# broken, nothing here could touch the host: it only creates what it removes again); prints
# {attempt: errno, 0 for success}.
PROBE = r"""
import ctypes, errno, json, os, signal, socket, sys, threading
libc = ctypes.CDLL(None, use_errno=True)

def call(function, *args):
    ctypes.set_errno(0)
    result = function(*args)
    return ctypes.get_errno() if result == -1 else 0

def attempt(action):
    try:
        action()
        return 0
    except OSError as exc:
        return exc.errno
    except RuntimeError:  # "can't start new thread"
        return errno.EPERM

def shared_memory():
    ctypes.set_errno(0)
    segment = libc.shmget(0, 4096, 0o1600)
    if segment >= 0:
        libc.shmctl(segment, 0, None)  # IPC_RMID
        return 0
    return ctypes.get_errno()

def message_queue():
    ctypes.set_errno(0)
    queue = libc.syscall(240, b"coderm-probe", 0o100 | 2, 0o600, None)  # mq_open(O_CREAT | O_RDWR)
    if queue >= 0:
        libc.syscall(241, b"coderm-probe")  # mq_unlink
        return 0
    return ctypes.get_errno()

sleeper = os.fork()
if sleeper == 0:
    signal.pause()
results = {
    "execve": call(libc.execve, b"/bin/true", None, None),
    "thread": attempt(lambda: threading.Thread(target=lambda: None).start()),
    "sigaction": attempt(lambda: signal.signal(signal.SIGUSR1, lambda *a: None)),
    "sched_setaffinity": attempt(lambda: os.sched_setaffinity(0, {0})),
    "shmget": shared_memory(),
    "mq_open": message_queue(),
    "new user namespace": call(libc.unshare, 0x10000000),
    "ptrace": call(libc.ptrace, 16, sleeper, 0, 0),
    "pidfd_getfd": call(libc.syscall, 438, 0, 0, 0),
    "inet socket": attempt(lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM)),
}
os.kill(sleeper, signal.SIGKILL)
# What a pair may still do.
results["fork"] = attempt(lambda: os.waitpid(os.fork() or os._exit(0), 0))
results["unix socketpair"] = attempt(lambda: socket.socketpair())
os.write(1, json.dumps(results).encode())
"""

REFUSED = [
    "execve", "thread", "sigaction", "sched_setaffinity", "shmget", "mq_open", "new user namespace",
    "ptrace", "pidfd_getfd", "inet socket",
]  # fmt: skip


@pytest.mark.skipif(not seccomp_available(), reason="libseccomp is not installed")
def test_the_pair_filter_refuses_at_the_kernel_what_native_code_would_try() -> None:
    program = compile_filter(PAIR_DENIED_SYSCALLS, threads=False)
    assert program is not None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            from sandbox import _jailsys

            _jailsys.drop_capabilities()  # nothing privileged on the host, whatever the filter does
            _jailsys.load_seccomp(program)
            os.dup2(write, 1)
            exec(compile(PROBE, "<probe>", "exec"), {"__name__": "probe"})
            sys.stdout.flush()
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as output:
        text = output.read()
    os.waitpid(pid, 0)
    results = json.loads(text)
    refused = {name: results[name] for name in REFUSED}
    assert all(code in (1, 38) for code in refused.values()), refused  # EPERM, or ENOSYS
    assert results["fork"] == 0 and results["unix socketpair"] == 0


HOOK = textwrap.dedent(
    """
    import json, marshal, os, subprocess, sys
    from sandbox import _jailsys

    def attempts():
        found = {}
        for name, action in [
            ("settrace", lambda: sys.settrace(None)),
            ("setprofile", lambda: sys.setprofile(None)),
            ("code object", lambda: (lambda: 0).__code__.replace()),
            ("marshal", lambda: marshal.loads(marshal.dumps(1))),
            ("import ctypes", lambda: __import__("ctypes")),
            ("import _testcapi", lambda: __import__("_testcapi")),
            ("a program", lambda: subprocess.run(["/bin/true"])),
            ("swap __code__", lambda: setattr(attempts, "__code__", attempts.__code__)),
            ("frames", lambda: sys._getframe(0).f_back.f_locals),
        ]:
            try:
                action()
                found[name] = "allowed"
            except Exception as exc:
                found[name] = type(exc).__name__
        return found

    def in_child(report):
        read, write = os.pipe()
        if os.fork() == 0:
            os.write(write, json.dumps(report()).encode())
            os._exit(0)
        os.close(write)
        return json.loads(os.read(read, 65536))

    _jailsys.install_audit_hook(frozenset({"ctypes", "_ctypes"}), False)

    def armed_child():
        _jailsys.arm()
        return {"attempts": attempts(), "grandchild armed": in_child(lambda: _jailsys.is_armed())}

    child = in_child(armed_child)
    unarmed = in_child(attempts)
    print(json.dumps({"armed": child, "unarmed": unarmed, "jail": attempts(), "jail armed": _jailsys.is_armed()}))
    """
)


def test_the_audit_hook_refuses_once_armed_in_that_process_and_what_it_forks() -> None:
    done = subprocess.run(
        [sys.executable, "-c", HOOK], capture_output=True, text=True, timeout=60, check=True
    )
    seen = json.loads(done.stdout)
    assert seen["jail armed"] is False
    for unarmed in (seen["jail"], seen["unarmed"]):
        assert set(unarmed.values()) == {"allowed"}, unarmed
    armed = seen["armed"]
    assert armed["grandchild armed"] is True
    assert armed["attempts"].pop("frames") == "allowed"  # honest code reads frames: nothing to forge with
    assert "allowed" not in armed["attempts"].values(), armed
