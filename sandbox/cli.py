"""`coderm sandbox`: run pairs by hand, to debug a verdict or to measure the sandbox.

coderm sandbox exec --solution S.py --test T.py [--json]
coderm sandbox matrix FILE.jsonl
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from agents.extract import check_solution_code, clean_unit_test_code
from agents.function_form import entry_names, in_function_form
from orchestrator.cli.options import ModelOptions
from orchestrator.core.config import SandboxLimits
from orchestrator.core.errors import ConfigurationError
from orchestrator.inputs.problem_files import read_problem_file
from sandbox.executor import JailPool, unique
from sandbox.outcomes import Outcome
from sandbox.policy import SandboxPolicy

console = Console(soft_wrap=True)

# The per-pair limits, --time-limit and --memory-mb, from SandboxLimits' fields as in the job commands.
limit_options = ModelOptions(SandboxLimits)


@click.group("sandbox")
def sandbox_cli() -> None:
    """Run solutions against unit tests in the sandbox, outside any job.

    The sandbox policy (isolation, processes, files, tmpfs sizes) comes from CODERM_SANDBOX_*
    environment variables; see `sandbox/policy.py`.
    """


@sandbox_cli.command("exec")
@click.option(
    "--solution",
    "solution_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Python file with the solution.",
)
@click.option(
    "--test",
    "test_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    required=True,
    help="Python file with one unittest.TestCase class.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome as one JSON object.")
@limit_options
def exec_pair(solution_path: Path, test_path: Path, as_json: bool, **limit_values: Any) -> None:
    """Run one solution against one unit test and show the outcome, counts, time and output."""
    solution = solution_path.read_text(encoding="utf-8")
    test = clean_unit_test_code(test_path.read_text(encoding="utf-8"))
    if not test.valid or test.code is None:
        raise ConfigurationError(f"{test_path}: not a usable unit test ({test.invalid_reason})")
    limits = limit_options.build(limit_values)
    pool = JailPool(SandboxPolicy(), size=1)
    try:
        result = pool.run_matrix([solution], [test.code], limits, capture_output=True)[0][0]
    finally:
        pool.close()
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(result) | {"status": result.outcome.name.lower()}))
        return
    table = Table(show_header=False, title=f"{solution_path.name} x {test_path.name}")
    table.add_row("status", f"[bold]{result.outcome.name.lower()}[/bold]")
    table.add_row("tests run", str(result.tests_run))
    table.add_row("failures", str(result.failures))
    table.add_row("errors", str(result.errors))
    table.add_row("duration", f"{result.duration_ms} ms")
    console.print(table)
    if result.output:
        console.rule("output (tail)")
        console.print(result.output, markup=False, highlight=False)


@sandbox_cli.command("matrix")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@limit_options
def matrix(file: Path, **limit_values: Any) -> None:
    """Run every problem's replayed solutions against its replayed unit tests; print throughput."""
    problems = read_problem_file(file).problems
    replayable = [p for p in problems if p.solutions and p.unit_tests]
    if not replayable:
        raise ConfigurationError(f"{file}: no problem carries both 'solutions' and 'unit_tests' to replay")
    limits = limit_options.build(limit_values)
    policy = SandboxPolicy()
    pool = JailPool(policy)
    table = Table(title=f"{file.name}: {len(replayable)} problems, {pool.size} jails")
    for name in ("task", "solutions", "tests", "pairs", "distinct", "passed", "seconds"):
        table.add_column(name, justify="left" if name == "task" else "right")
    total_pairs = total_distinct = 0
    started = time.perf_counter()
    try:
        for problem in replayable:
            names = entry_names(problem.reference_code, problem.entry_point)
            solutions = [
                in_function_form(check_solution_code(s), names).code or "" for s in problem.solutions or []
            ]
            tests = [
                t.code for t in map(clean_unit_test_code, problem.unit_tests or []) if t.valid and t.code
            ]
            began = time.perf_counter()
            result = pool.run_matrix(solutions, tests, limits)
            distinct = len(unique(solutions)[0]) * len(unique(tests)[0])
            passed = sum(cell.outcome is Outcome.PASS for row in result for cell in row)
            pairs = len(solutions) * len(tests)
            total_pairs, total_distinct = total_pairs + pairs, total_distinct + distinct
            table.add_row(
                problem.task_id,
                str(len(solutions)),
                str(len(tests)),
                str(pairs),
                str(distinct),
                str(passed),
                f"{time.perf_counter() - began:.2f}",
            )
    finally:
        pool.close()
    seconds = time.perf_counter() - started
    console.print(table)
    console.print(
        f"{total_pairs} pairs ({total_distinct} distinct, executed) in {seconds:.2f} s: "
        f"{total_pairs / seconds:.0f} pairs/s, {total_distinct / seconds:.0f} executions/s"
    )
