"""CodeRM's released generations, joined to a problem file by task id; bad lines name file and line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.core.errors import ProblemFileError
from orchestrator.inputs.problem_files import ProblemFile, read_problem_file
from orchestrator.inputs.replay_files import attach_replay_files


def write_lines(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


@pytest.fixture
def problems(tmp_path: Path) -> ProblemFile:
    return read_problem_file(
        write_lines(
            tmp_path / "problems.jsonl",
            {"task_id": "HumanEval/0", "question": "Q0"},
            {"task_id": "HumanEval/1", "question": "Q1"},
            {"task_id": "7", "question": "Q7"},
        )
    )


def test_release_files_fill_the_problems_by_task_id(tmp_path: Path, problems: ProblemFile) -> None:
    solutions = write_lines(
        tmp_path / "sol.jsonl",
        {
            "task_id": "HumanEval/1",
            "solutions": [
                {"solution": "a = 1", "plus_status": "pass"},
                {"solution": "a = 2", "plus_status": "fail"},
            ],
        },
        {"task_id": 7, "solutions": ["b = 1"], "model": "extra fields are ignored"},
    )
    tests = write_lines(tmp_path / "ut.jsonl", {"task_id": "HumanEval/0", "unit_tests": ["import unittest"]})
    joined = attach_replay_files(problems, solutions, tests)
    first, second, third = joined.problems
    assert (first.solutions, first.unit_tests, first.solution_labels) == (None, ["import unittest"], None)
    assert (second.solutions, second.solution_labels) == (["a = 1", "a = 2"], [True, False])
    assert (third.solutions, third.solution_labels) == (["b = 1"], None)
    assert joined.lines == problems.lines and problems.problems[1].solutions is None  # a new object


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (['{"task_id": "HumanEval/9", "solutions": ["a"]}'], 1, "task_id 'HumanEval/9' is not a problem of"),
        (
            ['{"task_id": "7", "solutions": ["a"]}', "", '{"task_id": 7, "solutions": ["b"]}'],
            3,
            "task_id '7' already appears on line 1",
        ),
        (['{"task_id": "7", "unit_tests": ["a"]}'], 1, "missing 'solutions'"),
        (['{"task_id": "7", "solutions": "a = 1"}'], 1, "'solutions' must be a list"),
        (
            ['{"task_id": "7", "solutions": [{"solution": "a", "plus_status": "pass"}, "b = 1"]}'],
            1,
            "some of 'solutions' carry a label",
        ),
        (['{"task_id": "7", "solutions": [3]}'], 1, "'solutions[0]' must be a string, found int"),
        (['{"solutions": ["a"]}'], 1, "missing 'task_id'"),
        (['{"task_id": "7", "solutions": ["a"]}', "{oops"], 2, "not valid JSON"),
    ],
)
def test_bad_release_lines_are_refused_with_file_and_line(
    tmp_path: Path, problems: ProblemFile, lines: list[str], line: int, message: str
) -> None:
    path = tmp_path / "sol.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ProblemFileError, match=f"^{path}:{line}: ") as caught:
        attach_replay_files(problems, solutions=path)
    assert message in str(caught.value)


def test_samples_already_in_the_problem_file_are_not_replaced(tmp_path: Path) -> None:
    inline = read_problem_file(
        write_lines(tmp_path / "p.jsonl", {"task_id": "a", "question": "Q", "unit_tests": ["t"]})
    )
    tests = write_lines(tmp_path / "ut.jsonl", {"task_id": "a", "unit_tests": ["u"]})
    with pytest.raises(
        ProblemFileError, match=r"ut.jsonl:1: task 'a' already has 'unit_tests' in the problem file"
    ):
        attach_replay_files(inline, unit_tests=tests)


def test_empty_or_missing_release_file_is_refused(tmp_path: Path, problems: ProblemFile) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ProblemFileError, match="empty.jsonl: the file holds no generations"):
        attach_replay_files(problems, solutions=empty)
    with pytest.raises(ProblemFileError, match="nowhere.jsonl: no such file"):
        attach_replay_files(problems, unit_tests=tmp_path / "nowhere.jsonl")
