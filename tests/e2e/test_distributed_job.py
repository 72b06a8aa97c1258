"""A job submitted with `coderm submit` travels Postgres, RabbitMQ, Redis and five real workers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from replay_problems import ADD_SOLUTIONS, ADD_TESTS, write_replay_file
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session

from orchestrator.core.models import ExecutionResult, Job, Problem, Selection, Solution, StageRun, UnitTest

pytestmark = [pytest.mark.e2e, pytest.mark.integration]


def wait_for_job(url: str, job_id: str, timeout: float = 180) -> Job:
    engine = create_engine(url)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with Session(engine) as session:
                job = session.get(Job, job_id)
                if job is not None and job.status == "completed":
                    return job
            time.sleep(0.5)
    finally:
        engine.dispose()
    raise AssertionError(f"job {job_id} did not complete within {timeout} s")


def test_submitted_job_is_complete_in_postgres(
    tmp_path: Path, service_env: dict[str, str], workers: list, coderm_cli
) -> None:
    problems = write_replay_file(tmp_path / "replay.jsonl", count=4)
    submitted = coderm_cli(["submit", str(problems), "--chunk-size", "2"], env=service_env, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    assert len(job_id) == 32

    url = service_env["CODERM_DATABASE_URL"]
    wait_for_job(url, job_id)

    engine = create_engine(url)
    with Session(engine) as session:
        problems_rows = session.scalars(select(Problem).where(Problem.job_id == job_id)).all()
        assert len(problems_rows) == 4
        for problem in problems_rows:
            assert problem.status == "completed", problem.error
            solutions = session.scalars(select(Solution).where(Solution.problem_id == problem.id)).all()
            tests = session.scalars(select(UnitTest).where(UnitTest.problem_id == problem.id)).all()
            assert len(solutions) == len(ADD_SOLUTIONS) and len(tests) == len(ADD_TESTS)
            assert [s.valid for s in sorted(solutions, key=lambda s: s.index)] == [True, True, False, True]
            assert [t.valid for t in sorted(tests, key=lambda t: t.index)] == [True, True, False]
            rows = session.scalars(
                select(ExecutionResult).where(ExecutionResult.problem_id == problem.id)
            ).all()
            # One row per valid solution, one letter per unit test (the invalid test included).
            assert len(rows) == 3 and all(len(r.outcomes) == len(ADD_TESTS) for r in rows)
            by_solution = {r.solution_id: r.outcomes for r in rows}
            right = next(s for s in solutions if s.index == 1)
            assert by_solution[right.id] == "PPI"
            selection = session.get(Selection, problem.id)
            assert selection is not None and selection.solution_id == right.id
            assert selection.pass_count == 2 and selection.tests_used == 2
            stages = {
                run.stage
                for run in session.scalars(select(StageRun).where(StageRun.problem_id == problem.id))
            }
            assert stages == {"plan", "policy", "coderm", "sandbox", "vote"}
            # Two chunks of two solutions each ran on the sandbox queue.
            parts = session.scalars(
                select(StageRun.part).where(StageRun.problem_id == problem.id, StageRun.stage == "sandbox")
            ).all()
            assert sorted(parts) == [0, 1]
    engine.dispose()

    shown = coderm_cli(["results", job_id, "--format", "jsonl"], env=service_env, timeout=60)
    assert shown.returncode == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert [line["task_id"] for line in lines] == [f"add/{i}" for i in range(4)]
    assert all(line["selected_solution"] == ADD_SOLUTIONS[1] for line in lines)
    status = coderm_cli(["status", job_id], env=service_env, timeout=60)
    assert status.returncode == 0 and "completed" in status.stdout

    # The work was spread over the queues' own workers.
    logs = {w.queue: w.log_text() for w in workers}
    assert "Task coderm.sandbox.execute_chunk[" in logs["sandbox"]
    assert "Task coderm.policy.sample_solutions[" in logs["policy"]
    assert "Task coderm.coderm.sample_unit_tests[" in logs["coderm"]
    assert "Task coderm.voter.select_solution[" in logs["voter"]
    assert "Task coderm.sandbox.execute_chunk[" not in logs["policy"]


HOSTILE_SOLUTIONS = [
    "import os\ndef add(a, b):\n    while True:\n        try:\n            os.fork()\n        except OSError:\n            pass\n",
    "import os, signal\ndef add(a, b):\n    os.kill(os.getppid(), signal.SIGKILL)\n    return a - b\n",
    "import os\nos._exit(0)\n",
    "def add(a, b):\n    x = bytearray(8 * 2**30)\n",
    "def add(a, b):\n    return a + b\n",
]


def test_hostile_solutions_do_not_stop_the_sandbox_worker(
    tmp_path: Path, service_env: dict[str, str], workers: list, coderm_cli
) -> None:
    problems = tmp_path / "hostile.jsonl"
    problems.write_text(
        json.dumps(
            {"task_id": "hostile", "question": "add", "solutions": HOSTILE_SOLUTIONS, "unit_tests": ADD_TESTS}
        )
        + "\n"
        + json.dumps(
            {"task_id": "honest", "question": "add", "solutions": ADD_SOLUTIONS, "unit_tests": ADD_TESTS}
        )
        + "\n"
    )
    submitted = coderm_cli(["submit", str(problems), "--chunk-size", "1"], env=service_env, timeout=60)
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    wait_for_job(service_env["CODERM_DATABASE_URL"], job_id)
    lines = {
        line["task_id"]: line
        for line in map(
            json.loads,
            coderm_cli(["results", job_id, "--format", "jsonl"], env=service_env).stdout.splitlines(),
        )
    }
    assert lines["hostile"]["status"] == "completed"
    assert lines["hostile"]["selected_solution"] == HOSTILE_SOLUTIONS[-1]  # the one honest sample wins
    assert lines["honest"]["selected_solution"] == ADD_SOLUTIONS[1]
    assert all(w.process.poll() is None for w in workers), "a worker died"
