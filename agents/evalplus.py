"""EvalPlus's tests (HumanEval+, MBPP+) as a ground-truth program for the sandbox.

EvalPlus does not ship test programs: a task carries its reference solution, its inputs (`base_input`,
HumanEval's or MBPP's own; `plus_input`, EvalPlus's) and a tolerance, and a solution is correct iff
its outputs match the reference's on every input by EvalPlus's rules. `ground_truth_program` turns a
task into a program that does exactly that, run after the solution like any other ground truth
(agents/ground_truth.py): the checker is `agents/evalplus_checker.py`, whose docstring lists the rules
and the ones left out, and the task travels in the program as JSON.

The program executes the checker in a namespace of its own, and the checker runs the reference in
another, so no name the solution binds reaches either; everything it needs from the solution is
its entry point. A task whose reference raises on one of its own inputs fails every solution.
"""

from __future__ import annotations

import ast
import base64
import json
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from agents import evalplus_checker

Dataset = Literal["humaneval", "mbpp"]


def _without_docstrings(source: str) -> str:
    """`source` without its comments and docstrings: the checker as every program carries it."""
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if (
                isinstance(first, ast.Expr)
                and isinstance(first.value, ast.Constant)
                and isinstance(first.value.value, str)
            ):
                node.body = node.body[1:] or [ast.Pass()]
    return ast.unparse(tree) + "\n"


CHECKER_SOURCE = _without_docstrings(Path(evalplus_checker.__file__).read_text(encoding="utf-8"))


@dataclass(frozen=True)
class EvalPlusTask:
    """One task of HumanEvalPlus.jsonl or MbppPlus.jsonl, as the checker needs it."""

    task_id: str
    dataset: Dataset
    entry_point: str
    reference: str  # the reference solution's whole program: EvalPlus's prompt + canonical_solution
    base_input: list[Any]
    plus_input: list[Any]
    atol: float


def ground_truth_program(task: EvalPlusTask, compress: bool = False) -> str:
    """A program, run after a solution, that raises unless the solution passes `task`'s base and
    plus inputs. `compress` packs the task (zlib and base85) for tasks with large inputs."""
    payload = json.dumps(asdict(task), separators=(",", ":"))
    if compress:
        packed = base64.b85encode(zlib.compress(payload.encode("utf-8"), 9)).decode("ascii")
        payload = evalplus_checker.COMPRESSED + packed
    return (
        f"# EvalPlus ground truth of {task.task_id}: {len(task.base_input)} base and "
        f"{len(task.plus_input)} plus inputs (coderm agents/evalplus.py)\n"
        "import builtins as _coderm_builtins\n\n"
        "_coderm_evalplus = {'__builtins__': _coderm_builtins, '__name__': 'coderm_evalplus'}\n"
        "_coderm_builtins.exec(\n"
        f"    _coderm_builtins.compile({CHECKER_SOURCE!r}, '<evalplus checker>', 'exec'), _coderm_evalplus\n"
        ")\n"
        f"_coderm_evalplus['check']({payload!r}, _coderm_builtins.globals())\n"
    )
