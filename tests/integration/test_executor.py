"""The executor's verdicts on ordinary programs (the hostile ones live in tests/security)."""

from __future__ import annotations

import pytest

from orchestrator.core.config import SandboxLimits
from sandbox.executor import run_matrix, run_pair
from sandbox.outcomes import Outcome

pytestmark = pytest.mark.integration

TEST = "import unittest\n\nclass T(unittest.TestCase):\n    def test_one(self):\n        self.assertEqual(f(1), 2)\n"
LIMITS = SandboxLimits(time_limit_s=1.0)


@pytest.mark.parametrize(
    ("solution", "outcome"),
    [
        ("def f(x):\n    return x + 1\n", Outcome.PASS),
        ("def f(x):\n    return x\n", Outcome.FAIL),
        ("def f(x):\n    raise ValueError\n", Outcome.ERROR),
        ("def f(x):\n    while True:\n        pass\n", Outcome.TIMEOUT),
        ("def f(x:\n", Outcome.INVALID),
        ("import sys\nsys.exit(0)\n", Outcome.ERROR),
        ("import os\nos._exit(0)\n", Outcome.KILLED),
        (
            "def f(x):\n    return x + 1\nif __name__ == '__main__':\n    raise SystemExit(input())\n",
            Outcome.PASS,
        ),
    ],
)
def test_verdicts(solution: str, outcome: Outcome) -> None:
    assert run_pair(solution, TEST, LIMITS).outcome is outcome


def test_a_test_without_class_is_invalid() -> None:
    assert run_pair("def f(x): return x", "print('hi')", LIMITS).outcome is Outcome.INVALID


def test_printing_ok_does_not_pass() -> None:
    solution = "print('OK')\nprint('Ran 1 test')\ndef f(x):\n    return 0\n"
    result = run_pair(solution, TEST, LIMITS)
    assert result.outcome is Outcome.FAIL and result.tests_run == 1 and result.failures == 1


def test_matrix_is_solutions_by_tests() -> None:
    matrix = run_matrix(["def f(x): return x + 1", "def f(x): return 0"], [TEST, TEST], LIMITS)
    assert [[cell.outcome for cell in row] for row in matrix] == [[Outcome.PASS] * 2, [Outcome.FAIL] * 2]


# Honest programs that use frames and introspection, as solutions and tests do: a hardening that
# refused them would turn right answers into errors.
INTROSPECTIVE = {
    "namedtuple": "import collections\nPoint = collections.namedtuple('Point', 'x y')\ndef f(x):\n    return Point(x, 1).x + 1\n",
    "typing.NamedTuple": "from typing import NamedTuple\nclass P(NamedTuple):\n    x: int\ndef f(x):\n    return P(x).x + 1\n",
    "dataclass": "from dataclasses import dataclass, field\n@dataclass\nclass C:\n    x: int\n    y: list = field(default_factory=list)\ndef f(x):\n    return C(x).x + 1\n",
    "enum functional API": "import enum\nColor = enum.Enum('Color', 'RED GREEN')\ndef f(x):\n    return x + Color.RED.value\n",
    "logging": "import logging\nlogging.basicConfig(level=logging.INFO)\nlog = logging.getLogger('s')\ndef f(x):\n    log.info('f(%s)', x)\n    return x + 1\n",
    "warnings": "import warnings\ndef f(x):\n    warnings.warn('careful', stacklevel=2)\n    return x + 1\n",
    "inspect.stack": "import inspect\ndef f(x):\n    assert inspect.stack()[0].function == 'f'\n    return x + 1\n",
    "traceback of a caught error": "import traceback\ndef f(x):\n    try:\n        1 / 0\n    except ZeroDivisionError:\n        assert 'ZeroDivisionError' in traceback.format_exc()\n    return x + 1\n",
    "sys._getframe": "import sys\ndef f(x):\n    return x + 1 if sys._getframe().f_code.co_name == 'f' else 0\n",
    "a module not preloaded": "import shlex, graphlib\ndef f(x):\n    return len(shlex.split('a b')) + x - 1\n",
    "recursion limit": "import sys\nsys.setrecursionlimit(10**5)\ndef f(x):\n    return x + 1\n",
    "assertRaises in the test": "def f(x):\n    if x < 0:\n        raise ValueError\n    return x + 1\n",
}


@pytest.mark.parametrize("name", sorted(INTROSPECTIVE))
def test_honest_introspection_keeps_its_verdict(name: str) -> None:
    test = TEST.replace(
        "self.assertEqual(f(1), 2)\n",
        "self.assertEqual(f(1), 2)\n        with self.assertRaises(ValueError):\n            raise ValueError\n",
    )
    result = run_pair(INTROSPECTIVE[name], test, LIMITS)
    assert result.outcome is Outcome.PASS, result.output


def test_an_asyncio_test_class_runs_its_coroutines() -> None:
    test = (
        "import asyncio\nimport unittest\n\n\nclass T(unittest.IsolatedAsyncioTestCase):\n"
        "    async def asyncSetUp(self):\n        self.base = 1\n"
        "    async def test_one(self):\n        await asyncio.sleep(0)\n        self.assertEqual(f(self.base), 2)\n"
    )
    assert run_pair("def f(x):\n    return x + 1\n", test, LIMITS).outcome is Outcome.PASS
    assert run_pair("def f(x):\n    return x\n", test, LIMITS).outcome is Outcome.FAIL


def test_numpy_is_importable_and_nothing_else_of_the_environment() -> None:
    """The reference harness's image has numpy; CodeRM's tests and solutions use it."""
    pytest.importorskip("numpy")
    solution = "import numpy as np\n\ndef f(x):\n    return int(np.array([x, 1]).sum())\n"
    numpy_test = TEST.replace("import unittest", "import unittest\nimport numpy")
    assert run_pair(solution, numpy_test, LIMITS).outcome is Outcome.PASS
    # Installed beside numpy, but not on the list.
    other = run_pair("import pydantic\n\ndef f(x):\n    return x + 1\n", TEST, LIMITS)
    assert other.outcome is Outcome.ERROR and "ModuleNotFoundError" in other.output
