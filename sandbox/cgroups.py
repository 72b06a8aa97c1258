"""A cgroup per jail, where a writable one exists: ceilings on its memory, processes and CPU.

rlimits bound each process; a cgroup bounds the jail as a whole, whatever its processes do: the
memory of the pair it runs (all its processes together, and what they keep in tmpfs), its number
of processes, one CPU's worth of time, and the CPU it is pinned to (a cpuset that no
sched_setaffinity can leave). Both cgroup v2 (one unified hierarchy) and v1 (a hierarchy per
controller) are handled; a controller that is not writable is left out. Where no cgroup is
writable (an ordinary user, most containers), jails run with rlimits and the seccomp filter alone.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

_CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass
class JailCgroup:
    """The cgroup directories of one jail (one per v1 hierarchy, or one under v2)."""

    directories: list[Path]

    def join(self) -> None:
        """Move the calling process in: run in the jail launcher before it execs bubblewrap."""
        pid = str(os.getpid())
        for directory in self.directories:
            (directory / "cgroup.procs").write_text(pid)

    def oom_events_file(self) -> Path | None:
        """The file that counts the OOM kills in this cgroup (v1 memory.oom_control, v2 memory.events)."""
        for directory in self.directories:
            for name in ("memory.events", "memory.oom_control"):
                if (directory / name).is_file():
                    return directory / name
        return None

    def set_memory(self, memory_bytes: int) -> None:
        """A new memory ceiling (between two requests: a job with another memory limit)."""
        for directory in self.directories:
            for file in ("memory.max", "memory.limit_in_bytes"):
                if (directory / file).is_file():
                    with contextlib.suppress(OSError):
                        (directory / file).write_text(str(memory_bytes))

    def remove(self) -> None:
        """Kill whatever is left inside and delete the directories."""
        for directory in self.directories:
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    _kill_members(directory)
                    time.sleep(0.02)


def _kill_members(directory: Path) -> None:
    with contextlib.suppress(OSError):
        for line in (directory / "cgroup.procs").read_text().split():
            with contextlib.suppress(ProcessLookupError, ValueError):
                os.kill(int(line), signal.SIGKILL)


def _own_cgroups() -> dict[str, str]:
    """Controller name (or '' for v2) -> this process' cgroup path."""
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        for controller in controllers.split(",") if controllers else [""]:
            paths[controller] = path
    return paths


def _prune_stale(parent: Path) -> None:
    """Remove the cgroups of jails whose worker process is gone. A Celery pool process ends with
    os._exit, so its jails die with it (bubblewrap's --die-with-parent) but their empty cgroups
    stay behind; without this they would pile up for the life of the host."""
    for directory in parent.glob("coderm-jail-*-*"):
        owner = directory.name.split("-")[2]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            with contextlib.suppress(OSError):
                directory.rmdir()  # refused while processes are inside: then it is not stale


def _make(parent: Path, name: str, limits: dict[str, str]) -> Path | None:
    _prune_stale(parent)
    directory = parent / name
    try:
        directory.mkdir()
    except OSError as exc:
        logger.debug("no writable cgroup at %s: %s", parent, exc)
        return None
    try:
        for file, value in limits.items():
            (directory / file).write_text(value)
    except OSError as exc:
        logger.debug("cannot set limits in %s: %s", directory, exc)
        with contextlib.suppress(OSError):
            directory.rmdir()
        return None
    return directory


def create_jail_cgroup(name: str, memory_bytes: int, max_processes: int, cpu: int = -1) -> JailCgroup | None:
    """A cgroup for one jail with the given ceilings (`cpu` >= 0: pinned to it), or None where
    none can be made."""
    own = _own_cgroups()
    pinned = {"cpuset.cpus": str(cpu)} if cpu >= 0 else {}
    if (_CGROUP_ROOT / "cgroup.controllers").is_file():  # v2, unified at the usual place
        parent = _CGROUP_ROOT / own.get("", "/").lstrip("/")
        enabled = set((parent / "cgroup.subtree_control").read_text().split()) if parent.is_dir() else set()
        if not {"memory", "pids"} <= enabled:
            return None
        limits = {"memory.max": str(memory_bytes), "pids.max": str(max_processes)}
        if "cpu" in enabled:
            limits["cpu.max"] = "100000 100000"
        if "cpuset" in enabled:
            limits.update(pinned)
        directory = _make(parent, name, limits)
        return JailCgroup([directory]) if directory else None
    directories = []
    for controller, limits in (
        ("memory", {"memory.limit_in_bytes": str(memory_bytes)}),
        ("pids", {"pids.max": str(max_processes)}),
        ("cpu", {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "100000"}),
        ("cpuset", {"cpuset.mems": _cpuset_mems(own.get("cpuset")), **pinned} if pinned else {}),
    ):
        mount = _CGROUP_ROOT / controller
        if controller not in own or not mount.is_dir() or not limits:
            continue
        directory = _make(mount / own[controller].lstrip("/"), name, limits)
        if directory is not None:
            directories.append(directory)
    return JailCgroup(directories) if directories else None


def _cpuset_mems(own: str | None) -> str:
    """A v1 cpuset needs its memory nodes set before it takes a process: the parent's."""
    if own is None:
        return "0"
    try:
        return (_CGROUP_ROOT / "cpuset" / own.lstrip("/") / "cpuset.mems").read_text().strip() or "0"
    except OSError:
        return "0"


def oom_kills(events_file: Path | None) -> int:
    """How many processes the OOM killer has killed in a cgroup so far (0 where it is not known)."""
    if events_file is None:
        return 0
    try:
        for line in events_file.read_text().splitlines():
            name, _, value = line.partition(" ")
            if name == "oom_kill":
                return int(value)
    except (OSError, ValueError):
        pass
    return 0
