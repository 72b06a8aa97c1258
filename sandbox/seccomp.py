"""The seccomp filters of a jail and of its pair children, compiled to BPF with libseccomp (through
`pyseccomp`, in the worker: the jail itself never loads ctypes).

Deny-lists, not allow-lists: Python and unittest use a broad set of syscalls that changes between
versions, while what sandboxed code must never do is a short, stable list (`sandbox.policy`), plus
argument checks: sockets only of the Unix family (there is no network in the jail anyway), no
`clone` into new namespaces, `clone3` reported as missing so that the C library falls back to
`clone`, whose flags a filter can see, and, for a pair child, no `clone` of a thread.

The jail's filter is installed by bubblewrap; a pair child installs its own, stricter one on top
(filters stack) before it runs untrusted code.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Iterable

logger = logging.getLogger(__name__)

_CLONE_NAMESPACE_FLAGS = (
    0x00020000,  # CLONE_NEWNS
    0x02000000,  # CLONE_NEWCGROUP
    0x04000000,  # CLONE_NEWUTS
    0x08000000,  # CLONE_NEWIPC
    0x10000000,  # CLONE_NEWUSER
    0x20000000,  # CLONE_NEWPID
    0x40000000,  # CLONE_NEWNET
)
_CLONE_THREAD = 0x00010000


def seccomp_available() -> bool:
    try:
        import pyseccomp  # noqa: F401 - loads libseccomp.so
    except (ImportError, OSError, AttributeError):
        return False
    return True


def compile_filter(denied: Iterable[str], threads: bool = True) -> bytes | None:
    """A filter as a BPF program, or None without libseccomp. `threads=False` refuses new threads."""
    if not seccomp_available():
        logger.warning("libseccomp is not available: the sandbox runs without a seccomp filter")
        return None
    import os

    import pyseccomp as seccomp

    deny = seccomp.ERRNO(errno.EPERM)
    syscall_filter = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
    for name in denied:
        try:
            syscall_filter.add_rule(deny, name)
        except OSError:  # not a syscall on this architecture (e.g. iopl on arm64)
            continue
    syscall_filter.add_rule(deny, "socket", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    syscall_filter.add_rule(deny, "socketpair", seccomp.Arg(0, seccomp.NE, socket.AF_UNIX))
    for flag in _CLONE_NAMESPACE_FLAGS + (() if threads else (_CLONE_THREAD,)):
        syscall_filter.add_rule(deny, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
    syscall_filter.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")
    # Through a memfd, not TMPDIR: a full temporary folder must not keep jails from starting.
    with os.fdopen(os.memfd_create("coderm-seccomp", 0), "w+b") as bpf:
        syscall_filter.export_bpf(bpf)
        bpf.seek(0)
        return bpf.read()
