"""How a jail is started: the bubblewrap command line, built from the policy (DESIGN §6).

With `isolation = namespaces` (the default) the jail runs under bubblewrap in new pid, network,
mount, ipc, uts (and cgroup) namespaces entered once for its whole life: an empty network
namespace (not even loopback reaches the host's Postgres, Redis or RabbitMQ), a read-only root
with only /usr and the Python installation, private size-limited tmpfs mounts at /tmp and
/dev/shm (which the jail replaces whenever a pair leaves something in them), no /proc at all, no
environment but PATH/HOME/LANG, no_new_privs and a seccomp filter. The jail keeps CAP_SYS_ADMIN
(to mount those tmpfs) and, started by root, CAP_SETUID/CAP_SETGID to move each pair child to a
uid of the jail's own (root is exempt from RLIMIT_NPROC); as an ordinary user bubblewrap enters a
new user namespace instead and those capabilities stay inside it. A pair child drops every
capability and installs the stricter pair filter before it runs anything (see `_jail.py`).

With `isolation = rlimits`, an explicit opt-in for hosts without namespaces, the jail is a plain
process with rlimits, a clean environment and a private work directory; pair children still get
the seccomp filter and the audit hook. It cannot stop network access or reads of world-readable
host files, and says so when it starts.
"""

from __future__ import annotations

import importlib.util
import itertools
import json
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from orchestrator.core.errors import CodermError
from sandbox.cgroups import JailCgroup, create_jail_cgroup
from sandbox.policy import JAIL_DENIED_SYSCALLS, PAIR_DENIED_SYSCALLS, SandboxPolicy
from sandbox.seccomp import compile_filter

logger = logging.getLogger(__name__)

JAIL_SCRIPT = Path(__file__).with_name("_jail.py")
PROGRAMS_MODULE = Path(__file__).with_name("programs.py")
_INSIDE = "/coderm"  # where the jail's own files are bound
# No secrets; BLAS libraries (numpy's) asked not to start threads, which pairs cannot make.
_ENVIRONMENT = {
    "PATH": "/usr/bin:/bin",
    "HOME": "/tmp",
    "TMPDIR": "/tmp",
    "LANG": "C.UTF-8",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
}
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


def package_folders(names: Sequence[str]) -> list[Path]:
    """The folders of the allowed third-party packages that are installed: each package and the
    libraries its wheel bundles beside it (numpy.libs). Found without importing them."""
    folders = []
    for name in names:
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            spec = None
        if spec is None or not spec.submodule_search_locations:
            continue
        package = Path(next(iter(spec.submodule_search_locations)))
        folders.append(package)
        bundled = package.with_name(f"{package.name}.libs")
        if bundled.is_dir():
            folders.append(bundled)
    return folders


def native_module_path() -> Path:
    """The jail's native module (sandbox/_jailsys.c), built when the package was installed."""
    spec = importlib.util.find_spec("sandbox._jailsys")
    if spec is None or spec.origin is None:
        raise SandboxUnavailableError(
            "the sandbox's native module sandbox/_jailsys.c is not built: reinstall the package "
            "(pip install -e .), which needs a C compiler and Python's headers"
        )
    return Path(spec.origin)


def _memfd(name: str, data: bytes) -> IO[bytes]:
    """Data in a rewound in-memory file (not in TMPDIR: a full temporary folder must not keep
    jails from starting)."""
    file = os.fdopen(os.memfd_create(name, 0), "w+b")  # LaunchSpec.cleanup closes it
    file.write(data)
    file.flush()
    file.seek(0)
    return file


def _jail_command(script: Path | str, config: dict[str, object]) -> list[str]:
    executable, _ = python_executable()
    return [executable, "-I", "-S", "-B", str(script), json.dumps(config)]


def build_launch(policy: SandboxPolicy, memory_bytes: int) -> LaunchSpec:
    """How to start one jail under `policy`; its cgroup (where one is writable) holds `memory_bytes`."""
    number = next(_jail_numbers)
    cpu = jail_cpu(policy, number)
    is_root = os.geteuid() == 0
    uid = jail_uid(policy, number) if is_root else -1
    cgroup = (
        create_jail_cgroup(f"coderm-jail-{os.getpid()}-{number}", memory_bytes, policy.max_processes, cpu)
        if is_root
        else None
    )
    try:
        native = native_module_path()
        pair_filter = compile_filter(PAIR_DENIED_SYSCALLS, threads=False)
        if policy.isolation == "rlimits":
            return _rlimits_launch(policy, cgroup, uid, cpu, pair_filter)
        return _namespaces_launch(policy, cgroup, uid, cpu, native, pair_filter)
    except BaseException:
        if cgroup is not None:
            cgroup.remove()
        raise


def _rlimits_launch(
    policy: SandboxPolicy, cgroup: JailCgroup | None, uid: int, cpu: int, pair_filter: bytes | None
) -> LaunchSpec:
    jail_dir = Path(tempfile.mkdtemp(prefix="coderm-jail-"))
    work_dir = jail_dir / "work"
    work_dir.mkdir()
    if uid >= 0:
        for folder in (jail_dir, work_dir):
            os.chown(folder, uid, uid)
    packages = jail_dir / "packages"  # links to the allowed packages only, not their site-packages
    packages.mkdir()
    for folder in package_folders(policy.packages):
        (packages / folder.name).symlink_to(folder)
    config: dict[str, object] = {
        "cpu": cpu,
        "packages": str(packages),
        "jail_uid": uid,  # the jail leaves root itself: nothing else isolates it
        "pair_uid": -1,
        "scratch": [[str(work_dir), policy.tmpfs_mb << 20]],
        "mount_scratch": False,
        "pair_filter": None,
    }
    if pair_filter is not None:
        (jail_dir / "pair.bpf").write_bytes(pair_filter)
        config["pair_filter"] = str(jail_dir / "pair.bpf")
    return LaunchSpec(
        argv=_jail_command(JAIL_SCRIPT, config),
        env=dict(_ENVIRONMENT, HOME=str(work_dir), TMPDIR=str(work_dir)),
        preexec=_limit_launcher(cgroup, new_session=True),
        cgroup=cgroup,
        host_work_dir=jail_dir,
    )


def _namespaces_launch(
    policy: SandboxPolicy,
    cgroup: JailCgroup | None,
    uid: int,
    cpu: int,
    native: Path,
    pair_filter: bytes | None,
) -> LaunchSpec:
    bwrap = shutil.which("bwrap")
    if bwrap is None:
        raise SandboxUnavailableError(
            "bubblewrap (bwrap) is not installed, so the sandbox cannot enter namespaces: install it "
            "(apt-get install bubblewrap), or set CODERM_SANDBOX_ISOLATION=rlimits to run with rlimits "
            "only, which is weaker (no network, filesystem or process isolation)"
        )
    arguments = [bwrap, "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts"]
    arguments += ["--unshare-cgroup-try", "--die-with-parent", "--new-session", "--as-pid-1"]
    # The jail mounts a fresh tmpfs when a pair dirtied one (CAP_SYS_ADMIN); started by root, it
    # also moves each pair child to the jail's own uid (CAP_SETUID, CAP_SETGID) and kills what the
    # pair leaves behind, which then runs under that uid (CAP_KILL). Pair children drop every
    # capability before they run anything.
    if uid >= 0:
        arguments += ["--cap-drop", "ALL"]
        for capability in ("CAP_SYS_ADMIN", "CAP_SETUID", "CAP_SETGID", "CAP_KILL"):
            arguments += ["--cap-add", capability]
    else:
        arguments += ["--unshare-user", "--disable-userns", "--cap-add", "CAP_SYS_ADMIN"]
    arguments += ["--clearenv"]
    for name, value in _ENVIRONMENT.items():
        arguments += ["--setenv", name, value]
    arguments += ["--hostname", "coderm-jail"]
    arguments += _root_tree_arguments(policy)
    # Pair children, which may run under another uid, import the allowed packages from here.
    for inside in (_INSIDE, f"{_INSIDE}/packages"):
        arguments += ["--perms", "0755", "--dir", inside]
    arguments += ["--ro-bind", str(JAIL_SCRIPT), f"{_INSIDE}/jail.py"]
    arguments += ["--ro-bind", str(PROGRAMS_MODULE), f"{_INSIDE}/programs.py"]
    arguments += ["--ro-bind", str(native), f"{_INSIDE}/_jailsys.so"]
    for folder in package_folders(policy.packages):
        arguments += ["--ro-bind", str(folder), f"{_INSIDE}/packages/{folder.name}"]
    # No /proc at all: nothing in the jail reads another process, or its own memory, through it.
    arguments += ["--dev", "/dev"]
    arguments += ["--perms", "1777", "--size", str(policy.tmpfs_mb << 20), "--tmpfs", "/tmp"]
    arguments += ["--perms", "1777", "--size", str(policy.shm_mb << 20), "--tmpfs", "/dev/shm"]
    arguments += ["--chdir", "/tmp"]
    open_files: list[IO[bytes]] = []
    pass_fds: list[int] = []
    config: dict[str, object] = {
        "cpu": cpu,
        "packages": f"{_INSIDE}/packages",
        "jail_uid": -1,
        "pair_uid": uid,
        "scratch": [["/tmp", policy.tmpfs_mb << 20], ["/dev/shm", policy.shm_mb << 20]],
        "mount_scratch": True,
        "pair_filter": None,
    }
    jail_filter = compile_filter(JAIL_DENIED_SYSCALLS)
    if jail_filter is not None and pair_filter is not None:
        for flag, data in (("--seccomp", jail_filter), ("--ro-bind-data", pair_filter)):
            open_files.append(_memfd("coderm-seccomp", data))
            pass_fds.append(open_files[-1].fileno())
            arguments += [flag, str(pass_fds[-1])]
        arguments.append(f"{_INSIDE}/pair.bpf")
        config["pair_filter"] = f"{_INSIDE}/pair.bpf"
    arguments += ["--remount-ro", "/dev", "--remount-ro", "/"]  # last: bwrap writes the files above first
    arguments += ["--", *_jail_command(f"{_INSIDE}/jail.py", config)]
    return LaunchSpec(
        argv=arguments,
        env={},
        pass_fds=tuple(pass_fds),
        preexec=_limit_launcher(cgroup, new_session=False),
        open_files=open_files,
        cgroup=cgroup,
    )
