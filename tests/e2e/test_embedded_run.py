"""`coderm run` with no services: SQLite, in-memory broker, in-process worker."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from replay_problems import ADD_SOLUTIONS, write_replay_file

pytestmark = pytest.mark.e2e


def test_replay_run_prints_a_table_and_writes_json_lines(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    problems = write_replay_file(tmp_path / "replay.jsonl", count=2)
    out = tmp_path / "out" / "results.jsonl"
    result = coderm_cli(["run", str(problems), "--json-out", str(out)], env=embedded_env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "add/0" in result.stdout and "completed" in result.stdout

    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["task_id"] for line in lines] == ["add/0", "add/1"]
    for line in lines:
        assert line["selected_solution"] == ADD_SOLUTIONS[1]
        assert line["pass_count"] == 2 and line["tests_used"] == 2
        assert set(line["timings"]) >= {"plan", "policy", "coderm", "sandbox", "vote", "total"}

    database = Path(embedded_env["CODERM_HOME"]) / "coderm.db"
    with sqlite3.connect(database) as connection:
        assert connection.execute("select count(*) from execution_results").fetchone() == (6,)
        assert connection.execute("select version_num from alembic_version").fetchone() is not None


def test_bad_problem_file_names_line_and_writes_nothing(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"task_id": "a", "question": "q"}\n{"task_id": "b"\n')
    out = tmp_path / "out.jsonl"
    result = coderm_cli(["run", str(bad), "--json-out", str(out)], env=embedded_env, timeout=60)
    assert result.returncode == 2
    assert f"{bad}:2: not valid JSON" in result.stderr.replace("\n", "")
    assert not out.exists()
    assert not (Path(embedded_env["CODERM_HOME"]) / "coderm.db").exists()


def test_replay_backend_without_samples_is_refused_before_anything_runs(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    plain = tmp_path / "plain.jsonl"
    plain.write_text('{"task_id": "a", "question": "q"}\n')
    result = coderm_cli(["run", str(plain), "--backend", "replay"], env=embedded_env, timeout=60)
    assert result.returncode == 2
    assert "plain.jsonl:1:" in result.stderr and "has no 'solutions'" in result.stderr


def test_invalid_option_value_is_refused(tmp_path: Path, embedded_env: dict[str, str], coderm_cli) -> None:
    problems = write_replay_file(tmp_path / "replay.jsonl", count=1)
    result = coderm_cli(["run", str(problems), "--n-solutions", "-3"], env=embedded_env, timeout=60)
    assert result.returncode == 2 and "--n-solutions" in result.stderr


@pytest.mark.slow
def test_local_smollm2_run_on_one_problem(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli, data_dir: Path
) -> None:
    """The real local backend: SmolLM2-135M-Instruct on the CPU writes solutions and tests."""
    problem = tmp_path / "one.jsonl"
    problem.write_text((data_dir / "input_humaneval+_sol.jsonl").read_text().splitlines()[0] + "\n")
    (tmp_path / "one_ut.jsonl").write_text("")  # no twin by this name: the question prompts CodeRM
    out = tmp_path / "out.jsonl"
    result = coderm_cli(
        ["run", str(problem), "-n", "2", "-m", "2", "--max-new-tokens", "48", "--json-out", str(out)],
        env=embedded_env,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr
    line = json.loads(out.read_text())
    assert line["task_id"] == "HumanEval/0" and line["status"] == "completed"
    assert line["solutions"] == 2

    with sqlite3.connect(Path(embedded_env["CODERM_HOME"]) / "coderm.db") as connection:
        rows = connection.execute(
            "select raw, backend, model, completion_tokens, finish_reason, prompt_tokens from solutions"
        ).fetchall()
    assert len(rows) == 2
    for raw, backend, model, completion_tokens, finish_reason, prompt_tokens in rows:
        assert raw.strip() and backend == "local" and model == "smollm2"
        assert 0 < completion_tokens <= 48 and finish_reason in ("stop", "length") and prompt_tokens > 50
