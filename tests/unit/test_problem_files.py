"""Problem files: each form is recognised, and every bad input names the file and line."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from agents.prompts import CODERM_TEMPLATE, POLICY_TEMPLATE
from orchestrator.core.errors import ProblemFileError
from orchestrator.inputs.problem_files import read_problem_file


def write_lines(path: Path, *records: object) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


def test_coderm_benchmark_pair_is_joined_by_task_id(data_dir: Path) -> None:
    problems = read_problem_file(data_dir / "input_humaneval+_sol.jsonl")
    assert problems.forms == {"coderm-prompts"}
    first = problems.problems[0]
    assert first.task_id == "HumanEval/0"
    assert first.policy_prompt is not None and first.policy_prompt.startswith("Please provide")
    assert first.coderm_prompt is not None and first.coderm_prompt.startswith("Below is a question")
    # The question and reference solution are recovered from the unit-test prompt.
    assert first.question.startswith("Write a function named `has_close_elements`")
    assert first.reference_code is not None and "def has_close_elements" in first.reference_code
    assert CODERM_TEMPLATE.format(question=first.question, code=first.reference_code) == first.coderm_prompt


def test_the_ut_file_finds_its_sol_twin(data_dir: Path) -> None:
    from_ut = read_problem_file(data_dir / "input_mbpp+_ut.jsonl").problems
    from_sol = read_problem_file(data_dir / "input_mbpp+_sol.jsonl").problems
    assert from_ut == from_sol


def test_livecodebench_task_ids_are_numbers_and_become_strings(data_dir: Path) -> None:
    problems = read_problem_file(data_dir / "input_livecodebench_sol.jsonl").problems
    assert all(isinstance(p.task_id, str) for p in problems)
    assert problems[0].policy_prompt is not None and "### Format" in problems[0].policy_prompt


def test_a_prompt_file_without_twin_is_accepted_with_a_note(tmp_path: Path, data_dir: Path) -> None:
    lonely = tmp_path / "input_x_sol.jsonl"
    lonely.write_text((data_dir / "input_humaneval+_sol.jsonl").read_text())
    problems = read_problem_file(lonely)
    assert problems.problems[0].coderm_prompt is None
    assert problems.problems[0].reference_code is None
    assert problems.notes and "twin" in problems.notes[0]


def test_humaneval_form_carries_ground_truth(tmp_path: Path) -> None:
    record = {
        "task_id": "HumanEval/53",
        "prompt": 'def add(x, y):\n    """Add."""\n',
        "entry_point": "add",
        "canonical_solution": "    return x + y\n",
        "test": "def check(candidate):\n    assert candidate(1, 2) == 3\n",
    }
    spec = read_problem_file(write_lines(tmp_path / "he.jsonl", record)).problems[0]
    assert spec.reference_code == record["prompt"] + record["canonical_solution"]
    assert spec.ground_truth is not None and spec.ground_truth.rstrip().endswith("check(add)")
    assert spec.entry_point == "add"
    assert POLICY_TEMPLATE.format(question=spec.question).endswith(
        "```python\n" + record["prompt"] + "\n```\n"
    )


def test_gzipped_humaneval_file_reads(tmp_path: Path) -> None:
    record = {"task_id": "t", "prompt": "p", "entry_point": "f", "canonical_solution": "c", "test": "t"}
    path = tmp_path / "problems.jsonl.gz"
    with gzip.open(path, "wt") as stream:
        stream.write(json.dumps(record) + "\n")
    assert read_problem_file(path).problems[0].task_id == "t"


def test_plain_and_replay_forms(tmp_path: Path) -> None:
    path = write_lines(
        tmp_path / "p.jsonl",
        {"task_id": "a", "question": "Add two numbers."},
        "",
        {
            "task_id": "b",
            "question": "Q",
            "reference_code": "def f(): pass",
            "solutions": ["x = 1"],
            "unit_tests": ["import unittest"],
        },
        {"task_id": "c", "question": "Q", "solutions": [{"solution": "y = 2", "plus_status": "pass"}]},
    )
    problems = read_problem_file(path)
    assert [p.task_id for p in problems.problems] == ["a", "b", "c"]
    assert problems.lines == [1, 3, 4]
    assert problems.forms == {"plain", "plain+replay"}
    assert problems.problems[1].solutions == ["x = 1"]
    assert problems.problems[2].solutions == ["y = 2"]
    assert problems.problems[0].solutions is None


@pytest.mark.parametrize(
    ("lines", "line", "message"),
    [
        (['{"task_id": "a", "question": "q"}', "{not json"], 2, "not valid JSON"),
        (['["a", "list"]'], 1, "expected a JSON object"),
        (['{"question": "q"}'], 1, "missing 'task_id'"),
        (
            ['{"task_id": "a", "question": "q"}', '{"task_id": "a", "question": "r"}'],
            2,
            "already appears on line 1",
        ),
        (['{"task_id": "a", "text": "q"}'], 1, "unknown problem form"),
        (['{"task_id": "a", "question": ""}'], 1, "'question'"),
        (['{"task_id": "a", "question": "q", "solutions": "x"}'], 1, "'solutions' must be a list"),
        (['{"task_id": "a", "question": "q", "solutions": [1]}'], 1, "'solutions[0]' must be a string"),
        (['{"task_id": "a", "question": "q", "unit_test": ["x"]}'], 1, "did you mean 'unit_tests'"),
        (
            [
                '{"task_id": "a", "messages": [{"role": "user", "content": "x"}, {"role": "user", "content": "y"}]}'
            ],
            1,
            "exactly one message",
        ),
        (
            [
                '{"task_id": "a", "prompt": "p", "entry_point": "not a name", "canonical_solution": "", "test": ""}'
            ],
            1,
            "not a Python name",
        ),
    ],
)
def test_bad_lines_are_reported_with_file_and_line(
    tmp_path: Path, lines: list[str], line: int, message: str
) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ProblemFileError) as caught:
        read_problem_file(path)
    assert caught.value.line == line
    assert message in caught.value.message
    assert str(caught.value).startswith(f"{path}:{line}: ")


def test_empty_missing_binary_and_oversized_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n\n")
    with pytest.raises(ProblemFileError, match="holds no problems"):
        read_problem_file(empty)
    with pytest.raises(ProblemFileError, match="no such file"):
        read_problem_file(tmp_path / "absent.jsonl")
    latin1 = tmp_path / "latin1.jsonl"
    latin1.write_bytes('{"task_id": "a", "question": "caf\u00e9"}\n'.encode("latin-1"))
    with pytest.raises(ProblemFileError, match="not UTF-8") as caught:
        read_problem_file(latin1)
    assert caught.value.line == 1
    huge = write_lines(tmp_path / "huge.jsonl", {"task_id": "a", "question": "x" * 1_000_001})
    with pytest.raises(ProblemFileError, match="limit is 1,000,000"):
        read_problem_file(huge)


def test_twin_missing_a_task_is_an_error(tmp_path: Path, data_dir: Path) -> None:
    (tmp_path / "input_x_sol.jsonl").write_text((data_dir / "input_humaneval+_sol.jsonl").read_text())
    ut_lines = (data_dir / "input_humaneval+_ut.jsonl").read_text().splitlines()[:2]
    (tmp_path / "input_x_ut.jsonl").write_text("\n".join(ut_lines) + "\n")
    with pytest.raises(ProblemFileError, match="no entry in the twin file") as caught:
        read_problem_file(tmp_path / "input_x_sol.jsonl")
    assert caught.value.line == 3
