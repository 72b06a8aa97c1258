"""Dynamic scaling end to end, against Postgres: oracle and greedy and threshold allocations, and
the probe's features, training, evaluation and the Fig. 6 comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from orchestrator.core.models import Problem, UnitTest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

TEST = "import unittest\n\n\nclass T{j}(unittest.TestCase):\n    def test_it(self):\n        self.assertEqual(f({j}), {j} + 1)\n"


def labelled_problems(path: Path) -> Path:
    """Six problems whose four samples are right 1, 2, 3, 4, 1, 2 times out of 4 (labels say which)."""
    lines = []
    for k in range(6):
        right = k % 4 + 1
        solutions = [{"solution": "def f(x):\n    return x + 1\n", "plus_status": "pass"}] * right + [
            {"solution": f"def f(x):\n    return x - {i}\n", "plus_status": "fail"} for i in range(4 - right)
        ]
        tests = [TEST.format(j=j) for j in range(5)]
        lines.append(
            {
                "task_id": f"p{k}",
                "question": f"Return x + 1, problem {k}.",
                "solutions": solutions,
                "unit_tests": tests,
            }
        )
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return path


def allocations(url: str, job_id: str) -> list[tuple[str, str | None, int | None, float | None, int]]:
    engine = create_engine(url)
    with Session(engine) as session:
        rows = []
        for problem in session.scalars(
            select(Problem).where(Problem.job_id == job_id).order_by(Problem.position)
        ):
            sampled = len(session.scalars(select(UnitTest.id).where(UnitTest.problem_id == problem.id)).all())
            rows.append(
                (problem.task_id, problem.allocation, problem.n_tests, problem.predicted_pass_rate, sampled)
            )
    engine.dispose()
    return rows


def job_of(output: str) -> str:
    return output.split("`coderm results ")[1].split("`")[0]


def test_scaling_policies_and_the_probe(
    tmp_path: Path, migrated_postgres_url: str, embedded_env: dict[str, str], coderm_cli
) -> None:
    env = dict(embedded_env, CODERM_DATABASE_URL=migrated_postgres_url)  # embedded broker, real Postgres
    problems = labelled_problems(tmp_path / "labelled.jsonl")

    # Without a probe, greedy is refused before anything is written.
    refused = coderm_cli(["run", str(problems), "--scaling", "greedy"], env=env, timeout=120)
    assert refused.returncode == 2 and "coderm probe train" in refused.stderr
    # A budget above the bounds is refused too.
    refused = coderm_cli(["run", str(problems), "--scaling", "greedy", "--budget-avg", "500"], env=env)
    assert refused.returncode == 2 and "--budget-avg" in refused.stderr

    # Oracle: the true pass rates (from the labels) decide, and exactly 6 x 2 tests are sampled.
    oracle = coderm_cli(
        ["eval", str(problems), "--scaling", "oracle", "--budget-avg", "2", "--max-tests", "5"],
        env=env,
        timeout=300,
    )
    assert oracle.returncode == 0, oracle.stderr
    job = job_of(oracle.stderr)
    rows = allocations(migrated_postgres_url, job)
    assert {policy for _, policy, _, _, _ in rows} == {"oracle"}
    assert sum(tests for _, _, tests, _, _ in rows) == 12
    assert [rate for _, _, _, rate, _ in rows] == [0.25, 0.5, 0.75, 1.0, 0.25, 0.5]
    assert all(sampled == tests for _, _, tests, _, sampled in rows)  # only the allocated tests were sampled
    # The hardest problems get the most tests; the all-correct ones the minimum.
    assert rows[0][2] >= rows[2][2] >= rows[3][2] == 1
    assert "oracle allocation: 12 unit tests sampled for 6 problems" in oracle.stderr

    # The probe: features of the job's prompts (local SmolLM2), trained on the job, scored on it.
    features = coderm_cli(["probe", "features", job], env=env, timeout=600)
    assert features.returncode == 0, features.stderr
    trained = coderm_cli(
        ["probe", "train", "--job", job, "--epochs", "50", "--out", str(tmp_path / "probe.pt")], env=env
    )
    assert trained.returncode == 0, trained.stderr
    assert "probe version" in trained.stdout and (tmp_path / "probe.pt").is_file()
    listed = coderm_cli(["probe", "list"], env=env)
    assert "smollm2 | chat | final hidden state at the last prompt token" in listed.stdout
    version = listed.stdout.split()[0].removeprefix("v")
    scored = coderm_cli(["probe", "eval", version, "--job", job], env=env)
    assert scored.returncode == 0 and "Spearman" in scored.stdout

    # Greedy: the probe's predictions decide, within the bounds and exactly to the budget.
    greedy = coderm_cli(
        ["eval", str(problems), "--scaling", "greedy", "--budget-avg", "2", "--max-tests", "5"],
        env=env,
        timeout=600,
    )
    assert greedy.returncode == 0, greedy.stderr
    rows = allocations(migrated_postgres_url, job_of(greedy.stderr))
    assert {policy for _, policy, _, _, _ in rows} == {"greedy"}
    assert sum(tests for _, _, tests, _, _ in rows) == 12 and all(
        1 <= tests <= 5 for _, _, tests, _, _ in rows
    )
    assert all(rate is not None and 0 <= rate <= 1 for _, _, _, rate, _ in rows)

    # Threshold: each problem on its own, from the same probe.
    threshold = coderm_cli(
        ["eval", str(problems), "--scaling", "threshold", "--tau", "0.05", "--max-tests", "5"],
        env=env,
        timeout=600,
    )
    assert threshold.returncode == 0, threshold.stderr
    rows = allocations(migrated_postgres_url, job_of(threshold.stderr))
    assert {policy for _, policy, _, _, _ in rows} == {"threshold"}
    from agents.scaling.budget import allocate_threshold

    assert all(tests == allocate_threshold(rate, 0.05, 1, 5) for _, _, tests, rate, _ in rows)

    # Fig. 6 on the oracle job's stored matrices: a table, JSON and a picture.
    compared = coderm_cli(
        [
            "probe",
            "compare",
            job,
            "--budgets",
            "1,2,4",
            "--json-out",
            str(tmp_path / "fig6.jsonl"),
            "--png",
            str(tmp_path / "fig6.png"),
        ],
        env=env,
    )
    assert compared.returncode == 0, compared.stderr
    points = [json.loads(line) for line in (tmp_path / "fig6.jsonl").read_text().splitlines()]
    assert [p["budget"] for p in points] == [1, 2, 4] and all(p["greedy"] is not None for p in points)
    assert (tmp_path / "fig6.png").stat().st_size > 1000
