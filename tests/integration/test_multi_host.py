"""Workers on hosts of their own: network namespaces on a bridge, the services reached over it.

Each "host" is a network namespace with a veth on a bridge as its only link, its own hostname (UTS
namespace) and its own /tmp (a private tmpfs in a mount namespace of its own) that holds its HOME,
working directory and TMPDIR. Postgres, RabbitMQ and Redis listen on the root namespace's loopback;
a host reaches them at the bridge's address through a forwarder, while 127.0.0.1 in a host is its
own, empty loopback. The job is submitted from the root namespace with 127.0.0.1 URLs.

A job that completes there, each stage on the host that serves its queue, shows that nothing relies
on a temp file shared between workers, a localhost URL baked in anywhere, or state kept outside the
database and the broker.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from replay_problems import ADD_SOLUTIONS, replay_problems
from services import REDIS_URL, REPO, rabbitmq_vhost, spawn_worker, stop_worker, wait_ready
from sqlalchemy import select
from tcp_forward import TcpForwarder

from orchestrator import client
from orchestrator.core.config import Settings
from orchestrator.core.db import session_scope
from orchestrator.core.models import Problem, StageRun

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# RFC 2544's benchmarking block: an address range for test networks that is routed nowhere else.
SUBNET = "198.18"

# Runs on the host, in its own mount and UTS namespaces: a fresh /tmp, a hostname, then the command.
# Run as `sh -c HOST_SETUP HOSTNAME CHECKOUT COMMAND...`. A checkout under /tmp (a clone there)
# would vanish under the host's own /tmp: it is bound back in, as a host would have its install.
HOST_SETUP = (
    'checkout="$1"; shift; keep=""; '
    'case "$checkout" in /tmp/*) keep=$(mktemp -d /run/coderm-host.XXXXXX) && mount --bind /tmp "$keep";; esac; '
    "mount -t tmpfs -o size=256m,mode=1777 coderm-host /tmp && "
    'if [ -n "$keep" ]; then mkdir -p "$checkout" && mount --bind "$keep/${checkout#/tmp/}" "$checkout" '
    '&& umount "$keep" && rmdir "$keep"; fi && '
    'mkdir -p /tmp/home /tmp/work && cd /tmp/work && hostname "$0" && exec "$@"'
)


@dataclass(frozen=True)
class Host:
    name: str
    netns: str
    address: str

    def launcher(self) -> list[str]:
        """A command line prefix that runs the rest of the command on this host."""
        return [
            *("nsenter", f"--net=/run/netns/{self.netns}"),
            *("unshare", "--uts", "--mount", "--propagation", "private"),
            *("sh", "-c", HOST_SETUP, self.name, str(REPO)),
        ]


@dataclass(frozen=True)
class Lab:
    gateway: str
    hosts: list[Host]


def ip(*arguments: str, check: bool = True) -> str:
    done = subprocess.run(["ip", *arguments], capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise RuntimeError(f"ip {' '.join(arguments)}: {done.stderr.strip()}")
    return done.stdout


def free_subnet() -> int:
    """A third octet of SUBNET that no address or route on this machine uses."""
    taken = ip("-o", "-4", "addr") + ip("-4", "route")
    free = [n for n in range(1, 255) if f"{SUBNET}.{n}." not in taken]
    return random.choice(free)


@pytest.fixture
def lab() -> Iterator[Lab]:
    """Two hosts on a bridge; everything is removed afterwards, whether the test passed or not."""
    if os.geteuid() != 0 or not all(shutil.which(tool) for tool in ("ip", "nsenter", "unshare")):
        pytest.skip("network namespaces need root, iproute2 (ip) and util-linux (nsenter, unshare)")
    tag, octet = uuid.uuid4().hex[:6], free_subnet()
    bridge, gateway = f"cdm{tag}", f"{SUBNET}.{octet}.1"
    hosts = [
        Host("gpu-host", f"coderm-{tag}-gpu", f"{SUBNET}.{octet}.11"),
        Host("cpu-host", f"coderm-{tag}-cpu", f"{SUBNET}.{octet}.12"),
    ]
    made: list[str] = []
    try:
        ip("link", "add", bridge, "type", "bridge")
        ip("addr", "add", f"{gateway}/24", "dev", bridge)
        ip("link", "set", bridge, "up")
        for number, host in enumerate(hosts):
            ip("netns", "add", host.netns)
            made.append(host.netns)
            outside, inside = f"cdm{tag}o{number}", f"cdm{tag}i{number}"
            ip("link", "add", outside, "type", "veth", "peer", "name", inside)
            ip("link", "set", outside, "master", bridge, "up")
            ip("link", "set", inside, "netns", host.netns)
            ip("-n", host.netns, "link", "set", inside, "name", "eth0")
            ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
            ip("-n", host.netns, "link", "set", "eth0", "up")
            ip("-n", host.netns, "link", "set", "lo", "up")
        yield Lab(gateway, hosts)
    finally:
        for netns in made:
            # Whatever still runs in a host of ours was started by this test.
            for pid in ip("netns", "pids", netns, check=False).split():
                os.kill(int(pid), signal.SIGKILL)
            ip("netns", "delete", netns, check=False)  # takes its end of the veth pair, and so the pair
        ip("link", "delete", bridge, check=False)


def reachable(host: Host, address: str, port: int) -> bool:
    probe = f"import socket; socket.create_connection(({address!r}, {port}), timeout=3).close()"
    done = subprocess.run(
        ["nsenter", f"--net=/run/netns/{host.netns}", sys.executable, "-c", probe],
        capture_output=True,
        timeout=30,
    )
    return done.returncode == 0


def through(url: str, host: str, port: int) -> str:
    """`url` with its host and port replaced, credentials and path kept."""
    parts = urlsplit(url)
    credentials = parts.netloc.rpartition("@")[0]
    netloc = f"{credentials}@{host}:{port}" if credentials else f"{host}:{port}"
    return urlunsplit(parts._replace(netloc=netloc))


def test_workers_on_separate_hosts_finish_a_job_submitted_from_outside(
    lab: Lab, migrated_postgres_url: str, tmp_path: Path
) -> None:
    gpu, cpu = lab.hosts
    with rabbitmq_vhost() as broker:
        services = {"database": migrated_postgres_url, "broker": broker, "backend": REDIS_URL}
        ports = {name: urlsplit(url).port for name, url in services.items()}
        assert all(ports.values()), ports
        with TcpForwarder(lab.gateway, "127.0.0.1", sorted(set(ports.values()))) as forwarder:
            remote = {
                name: through(url, lab.gateway, forwarder.ports[ports[name]])
                for name, url in services.items()
            }
            # The premise: from a host, the services are at the bridge and not on 127.0.0.1.
            assert not reachable(gpu, "127.0.0.1", ports["database"])
            assert reachable(cpu, lab.gateway, forwarder.ports[ports["database"]])

            host_env = {k: v for k, v in os.environ.items() if not k.startswith("CODERM_")}
            host_env.update(
                HOME="/tmp/home",
                TMPDIR="/tmp",
                CODERM_HOME="/tmp/home/.coderm",
                CODERM_DATABASE_URL=remote["database"],
                CODERM_BROKER_URL=remote["broker"],
                CODERM_RESULT_BACKEND=remote["backend"],
            )
            workers = []
            try:
                # The GPU host serves the models' queues and the orchestrator, the CPU host the sandbox
                # and the voter.
                workers.append(
                    spawn_worker(host_env, "orchestrator,policy,coderm", tmp_path, launcher=gpu.launcher())
                )
                workers.append(spawn_worker(host_env, "sandbox,voter", tmp_path, launcher=cpu.launcher()))
                for worker in workers:
                    wait_ready(worker, timeout=120)
                settings = Settings(
                    home=tmp_path / "submitter",
                    database_url=migrated_postgres_url,
                    broker_url=broker,
                    result_backend=REDIS_URL,
                )
                job_id = client.submit(replay_problems(3), chunk_size=2, settings=settings)
                progress = client.wait(job_id, timeout=300, poll_s=0.5, settings=settings)
            finally:
                for worker in workers:
                    stop_worker(worker)
            logs = "\n".join(worker.log_text() for worker in workers)

    assert progress.status == "completed" and progress.by_status == {"completed": 3}, logs[-4000:]
    assert [s.selected_solution for s in client.results(job_id, settings=settings)] == [ADD_SOLUTIONS[1]] * 3
    with session_scope(migrated_postgres_url) as session:
        runs = session.execute(
            select(StageRun.stage, StageRun.worker).join(Problem).where(Problem.job_id == job_id)
        ).all()
    where = {stage: {worker.rpartition("@")[2] for s, worker in runs if s == stage} for stage, _ in runs}
    assert where == {
        "plan": {"gpu-host"},
        "policy": {"gpu-host"},
        "coderm": {"gpu-host"},
        "sandbox": {"cpu-host"},
        "vote": {"cpu-host"},
    }
