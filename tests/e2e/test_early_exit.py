"""Early exit never changes the answer: the same replay problems run with and without it, end to end.

`coderm run` on HumanEval problems replayed with mutants (the replay benchmark's generator, a few
problems at a smaller size), in-process on the real Postgres, in small chunks that run side by side:
once pruned (the default for problems without ground truth) and once with `--no-prune`. The picks,
tie sets, top sets and pass counts are the same; the pruned run ran fewer pairs and says so.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from orchestrator.core.db import session_scope
from orchestrator.core.models import ExecutionResult, Job, Problem, Selection, Solution, UnitTest

sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))

from make_replay_benchmark import replay_records  # noqa: E402

pytestmark = pytest.mark.e2e


def plain_replay_file(path: Path) -> Path:
    """Six problems, 24 samples x 24 tests each, without ground truth (so early exit is on)."""
    lines = []
    for replay in replay_records(solutions=24, tests=24, seed=13, problems=6):
        record = replay.record
        lines.append(
            {
                "task_id": record["task_id"],
                "question": record["prompt"],
                "entry_point": record["entry_point"],
                "solutions": record["solutions"],
                "unit_tests": record["unit_tests"],
            }
        )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def votes(url: str, source: Path) -> dict[str, dict[str, Any]]:
    """The job's votes by task id, with solutions named by their index: what the comparison needs."""
    with session_scope(url) as session:
        job_id = session.scalar(select(Job.id).where(Job.source == str(source)))
        rows = session.execute(
            select(Problem.id, Problem.task_id, Selection)
            .join(Selection, Selection.problem_id == Problem.id)
            .where(Problem.job_id == job_id)
        ).all()
        found = {}
        for problem_id, task_id, selection in rows:
            index = dict(
                session.execute(
                    select(Solution.id, Solution.index).where(Solution.problem_id == problem_id)
                ).all()
            )
            outcomes = session.scalars(
                select(ExecutionResult.outcomes).where(ExecutionResult.problem_id == problem_id)
            ).all()
            tests = session.scalar(
                select(UnitTest.id).where(UnitTest.problem_id == problem_id, UnitTest.valid).limit(1)
            )
            found[task_id] = {
                "selected": index.get(selection.solution_id),
                "tie_set": sorted(index[s] for s in selection.tie_set),
                "top_set_size": selection.top_set_size,
                "pass_count": selection.pass_count,
                "tests_used": selection.tests_used,
                "not_run": sum(row.count("N") for row in outcomes),
                "has_tests": tests is not None,
            }
        return found


def test_early_exit_keeps_every_pick_and_tie_set_for_fewer_pairs(
    tmp_path: Path, embedded_env: dict[str, str], migrated_postgres_url: str, coderm_cli
) -> None:
    problems = plain_replay_file(tmp_path / "pruned.jsonl")
    full_problems = tmp_path / "full.jsonl"
    full_problems.write_text(problems.read_text())
    env = dict(embedded_env, CODERM_DATABASE_URL=migrated_postgres_url)
    common = ["-n", "24", "-m", "24", "--chunk-size", "3", "--concurrency", "4"]
    outputs = {}
    for name, source, flags in (("pruned", problems, []), ("full", full_problems, ["--no-prune"])):
        out = tmp_path / f"{name}.out.jsonl"
        result = coderm_cli(
            ["run", str(source), *common, *flags, "--json-out", str(out)], env=env, timeout=600
        )
        assert result.returncode == 0, result.stderr
        outputs[name] = {line["task_id"]: line for line in map(json.loads, out.read_text().splitlines())}
        if name == "pruned":
            table = result.stdout

    pruned, full = votes(migrated_postgres_url, problems), votes(migrated_postgres_url, full_problems)
    assert len(pruned) == 6 and pruned.keys() == full.keys()
    for task_id, vote in full.items():
        assert vote["not_run"] == 0
        assert {k: v for k, v in pruned[task_id].items() if k != "not_run"} == {
            k: v for k, v in vote.items() if k != "not_run"
        }, task_id
    # The JSON lines: every pair either ran or was pruned; the full run pruned none.
    for task_id, line in outputs["full"].items():
        pruned_line = outputs["pruned"][task_id]
        assert (
            line["pruned"] == 0 and line["executions"] == line["valid_solutions"] * line["valid_unit_tests"]
        )
        assert pruned_line["executions"] + pruned_line["pruned"] == line["executions"]
        assert pruned_line["pruned"] == pruned[task_id]["not_run"]
        assert (pruned_line["selected_index"], pruned_line["pass_count"]) == (
            line["selected_index"],
            line["pass_count"],
        )
    ran = sum(line["executions"] for line in outputs["pruned"].values())
    total = sum(line["executions"] for line in outputs["full"].values())
    assert ran < total
    assert f"early exit: {ran} of {total} solution x test pairs run; {total - ran} could not" in table
