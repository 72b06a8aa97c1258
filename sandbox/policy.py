"""The sandbox policy, as data: what a jail may see and use (DESIGN §6).

Per-pair limits (time, memory, output) belong to a job (`orchestrator.config.SandboxLimits`); the
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
| cgroup_memory_mb   | 3072          | memory of a whole jail, where a writable cgroup exists             |
| uid_base           | 1900000000    | jails started by root drop to uid_base + a number of their own     |
| pin_cpus           | true          | pin each jail (and its children) to one CPU, spread over the CPUs |
| read_only_paths    | /usr          | host paths visible read-only (the Python installation is added)    |
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# Syscalls sandboxed code never needs and an attacker would: debugging other processes, changing
# mounts or namespaces, the kernel's keyring, BPF, modules, and the like. They fail with EPERM.
DENIED_SYSCALLS = (
    "ptrace",
    "process_vm_readv",
    "process_vm_writev",
    "mount",
    "umount2",
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


class SandboxPolicy(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CODERM_SANDBOX_", extra="ignore")

    isolation: Literal["namespaces", "rlimits"] = "namespaces"
    jails: int = Field(default_factory=lambda: os.cpu_count() or 1, ge=1, le=256)
    max_processes: int = Field(64, ge=4, le=4096)
    max_open_files: int = Field(64, ge=16, le=65536)
    file_size_mb: int = Field(16, ge=1, le=4096)
    tmpfs_mb: int = Field(64, ge=1, le=16384)
    shm_mb: int = Field(16, ge=1, le=16384)
    cgroup_memory_mb: int = Field(3072, ge=64, le=1 << 20)
    uid_base: int = Field(1_900_000_000, ge=1000, le=4_000_000_000)
    pin_cpus: bool = True
    read_only_paths: tuple[str, ...] = ("/usr",)
