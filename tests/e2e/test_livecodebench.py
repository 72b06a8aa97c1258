"""`coderm eval livecodebench` with `class Solution` answers, as the policy writes them.

Three of CodeRM's LiveCodeBench problems (tests/data/input_livecodebench_*.jsonl: 3228, 3233, 3236)
with solutions and CodeRM-style unit tests written for this test, in CodeRM's release form and
labelled (tests/data/livecodebench_replay_{sol,ut}.jsonl). The solutions answer the policy prompt's
starter code (`class Solution:`), use `List` and `ascii_lowercase` unimported, one through a helper
class and one through a helper method; 3236 also has one answer in function form. The tests call
top-level functions, as the unit-test prompt's reference shows them.

Pass matrices (rows: solutions; columns: tests), with the conversion:

    3228  right PPP  wrong PFP        3233  right PPP  wrong FPF
    3236  right PP   wrong PF   function form PP

Without it, every `class Solution` answer fails every test (no function of that name): only
3236's function-form answer passes anything. The last test has a (fake) model write the same
answers after the real prompts, so they are extracted from completions before they are converted.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e


def eval_args(data_dir: Path) -> list[str]:
    return [
        "livecodebench",
        "--backend",
        "replay",
        "--replay-solutions",
        str(data_dir / "livecodebench_replay_sol.jsonl"),
        "--replay-tests",
        str(data_dir / "livecodebench_replay_ut.jsonl"),
    ]


@pytest.fixture
def env(embedded_env: dict[str, str], data_dir: Path) -> dict[str, str]:
    return embedded_env | {"CODERM_BENCHMARK_DIR": str(data_dir)}


def test_class_solution_answers_are_run_in_function_form(
    tmp_path: Path, env: dict[str, str], data_dir: Path, coderm_cli
) -> None:
    out = tmp_path / "eval.jsonl"
    result = coderm_cli(["eval", *eval_args(data_dir), "--json-out", str(out)], env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    job, *problems = [json.loads(line) for line in out.read_text().splitlines()]

    assert job["benchmark"] == "livecodebench" and job["problems"] == 3
    assert job["vanilla"] == 55.56  # (1/2 + 1/2 + 2/3) / 3, from the labels
    # The tests pass the right solutions and fail the wrong ones: every pick is right.
    assert job["best_of_n"] == job["oracle"] == 100.0
    # individual, pooled: TP 3+3+4, FP 2+1+1, TN 1+2+1, FN 0
    assert job["individual"] == {
        "acc": 77.78,  # 14 / 18
        "f1": 83.33,  # 20 / 24
        "far": 28.57,  # 4 / 14
        "frr": 0.0,
        "false_positive_rate": 50.0,  # 4 / 8
        "false_negative_rate": 0.0,
    }
    # combined: the most-passing solutions are exactly the right ones (TP 4, TN 3)
    assert job["combined"] == {
        "acc": 100.0,
        "f1": 100.0,
        "far": 0.0,
        "frr": 0.0,
        "false_positive_rate": 0.0,
        "false_negative_rate": 0.0,
    }
    assert {p["task_id"]: p["individual"] for p in problems} == {
        "3228": {"tp": 3, "fp": 2, "tn": 1, "fn": 0},
        "3233": {"tp": 3, "fp": 1, "tn": 2, "fn": 0},
        "3236": {"tp": 4, "fp": 1, "tn": 1, "fn": 0},
    }

    with sqlite3.connect(Path(env["CODERM_HOME"]) / "coderm.db") as db:
        rows = db.execute(
            'select p.task_id, s."index", s.code, s.extracted_code, e.outcomes from solutions s '
            "join problems p on p.id = s.problem_id join execution_results e on e.solution_id = s.id "
            'order by p.task_id, s."index"'
        ).fetchall()
    released = {
        json.loads(line)["task_id"]: [s["solution"] for s in json.loads(line)["solutions"]]
        for line in (data_dir / "livecodebench_replay_sol.jsonl").read_text().splitlines()
    }
    assert [(task, index, outcomes) for task, index, _, _, outcomes in rows] == [
        ("3228", 0, "PPP"),
        ("3228", 1, "PFP"),
        ("3233", 0, "PPP"),
        ("3233", 1, "FPF"),
        ("3236", 0, "PP"),
        ("3236", 1, "PF"),
        ("3236", 2, "PP"),
    ]
    for task, index, code, extracted, _ in rows:
        written = released[task][index]
        if written.startswith("def "):  # already in function form: run as written, stored once
            assert code == written and extracted is None
        else:  # both stored: the answer as written, and the program run
            assert (
                extracted == written
                and code.startswith("from string import *\n")
                and written.rstrip() in code
            )
            assert "return Solution()." in code


def test_run_shows_the_program_that_ran(
    tmp_path: Path, env: dict[str, str], data_dir: Path, coderm_cli
) -> None:
    out = tmp_path / "run.jsonl"
    result = coderm_cli(["run", *eval_args(data_dir), "--json-out", str(out)], env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    picks = {line["task_id"]: line for line in map(json.loads, out.read_text().splitlines())}
    assert {task: pick["pass_count"] for task, pick in picks.items()} == {"3228": 3, "3233": 3, "3236": 2}
    assert "def maximumSetSize(*args, **kwargs):" in picks["3228"]["selected_solution"]


def released(data_dir: Path, kind: str) -> dict[str, list[str]]:
    """task id -> the code of the release file's solutions (`sol`) or unit tests (`ut`)."""
    field = {"sol": "solutions", "ut": "unit_tests"}[kind]
    records = map(json.loads, (data_dir / f"livecodebench_replay_{kind}.jsonl").read_text().splitlines())
    return {r["task_id"]: [s["solution"] if isinstance(s, dict) else s for s in r[field]] for r in records}


def first(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    assert found is not None, pattern
    return found.group(1)


def test_a_model_s_class_solution_answers_through_sglang(
    tmp_path: Path, env: dict[str, str], data_dir: Path, coderm_cli
) -> None:
    """The same answers written by a (fake) policy model after the real LiveCodeBench prompts: the
    code block is extracted from the completion, then put in function form."""
    from fake_llm_server import FakeLLMServer

    answers, tests = released(data_dir, "sol"), released(data_dir, "ut")
    by_function = {first(r"def (\w+)\(", a[0]): task for task, a in answers.items()}

    def policy(prompt: str, k: int) -> str:
        """Sample 0 is the right class, sample 1 the wrong one, after the prompt's starter code."""
        method = first(r"class Solution:\n    def (\w+)\(self", prompt)
        return f"Here is my solution:\n```python\n{answers[by_function[method]][k % 2]}```\nIt runs in O(n)."

    def coderm(prompt: str, k: int) -> str:
        function = first(r"### code solution\ndef (\w+)\(", prompt)
        cases = tests[by_function[function]]
        return f"```python\n{cases[k % len(cases)]}```"

    out = tmp_path / "out.jsonl"
    with (
        FakeLLMServer("fake/Policy", policy) as policy_server,
        FakeLLMServer("fake/CodeRM", coderm) as coderm_server,
    ):
        env = env | {"CODERM_POLICY_URL": policy_server.url, "CODERM_CODERM_URL": coderm_server.url}
        args = ["run", "livecodebench", "--backend", "sglang", "-n", "2", "-m", "3", "--no-prune"]
        result = coderm_cli([*args, "--json-out", str(out)], env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    picks = {line["task_id"]: line for line in map(json.loads, out.read_text().splitlines())}
    # 3236's third test is its first again: counted once.
    assert {task: pick["pass_count"] for task, pick in picks.items()} == {"3228": 3, "3233": 3, "3236": 2}
    with sqlite3.connect(Path(env["CODERM_HOME"]) / "coderm.db") as db:
        rows = db.execute(
            'select p.task_id, s."index", s.raw, s.code, s.extracted_code, e.outcomes from solutions s '
            "join problems p on p.id = s.problem_id join execution_results e on e.solution_id = s.id "
            'order by p.task_id, s."index"'
        ).fetchall()
    assert [(task, index, outcomes) for task, index, _, _, _, outcomes in rows] == [
        ("3228", 0, "PPP"),
        ("3228", 1, "PFP"),
        ("3233", 0, "PPP"),
        ("3233", 1, "FPF"),
        ("3236", 0, "PPP"),
        ("3236", 1, "PFP"),
    ]
    for task, index, raw, code, extracted, _ in rows:
        assert raw.startswith("Here is my solution:") and extracted == answers[task][index].rstrip("\n")
        assert code.startswith("from string import *\n") and "return Solution()." in code
