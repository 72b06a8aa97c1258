"""The sandbox policy, as data: what a jail may see and use (DESIGN §6).

Per-pair limits (time, memory, output) belong to a job (`orchestrator.core.config.SandboxLimits`); the
policy here belongs to the host and is read from `CODERM_SANDBOX_*` environment variables:

| setting            | default       | meaning                                                            |
| ------------------ | ------------- | ------------------------------------------------------------------ |
| isolation          | namespaces    | `namespaces` (bubblewrap) or `rlimits` (weaker: explicit opt-in)     |
| jails              | CPUs          | jails a process runs in parallel (`coderm sandbox`, embedded runs) |
| max_processes      | 64            | processes and threads of a jail (RLIMIT_NPROC, pids cgroup)         |
| max_open_files     | 64            | RLIMIT_NOFILE of sandboxed code                                    |
| file_size_mb       | 16            | largest file sandboxed code may write (RLIMIT_FSIZE)               |
| tmpfs_mb           | 64            | size of the private work directory /tmp                            |
| shm_mb             | 16            | size of the private /dev/shm                                       |
| jail_memory_mb     | 256           | the jail's own memory: its cgroup holds a pair's limit, its tmpfs  |
|                    |               | and this, where a writable cgroup exists                           |
| uid_base           | 1900000000    | jails started by root drop to uid_base + a number of their own     |
| pin_cpus           | true          | pin each jail (and its children) to one CPU, spread over the CPUs |
| read_only_paths    | /usr          | host paths visible read-only (the Python installation is added)    |
| packages           | ["numpy"]     | third-party packages pairs may import, where installed (read-only) |
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Syscalls neither the jail nor sandboxed code needs and an attacker would: debugging other
# processes, changing namespaces, the kernel's keyring, BPF, modules, and the like. EPERM.
_NEVER = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "process_madvise",
    "pidfd_getfd",
    "kcmp",
    "pivot_root",
    "chroot",
    "unshare",
    "setns",
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "reboot",
    "swapon",
    "swapoff",
    "acct",
    "open_by_handle_at",
    "name_to_handle_at",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "syslog",
    "quotactl",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "iopl",
    "ioperm",
    "vhangup",
    "lookup_dcookie",
    "fanotify_init",
    "personality",
)
# The jail (trusted: it runs no untrusted code) mounts a fresh tmpfs when a pair dirtied one.
JAIL_DENIED_SYSCALLS = _NEVER
# Pair children, on top of that (the jail installs this filter on itself once started, and they
# inherit it): no other program (so no interpreter without the jail's audit hook); no signal
# handlers (they would run at any instruction of the driver); no CPU affinity (the jail pins it);
# no System V or POSIX message-queue IPC, which would outlive the pair. Threads are refused by an
# argument rule (see `sandbox.seccomp`). Mounts stay allowed by the filter, for the jail: pair
# children hold no capability to make one.
PAIR_DENIED_SYSCALLS = _NEVER + (
    "execve",
    "execveat",
    "rt_sigaction",
    "sched_setaffinity",
    "shmget",
    "shmat",
    "shmctl",
    "shmdt",
    "semget",
    "semop",
    "semtimedop",
    "semctl",
    "msgget",
    "msgsnd",
    "msgrcv",
    "msgctl",
    "mq_open",
    "mq_unlink",
    "mq_timedsend",
    "mq_timedreceive",
    "mq_notify",
    "mq_getsetattr",
)


class SandboxPolicy(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CODERM_SANDBOX_", extra="ignore")

    isolation: Literal["namespaces", "rlimits"] = "namespaces"
    jails: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    max_processes: int = Field(64, ge=4, le=4096)
    max_open_files: int = Field(64, ge=16, le=65536)
    file_size_mb: int = Field(16, ge=1, le=4096)
    tmpfs_mb: int = Field(64, ge=1, le=16384)
    shm_mb: int = Field(16, ge=1, le=16384)
    jail_memory_mb: int = Field(256, ge=64, le=1 << 20)
    uid_base: int = Field(1_900_000_000, ge=1000, le=4_000_000_000)
    pin_cpus: bool = True
    read_only_paths: tuple[str, ...] = ("/usr",)
    # The reference harness's image has numpy, and CodeRM's tests and solutions use it. Only these
    # packages (and the libraries their wheels bundle) are visible to the jail, nothing else of the
    # worker's environment.
    packages: tuple[str, ...] = ("numpy",)
