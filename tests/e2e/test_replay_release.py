"""`coderm run` on CodeRM's released generations: solutions and tests joined to problems by task id."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from replay_problems import ADD_SOLUTIONS, ADD_TESTS

pytestmark = pytest.mark.e2e


def write_lines(path: Path, records: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def test_release_files_are_replayed_and_their_labels_kept(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    problems = write_lines(
        tmp_path / "problems.jsonl", [{"task_id": "HumanEval/0", "question": "Write add(a, b)."}]
    )
    status = ["fail", "pass", "fail", "fail"]
    solutions = write_lines(
        tmp_path / "sol.jsonl",
        [
            {
                "task_id": "HumanEval/0",
                "solutions": [
                    {"solution": s, "plus_status": p} for s, p in zip(ADD_SOLUTIONS, status, strict=True)
                ],
            }
        ],
    )
    tests = write_lines(tmp_path / "ut.jsonl", [{"task_id": "HumanEval/0", "unit_tests": ADD_TESTS}])
    out = tmp_path / "out.jsonl"
    args = ["run", str(problems), "--backend", "replay", "--replay-solutions", str(solutions)]
    result = coderm_cli(
        args + ["--replay-tests", str(tests), "--json-out", str(out)], env=embedded_env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["selected_solution"] == ADD_SOLUTIONS[1] and line["pass_count"] == 2

    with sqlite3.connect(Path(embedded_env["CODERM_HOME"]) / "coderm.db") as db:
        (labels,) = db.execute("select replay_labels from problems").fetchone()
        backends = db.execute("select distinct backend from solutions").fetchall()
    assert json.loads(labels) == [s == "pass" for s in status] and backends == [("replay",)]


def test_unknown_task_in_a_release_file_is_refused_before_anything_is_written(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    problems = write_lines(tmp_path / "problems.jsonl", [{"task_id": "HumanEval/0", "question": "Q"}])
    tests = write_lines(
        tmp_path / "ut.jsonl",
        [
            {"task_id": "HumanEval/0", "unit_tests": ADD_TESTS},
            {"task_id": "HumanEval/1", "unit_tests": ADD_TESTS},
        ],
    )
    result = coderm_cli(["run", str(problems), "--replay-tests", str(tests)], env=embedded_env, timeout=60)
    assert result.returncode == 2
    assert f"{tests}:2: task_id 'HumanEval/1' is not a problem of {problems}" in result.stderr.replace(
        "\n", ""
    )
    assert not (Path(embedded_env["CODERM_HOME"]) / "coderm.db").exists()
