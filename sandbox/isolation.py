"""How a jail is started: the bubblewrap command line, built from the policy (DESIGN §6).

With `isolation = namespaces` (the default) the jail runs under bubblewrap in new pid, network,
mount, ipc, uts (and cgroup) namespaces entered once for its whole life: an empty network
namespace (not even loopback reaches the host's Postgres, Redis or RabbitMQ), a read-only root
with only /usr and the Python installation, a private size-limited tmpfs at /tmp and /dev/shm, a
fresh /proc that shows the jail's own processes only, no environment but PATH/HOME/LANG, no
capabilities, no_new_privs and a seccomp filter. As an ordinary user bubblewrap also enters a new
user namespace; as root it stays privileged just long enough for the jail to drop to a uid of its
own (root is exempt from RLIMIT_NPROC).

With `isolation = rlimits`, an explicit opt-in for hosts without namespaces, the jail is a plain
process with rlimits, a clean environment and a private work directory: it cannot stop network
access or reads of world-readable host files, and says so when it starts.
"""

from __future__ import annotations

import itertools
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from orchestrator.errors import CodermError
from sandbox.cgroups import JailCgroup, create_jail_cgroup
from sandbox.policy import DENIED_SYSCALLS, SandboxPolicy
from sandbox.seccomp import compile_filter

logger = logging.getLogger(__name__)

JAIL_SCRIPT = Path(__file__).with_name("_jail.py")
_JAIL_SCRIPT_INSIDE = "/coderm/jail.py"
_ENVIRONMENT = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp", "LANG": "C.UTF-8"}
_jail_numbers = itertools.count()


class SandboxUnavailableError(CodermError):
    """The sandbox cannot isolate code on this host as configured."""


@dataclass
class LaunchSpec:
    """Everything `subprocess.Popen` needs to start one jail, and what to clean up after it."""

    argv: list[str]
    env: dict[str, str]
    pass_fds: tuple[int, ...] = ()
    preexec: Callable[[], None] | None = None
    open_files: list[IO[bytes]] = field(default_factory=list)
    cgroup: JailCgroup | None = None
    host_work_dir: Path | None = None

    def cleanup(self) -> None:
        for file in self.open_files:
            file.close()
        if self.cgroup is not None:
            self.cgroup.remove()
        if self.host_work_dir is not None:
            shutil.rmtree(self.host_work_dir, ignore_errors=True)


def python_executable() -> tuple[str, str]:
    """The real interpreter (not a virtual environment's link to it) and its installation prefix."""
    return os.path.realpath(sys.executable), os.path.realpath(sys.base_prefix)


def _root_tree_arguments(policy: SandboxPolicy) -> list[str]:
    """Read-only binds of /usr and the Python installation, and /bin, /lib... as the host has them."""
    arguments: list[str] = []
    for path in policy.read_only_paths:
        arguments += ["--ro-bind", path, path]
    for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
        if os.path.islink(top):
            arguments += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            arguments += ["--ro-bind", top, top]
    executable, prefix = python_executable()
    bound = [*policy.read_only_paths, "/bin", "/lib", "/lib64"]
    if not any(prefix == p or prefix.startswith(p.rstrip("/") + "/") for p in bound):
        # The folders leading to it (/root, say) must be traversable once the jail leaves root.
        for ancestor in reversed(Path(prefix).parents[:-1]):
            arguments += ["--perms", "0755", "--dir", str(ancestor)]
        arguments += ["--ro-bind", prefix, prefix]
    if not executable.startswith(prefix + "/"):
        arguments += ["--ro-bind", executable, executable]
    return arguments


def jail_uid(policy: SandboxPolicy, number: int) -> int:
    """A uid of this jail's own, so jails never share an RLIMIT_NPROC count (used when root)."""
    return policy.uid_base + (os.getpid() * 64 + number) % 10_000_000


def _limit_launcher(cgroup: JailCgroup | None, new_session: bool) -> Callable[[], None]:
    def prepare() -> None:
        if new_session:
            os.setsid()
        if cgroup is not None:
            cgroup.join()

    return prepare


def jail_cpu(policy: SandboxPolicy, number: int) -> int:
    """The CPU a jail is pinned to (-1: not pinned); jails of one host spread over its CPUs."""
    if not policy.pin_cpus:
        return -1
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[(os.getpid() + number) % len(cpus)]


def build_launch(policy: SandboxPolicy, memory_bytes: int) -> LaunchSpec:
    """How to start one jail under `policy`."""
    number = next(_jail_numbers)
    cpu = jail_cpu(policy, number)
    is_root = os.geteuid() == 0
    uid = jail_uid(policy, number) if is_root else -1
    cgroup = (
        create_jail_cgroup(f"coderm-jail-{os.getpid()}-{number}", memory_bytes, policy.max_processes)
        if is_root
        else None
    )
    executable, _ = python_executable()
    if policy.isolation == "rlimits":
        work_dir = Path(tempfile.mkdtemp(prefix="coderm-jail-"))
        if is_root:
            os.chown(work_dir, uid, uid)
        env = dict(_ENVIRONMENT, HOME=str(work_dir), TMPDIR=str(work_dir))
        return LaunchSpec(
            argv=[executable, "-I", "-S", "-B", str(JAIL_SCRIPT), str(work_dir), str(uid), str(cpu)],
            env=env,
            preexec=_limit_launcher(cgroup, new_session=True),
            cgroup=cgroup,
            host_work_dir=work_dir,
        )

    bwrap = shutil.which("bwrap")
    if bwrap is None:
        if cgroup is not None:
            cgroup.remove()
        raise SandboxUnavailableError(
            "bubblewrap (bwrap) is not installed, so the sandbox cannot enter namespaces: install it "
            "(apt-get install bubblewrap), or set CODERM_SANDBOX_ISOLATION=rlimits to run with rlimits "
            "only, which is weaker (no network, filesystem or process isolation, no seccomp)"
        )
    arguments = [bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    arguments += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--as-pid-1"]
    if is_root:
        # Privileged bubblewrap drops every capability but these two, which the jail uses to
        # leave root for its own uid before it reads a request.
        arguments += ["--cap-drop", "ALL", "--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    else:
        arguments += ["--unshare-user", "--disable-userns"]
    arguments += ["--clearenv"]
    for name, value in _ENVIRONMENT.items():
        arguments += ["--setenv", name, value]
    arguments += ["--hostname", "coderm-jail"]
    arguments += _root_tree_arguments(policy)
    arguments += ["--ro-bind", str(JAIL_SCRIPT), _JAIL_SCRIPT_INSIDE]
    arguments += ["--proc", "/proc", "--dev", "/dev"]
    # Sticky and world-writable, as /tmp is anywhere: the jail writes there once it has left root.
    arguments += ["--perms", "1777", "--size", str(policy.tmpfs_mb << 20), "--tmpfs", "/tmp"]
    arguments += ["--perms", "1777", "--size", str(policy.shm_mb << 20), "--tmpfs", "/dev/shm"]
    arguments += ["--chdir", "/tmp", "--remount-ro", "/"]
    open_files: list[IO[bytes]] = []
    pass_fds: tuple[int, ...] = ()
    bpf = compile_filter(DENIED_SYSCALLS)
    if bpf is not None:
        open_files.append(bpf)
        pass_fds = (bpf.fileno(),)
        arguments += ["--seccomp", str(bpf.fileno())]
    scratch = "/tmp,/dev/shm"  # both private tmpfs mounts of this jail's own
    arguments += ["--", executable, "-I", "-S", "-B", _JAIL_SCRIPT_INSIDE, scratch, str(uid), str(cpu)]
    return LaunchSpec(
        argv=arguments,
        env={},
        pass_fds=pass_fds,
        preexec=_limit_launcher(cgroup, new_session=False),
        open_files=open_files,
        cgroup=cgroup,
    )
