"""A jail per test module, and the checks on the host made when the module is done with it."""

from __future__ import annotations

import os
import socketserver
import threading
from collections.abc import Iterator

import pytest
from hostile import ATTACK_TARGETS, CANARY, HONEST, HOST_FILE, LIMITS, WANTS_42, Counting, sandbox_owned_files

from sandbox.executor import JailPool
from sandbox.outcomes import Outcome
from sandbox.policy import SandboxPolicy


@pytest.fixture(scope="module")
def loopback_server() -> Iterator[int]:
    """A TCP server on the host's loopback; sandboxed code must never reach it."""
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Counting)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def pool() -> Iterator[JailPool]:
    """One jail, shared by a module's attacks in order: what one leaves behind meets the next."""
    os.environ["CODERM_CANARY"] = CANARY  # the worker's environment: must not reach the jail
    HOST_FILE.write_text(CANARY)
    policy = SandboxPolicy(isolation="namespaces", jails=1)
    jail_pool = JailPool(policy, size=1)
    try:
        yield jail_pool
        # After the module: nothing the attacks wrote reached the host, and the jail still serves.
        # (Other processes on the host come and go in /tmp, so the check is by owner and by name.)
        assert not [path for path in ATTACK_TARGETS if path.exists()]
        if os.geteuid() == 0:
            assert sandbox_owned_files(policy) == []
        assert jail_pool.run_matrix([HONEST], [WANTS_42], LIMITS)[0][0].outcome is Outcome.PASS
    finally:
        jail_pool.close()
        HOST_FILE.unlink(missing_ok=True)
        os.environ.pop("CODERM_CANARY", None)
