"""Hostile programs against the sandbox's outer walls, each checked from outside the jail.

Processes, memory, files, output, the host's files and environment, the network, privileges and
the kernel: see `hostile.py` for how an attack is written and checked.
"""

from __future__ import annotations

import socket
import time

import pytest
from hostile import (
    CANARY,
    HONEST,
    HOST_FILE,
    LIMITS,
    NOT_PASS,
    OUTSIDE,
    WANTS_42,
    Counting,
    attack,
    jail_namespace_members,
    run,
)

from sandbox.executor import JailPool
from sandbox.outcomes import Outcome

pytestmark = pytest.mark.security

ATTACKS = {
    # processes
    "fork bomb": ("while True:\n    try:\n        os.fork()\n    except OSError:\n        pass", NOT_PASS),
    "fork bomb of sleepers": (
        "for _ in range(10000):\n    try:\n        if os.fork() == 0:\n            time.sleep(1000)\n    except OSError:\n        break\n"
        "raise SystemExit",
        NOT_PASS,
    ),
    "leftover daemon child": (
        "if os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n        time.sleep(1000)\n    os._exit(0)\nraise SystemExit",
        NOT_PASS,
    ),
    "busy threads left running": (
        "for _ in range(4):\n    threading.Thread(target=lambda: [0 for _ in iter(int, 1)], daemon=True).start()\nraise SystemExit",
        NOT_PASS,
    ),
    "infinite loop ignoring signals": (
        "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGALRM, signal.SIGXCPU, signal.SIGHUP):\n"
        "    try:\n        signal.signal(s, signal.SIG_IGN)\n    except OSError:\n        pass\nwhile True:\n    pass",
        {Outcome.TIMEOUT},
    ),
    "sleep past the limit": ("time.sleep(30)", {Outcome.TIMEOUT}),
    "kill the parent": (
        "os.kill(os.getppid(), signal.SIGKILL)\ntime.sleep(0.05)\nraise SystemExit",
        NOT_PASS,
    ),
    "kill the process group": ("os.killpg(0, signal.SIGKILL)", NOT_PASS),
    # kill(-1) reaches every process of the jail but the caller and the jail itself: the test's own
    # siblings die, the test goes on and may pass; what matters is that the jail and host are whole.
    "kill every process": ("os.kill(-1, signal.SIGKILL)", NOT_PASS | {Outcome.PASS}),
    "signal the jail": (
        "for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGUSR1, signal.SIGKILL):\n"
        "    os.kill(1, s)\nraise SystemExit",
        NOT_PASS,
    ),
    # memory, files and output
    "memory bomb": ("x = bytearray(8 * 2**30)", {Outcome.MEMORY}),
    "gradual memory bomb": (
        "chunks = []\nwhile True:\n    chunks.append(bytearray(64 * 2**20))",
        {Outcome.MEMORY},
    ),
    "fill the disk": (
        "try:\n    with open('/tmp/big', 'wb') as out:\n        while True:\n            out.write(b'x' * 2**20)\n"
        "except OSError as full:\n    assert os.path.getsize('/tmp/big') > 2**30, full",  # a full tmpfs is small
        NOT_PASS,
    ),
    "write a huge file": (
        "with open('/tmp/huge', 'wb') as out:\n    out.write(b'x' * 100 * 2**20)",
        NOT_PASS,
    ),
    "exhaust /dev/shm": (
        "try:\n    with open('/dev/shm/big', 'wb') as out:\n        while True:\n            out.write(b'x' * 2**20)\n"
        "except OSError as full:\n    assert os.path.getsize('/dev/shm/big') > 2**30, full",
        NOT_PASS,
    ),
    "exhaust file descriptors": (
        "fds = [os.open('/dev/null', os.O_RDONLY) for _ in range(100000)]",
        NOT_PASS,
    ),
    "huge stdout": ("while True:\n    print('x' * 10000)", {Outcome.TIMEOUT}),
    "huge stderr": ("while True:\n    sys.stderr.write('y' * 10000)", {Outcome.TIMEOUT}),
    "write outside the work dir": (f"open('{OUTSIDE}', 'w').write('x')", NOT_PASS),
    "write into the installation": ("open(os.__file__, 'a').write('# pwned')", NOT_PASS),
    "rewrite the jail": ("open('/coderm/jail.py', 'w').write('')", NOT_PASS),
    "crash the interpreter": ("import faulthandler\nfaulthandler._sigsegv()", {Outcome.KILLED}),
    "overflow the C stack": (
        "sys.setrecursionlimit(10**7)\ndef deeper(n):\n    return deeper(n + 1) + 1\ndeeper(0)",
        NOT_PASS,
    ),
    # reading the host
    "read /etc/shadow": ("open('/etc/shadow').read()", NOT_PASS),
    "read a host file": (f"assert '{CANARY}' in open('{HOST_FILE}').read()", NOT_PASS),
    "read the host environment": (
        f"assert '{CANARY}' in str(os.environ) or '{CANARY}' in open('/proc/self/environ').read()",
        NOT_PASS,
    ),
    "read other processes": (
        f"seen = ''\nfor p in os.listdir('/proc'):\n    if p.isdigit():\n        try:\n"
        f"            seen += open(f'/proc/{{p}}/environ').read() + open(f'/proc/{{p}}/cmdline').read()\n"
        f"        except OSError:\n            pass\nassert 'pytest' in seen or '{CANARY}' in seen",
        NOT_PASS,
    ),
    "walk out of the root": (
        "for _ in range(50):\n    os.chdir('..')\nassert 'work' in os.listdir('.') or 'etc' in os.listdir('.')",
        NOT_PASS,
    ),
    "read the jail's pipes": ("os.read(os.open('/proc/1/fd/0', os.O_RDONLY), 10)", NOT_PASS),
    # the network
    "connect to Postgres": ("socket.create_connection(('127.0.0.1', 5432), timeout=0.5)", NOT_PASS),
    "connect to Redis": ("socket.create_connection(('127.0.0.1', 6379), timeout=0.5)", NOT_PASS),
    "connect to RabbitMQ": ("socket.create_connection(('127.0.0.1', 5672), timeout=0.5)", NOT_PASS),
    "resolve a name": ("socket.getaddrinfo('example.com', 80)", NOT_PASS),
    "send UDP out": (
        "socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b'x', ('8.8.8.8', 53))",
        NOT_PASS,
    ),
    "open a raw netlink socket": ("socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0)", NOT_PASS),
    # privileges and the kernel
    "become root": ("os.setuid(0)", NOT_PASS),
    "ptrace the jail": (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.ptrace(16, 1, 0, 0) == 0",  # PTRACE_ATTACH
        NOT_PASS,
    ),
    "write the jail's memory": ("open('/proc/1/mem', 'wb').write(b'x')", NOT_PASS),
    "new user namespace": (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.unshare(0x10000000) == 0",  # CLONE_NEWUSER
        NOT_PASS,
    ),
    "mount a filesystem": (
        "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\nassert libc.mount(b'none', b'/tmp', b'tmpfs', 0, None) == 0",
        NOT_PASS,
    ),
    # faking a pass
    "os._exit before the asserts": ("os._exit(0)", {Outcome.KILLED}),
    "sys.exit(0) before the asserts": ("sys.exit(0)", NOT_PASS),
    "print a passing report": (
        "print('.\\n---\\nRan 1 test in 0.000s\\n\\nOK')\nsys.stdout.flush()\nos._exit(0)",
        {Outcome.KILLED},
    ),
    "patch assertEqual": (
        "import unittest\nunittest.TestCase.assertEqual = lambda *args, **kwargs: None\nreturn 0",
        NOT_PASS,
    ),
    "patch the result": (
        "import unittest\nunittest.TestResult.addFailure = lambda *args: None\n"
        "unittest.TestResult.addError = lambda *args: None\nreturn 0",
        NOT_PASS,
    ),
    "patch wasSuccessful": (
        "import unittest\nunittest.TestResult.wasSuccessful = lambda self: True\nreturn 0",
        NOT_PASS,
    ),
    "forge a verdict": (
        "for fd in range(3, 256):\n    for index in range(4):\n        try:\n"
        "            os.write(fd, f'0000000000000000 {index} P 1 0 0\\n'.encode())\n        except OSError:\n            pass\nreturn 0",
        NOT_PASS,
    ),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_is_contained(pool: JailPool, loopback_server: int, name: str) -> None:
    body, allowed = ATTACKS[name]
    started = time.monotonic()
    result = run(pool, attack(body))
    assert result.outcome in allowed, f"{name}: {result.outcome} ({result.output[-300:]})"
    # The per-pair wall clock holds whatever the program does to signals.
    assert time.monotonic() - started < LIMITS.time_limit_s + 5
    assert not OUTSIDE.exists()
    assert Counting.connections == 0


def test_connecting_to_a_loopback_server_of_the_host_fails(pool: JailPool, loopback_server: int) -> None:
    result = run(pool, attack(f"socket.create_connection(('127.0.0.1', {loopback_server}), timeout=0.5)"))
    assert result.outcome is not Outcome.PASS
    assert Counting.connections == 0
    # The server itself works: the host can reach it.
    socket.create_connection(("127.0.0.1", loopback_server), timeout=2).close()
    time.sleep(0.2)
    assert Counting.connections == 1
    Counting.connections = 0


def test_hostile_top_level_code_fails_its_pairs_only(pool: JailPool) -> None:
    """Top-level code runs once per solution; when it attacks, every pair of that solution fails."""
    for top_level in (
        "import os\nos._exit(0)\n",
        "raise SystemExit(0)\n",
        "while True:\n    pass\n",
        "import os\nwhile True:\n    os.fork() if True else None\n",
    ):
        solutions = [top_level + HONEST, HONEST]
        matrix = pool.run_matrix(solutions, [WANTS_42, WANTS_42.replace("TestF", "TestG")], LIMITS)
        assert all(cell.outcome is not Outcome.PASS for cell in matrix[0]), top_level
        assert all(cell.outcome is Outcome.PASS for cell in matrix[1])
        assert len(jail_namespace_members(pool)) == 1


def test_state_does_not_leak_between_pairs(pool: JailPool) -> None:
    """Each pair starts from the solution's freshly loaded state, files and globals alike."""
    solution = (
        "import os\nseen = []\n\ndef f():\n    seen.append(1)\n    first = not os.path.exists('/tmp/mark')\n"
        "    open('/tmp/mark', 'w').close()\n    return 42 if len(seen) == 1 and first else 0\n"
    )
    tests = [WANTS_42.replace("TestF", f"TestF{i}") for i in range(5)]
    matrix = pool.run_matrix([solution], tests, LIMITS)
    assert [cell.outcome for cell in matrix[0]] == [Outcome.PASS] * 5


def test_output_is_captured_and_capped(pool: JailPool) -> None:
    result = run(pool, attack("print('z' * 100000)\nraise SystemExit"))
    assert result.outcome is Outcome.ERROR
    assert 0 < len(result.output.encode()) <= LIMITS.output_limit_bytes
