"""Forging a pass: code under test that answers wrong and tries to make its pair pass anyway.

Every solution here returns the wrong answer (or none) and attacks the verdict: through unittest's
own ways out (skips, expected failures, the runner's internals), by patching unittest at the top
level or during the test, by walking frames and the garbage collector to the harness, by writing
verdicts itself, by forking and reporting from a branch, by flooding the verdict channel. The
verdict is read from outside, by the worker, as a job would read it: none may be a pass.
"""

from __future__ import annotations

import time

import pytest
from hostile import LIMITS, NOT_PASS, WANTS_42, attack, run, unit_test

from sandbox.executor import JailPool
from sandbox.outcomes import Outcome

pytestmark = pytest.mark.security

# The test asserts twice: an attack that acts during the first assertion could reach the second.
TWO_ASSERTS = unit_test("self.assertEqual(f(), 42)", "self.assertEqual(f(), 42)")
# Two test methods: an attack in the first could reach the second.
TWO_METHODS = (
    "import unittest\n\n\nclass TestF(unittest.TestCase):\n"
    "    def test_a(self):\n        self.assertEqual(f(), 42)\n"
    "    def test_b(self):\n        self.assertEqual(f(), 42)\n"
)

# The harness's frames, reached from the code under test: every frame below it, and its locals.
FRAMES = """
import sys
frames, frame = [], sys._getframe()
while frame is not None:
    frames.append(frame)
    frame = frame.f_back
"""
# A verdict line for every nonce-looking string the collector can find, on every descriptor.
WRITE_EVERYWHERE = """
def spray(lines):
    for fd in range(3, 64):
        for line in lines:
            try:
                os.write(fd, line)
            except OSError:
                pass
"""

ATTACKS = {
    # unittest's own ways out of a test
    "raise SkipTest": ("import unittest\nraise unittest.SkipTest('no')", NOT_PASS),
    "raise _ShouldStop": ("import unittest.case\nraise unittest.case._ShouldStop()", NOT_PASS),
    "skipTest through the caller's frame": (
        "sys._getframe(1).f_locals['self'].skipTest('no')\nreturn 0",
        NOT_PASS,
    ),
    "stop the run through the frames": (
        FRAMES
        + "for fr in frames:\n    r = fr.f_locals.get('result')\n    if r is not None:\n        r.stop()\n"
        "import unittest.case\nraise unittest.case._ShouldStop()",
        NOT_PASS,
    ),
    # patching unittest during the test (after the first assertion's lookup)
    "patch TestCase.assertEqual during the test": (
        "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\nreturn 0",
        NOT_PASS,
    ),
    "shadow assertEqual on the test class found by __subclasses__": (
        "import unittest\nfor cls in unittest.TestCase.__subclasses__():\n"
        "    cls.assertEqual = lambda *a, **k: None\nreturn 0",
        NOT_PASS,
    ),
    "patch the real class dict through mappingproxy.__or__": (
        "import unittest\nclass Leak:\n    def __ror__(self, other):\n        return other\n"
        "real = unittest.TestCase.__dict__ | Leak()\nreal['assertEqual'] = lambda *a, **k: None\nreturn 0",
        NOT_PASS,
    ),
    "replace unittest's outcome machinery": (
        "import unittest.case\nunittest.case._addSkip = lambda *a: None\n"
        "unittest.case._Outcome.testPartExecutor = lambda *a, **k: None\nreturn 0",
        NOT_PASS,
    ),
    "rewrite a closure cell of subTest": (
        "import unittest\ncell = unittest.TestCase.subTest.__closure__[0]\n"
        "cell.cell_contents = lambda *a, **k: iter([None])\nreturn 0",
        NOT_PASS,
    ),
    "swap the code of assertEqual": (
        "import unittest\nunittest.TestCase.assertEqual.__code__ = (lambda *a, **k: None).__code__\nreturn 0",
        NOT_PASS,
    ),
    "patch builtins the assertions use": (
        "import builtins\nbuiltins.isinstance = lambda *a: True\nbuiltins.len = lambda x: 0\nreturn 0",
        NOT_PASS,
    ),
    # the harness's own state
    "call the verdict writer found in the frames": (
        FRAMES + "for fr in frames:\n    for value in list(fr.f_locals.values()):\n"
        "        if getattr(value, '__name__', '') == 'write_verdict':\n"
        "            value(3, 0, 'P', 1, 0, 0)\nreturn 0",
        NOT_PASS,
    ),
    "make the driver call the verdict writer for us": (
        "import functools, _jailsys, unittest\n"
        "for cls in unittest.TestCase.__subclasses__():\n"
        "    cls.tearDownClass = staticmethod(functools.partial(_jailsys.write_verdict, 3, 0, 'P', 1, 0, 0))\n"
        "    cls.setUpClass = staticmethod(functools.partial(_jailsys.write_verdict, 3, 0, 'P', 1, 0, 0))\n"
        "return 0",
        NOT_PASS,
    ),
    "a returned object whose __eq__ is the verdict writer": (
        "import functools, _jailsys\n"
        "class R(int):\n    __eq__ = functools.partial(_jailsys.write_verdict, 3, 0, 'P', 1, 0, 0)\n"
        "    __ne__ = __eq__\nreturn R(0)",
        NOT_PASS,
    ),
    "enter the driver again": ("import _jailsys\n_jailsys.enter_driver()", NOT_PASS),
    "run the driver again with a test of our own": (
        "import __main__\n__main__._drive((None,) * 8, ())\nreturn 0",
        NOT_PASS,
    ),
    "replace the jail's functions in __main__": (
        "import __main__\n__main__._say = __main__._describe = __main__._flush = lambda *a: None\n"
        "__main__._drive = __main__._pair_child = lambda *a: None\nreturn 0",
        NOT_PASS,
    ),
    "find the nonce with the garbage collector": (
        WRITE_EVERYWHERE
        + "import gc, re\nhexes = {o for o in gc.get_objects() if isinstance(o, str) and re.fullmatch('[0-9a-f]{32}', o)}\n"
        "for frame_locals in [fr.f_locals for fr in [sys._getframe(i) for i in range(1, 12)]]:\n"
        "    hexes |= {v for v in frame_locals.values() if isinstance(v, (str, bytes)) and len(v) == 32}\n"
        "spray([f'{h} 0 P 1 0 0\\n'.encode() if isinstance(h, str) else h + b' 0 P 1 0 0\\n' for h in hexes])\nreturn 0",
        NOT_PASS,
    ),
    "frames from the garbage (DEBUG_SAVEALL)": (
        "import gc, types\ngc.set_debug(gc.DEBUG_SAVEALL)\ntry:\n    raise ValueError\nexcept ValueError as e:\n"
        "    e.loop = e\ngc.collect()\nfound = [o for o in gc.garbage if isinstance(o, types.FrameType)]\n"
        "for fr in found:\n    while fr is not None:\n        for v in list(fr.f_locals.values()):\n"
        "            if callable(v) and getattr(v, '__name__', '') == 'write_verdict':\n"
        "                v(3, 0, 'P', 1, 0, 0)\n        fr = fr.f_back\nreturn 0",
        NOT_PASS,
    ),
    # The ways to rewrite the driver or read the native side's memory: each body reaches its end,
    # and so passes, only if the way is open.
    "a trace function to rewrite the driver's locals": ("sys.settrace(lambda *a: None)", NOT_PASS),
    "a profile function": ("sys.setprofile(lambda *a: None)", NOT_PASS),
    "a code object of our own": ("f.__code__.replace(co_consts=(42,))", NOT_PASS),
    "marshal a code object": ("import marshal\nmarshal.loads(marshal.dumps((lambda: 0).__code__))", NOT_PASS),
    "bytecode of our own through the jail's trusted reader": (
        "import _jailsys, marshal, importlib.util\n"
        "data = importlib.util.MAGIC_NUMBER + bytes(12) + bytes.fromhex('e3') + bytes(40)\n"
        "open('/tmp/x.pyc', 'wb').write(data)\n_jailsys.read_trusted_code('/tmp/x.pyc')",
        NOT_PASS,
    ),
    "ctypes under another name": (
        "import importlib.util, _imp\n_imp.create_dynamic(importlib.util.find_spec('_ctypes'))",
        NOT_PASS,
    ),
    "swap a function's code": ("def g():\n    pass\ng.__code__ = (lambda: 1).__code__", NOT_PASS),
    "loosen assertAlmostEqual's defaults": (
        "import unittest\nunittest.TestCase.assertAlmostEqual.__defaults__ = (None, None, 10**9)",
        NOT_PASS,
    ),
    "an audit hook of our own": (
        "seen = []\nsys.addaudithook(lambda event, args: seen.append(event))\nopen('/dev/null').close()\nassert seen",
        NOT_PASS,
    ),
    "forge lines with guessed nonces on every descriptor": (
        WRITE_EVERYWHERE + "spray([b'0' * 32 + f' {i} P 1 0 0\\n'.encode() for i in range(4)])\nreturn 0",
        NOT_PASS,
    ),
    # reporting from a forked branch, the branch that answers right
    "answer right in a forked child only": (
        "if os.fork() == 0:\n    return 42\nos._exit(0)",
        NOT_PASS,
    ),
    "search the answer in forked children, dying on a failed assertion": (
        "class Die(int):\n    def __repr__(self):\n        os._exit(0)\n"
        "for guess in (41, 42, 43):\n    if os.fork() == 0:\n        return Die(guess)\nos._exit(0)",
        NOT_PASS,
    ),
}


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_a_wrong_solution_cannot_forge_a_pass(pool: JailPool, name: str) -> None:
    body, allowed = ATTACKS[name]
    result = run(pool, attack(body), TWO_ASSERTS)
    assert result.outcome in allowed, f"{name}: {result.outcome} ({result.output[-300:]})"


@pytest.mark.parametrize(
    "top_level",
    [
        # the issue's own: internals of unittest.case, patched before the test exists
        "import unittest.case\nunittest.case._addError = lambda *a, **k: None\n",
        "import unittest\nunittest.TestResult.addFailure = unittest.TestResult.addError = lambda *a: None\n",
        "import unittest\nunittest.TestCase.assertEqual = lambda *a, **k: None\n",
        "import unittest\nunittest.TestLoader.getTestCaseNames = lambda *a: []\n",
        "import unittest\nunittest.TestCase.run = lambda self, result=None: None\n",
        "import sys, types\nfake = types.ModuleType('unittest')\nfake.TestCase = object\nsys.modules['unittest'] = fake\n",
        "import builtins\nbuiltins.AssertionError = type('Never', (Exception,), {})\n",
        "def isinstance(*a):\n    return True\ndef len(x):\n    return 0\n",
        "import unittest\nclass Leak:\n    def __ror__(self, other):\n        return other\n"
        "(unittest.TestCase.__dict__ | Leak())['assertEqual'] = lambda *a, **k: None\n",
        "import unittest\nclass Quiet(unittest.TestCase):\n    def assertEqual(self, *a, **k):\n        pass\n"
        "unittest.TestCase = Quiet\n",
    ],
)
def test_top_level_code_cannot_change_what_the_test_runs_on(pool: JailPool, top_level: str) -> None:
    """Whatever the solution's top-level code does to unittest or builtins, the test sees them as
    they were: the wrong answer fails."""
    result = run(pool, top_level + "\ndef f():\n    return 0\n", TWO_ASSERTS)
    assert result.outcome in NOT_PASS, f"{result.outcome}: {result.output[-300:]}"


def test_a_test_method_replaced_during_an_earlier_one_is_caught(pool: JailPool) -> None:
    """test_a answers right and, on the way, swaps test_b for a method that asserts nothing."""
    solution = (
        "import unittest\ncalls = []\n\ndef f():\n    calls.append(1)\n"
        "    for cls in unittest.TestCase.__subclasses__():\n"
        "        if cls.__name__ == 'TestF':\n            cls.test_b = lambda self: None\n"
        "    return 42 if len(calls) == 1 else 0\n"
    )
    result = run(pool, solution, TWO_METHODS)
    assert result.outcome is Outcome.ERROR
    assert "test_b" in result.output


def test_skips_and_expected_failures_are_not_passes(pool: JailPool) -> None:
    """A deliberate difference from wasSuccessful(): a policy that learns to skip must not win."""
    honest = "def f():\n    return 42\n"
    for test in (
        "import unittest\n\n\n@unittest.skip('later')\nclass TestF(unittest.TestCase):\n    def test_f(self):\n        self.assertEqual(f(), 42)\n",
        "import unittest\n\n\nclass TestF(unittest.TestCase):\n    @unittest.skip('later')\n    def test_f(self):\n        self.assertEqual(f(), 42)\n",
        "import unittest\n\n\nclass TestF(unittest.TestCase):\n    @unittest.expectedFailure\n    def test_f(self):\n        self.assertEqual(f(), 41)\n",
        unit_test("self.skipTest('no')"),
    ):
        assert run(pool, honest, test).outcome is Outcome.FAIL, test


def test_every_method_the_source_defines_must_run(pool: JailPool) -> None:
    """Methods are counted from the test's source: removing one from the class gains nothing."""
    solution = (
        "import unittest\n\ndef f():\n    for cls in unittest.TestCase.__subclasses__():\n"
        "        if cls.__name__ == 'TestF' and 'test_b' in cls.__dict__:\n            del cls.test_b\n    return 42\n"
    )
    wrong_b = TWO_METHODS.replace(
        "def test_b(self):\n        self.assertEqual(f(), 42)", "def test_b(self):\n        self.fail()"
    )
    result = run(pool, solution, wrong_b)
    assert result.outcome is not Outcome.PASS


def test_a_class_without_test_methods_passes_as_in_the_paper(pool: JailPool) -> None:
    empty = "import unittest\n\n\nclass TestF(unittest.TestCase):\n    def helper(self):\n        pass\n"
    result = run(pool, "def f():\n    return 0\n", empty)
    assert result.outcome is Outcome.PASS and result.tests_run == 0


def test_flooding_the_verdict_channel_holds_the_deadline(pool: JailPool) -> None:
    """Megabytes at every descriptor: the pair ends within its time limit, and not as a pass."""
    body = WRITE_EVERYWHERE + "spray([b'P' * 65536] * 64)\nreturn 0"
    started = time.monotonic()
    result = run(pool, attack(body), WANTS_42)
    assert result.outcome in NOT_PASS
    assert time.monotonic() - started < LIMITS.time_limit_s + 3
