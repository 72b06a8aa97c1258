"""`coderm run --backend sglang` end to end, against fake SGLang servers (one per agent).

Given a policy server and a CodeRM server that speak SGLang's /generate, when a job runs embedded,
expect the samples stored with the token counts and finish reasons the servers reported, the prompts
sent in the Llama template without BOS, and the right solution selected.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from fake_llm_server import BOS, FakeLLMServer, count_tokens

pytestmark = pytest.mark.e2e

QUESTION = "Write a function add(a, b) that returns the sum of a and b."
REFERENCE = "def add(a, b):\n    return a + b\n"
UNIT_TEST = (
    "Here are the tests:\n```python\nimport unittest\nfrom solution import add\n\n"
    "class TestAdd(unittest.TestCase):\n    # small numbers\n    def test_small(self):\n"
    "        self.assertEqual(add({k}, 3), {k} + 3)\n\nif __name__ == '__main__':\n    unittest.main()\n```\n"
)


def policy(prompt: str, k: int) -> str:
    """Even samples are right, odd ones subtract."""
    return f"```python\ndef add(a, b):\n    return a {'+' if k % 2 == 0 else '-'} b\n```"


def coderm(prompt: str, k: int) -> str:
    """Sample 1 rambles past the token limit and never closes its code block."""
    return UNIT_TEST.format(k=k) if k != 1 else "```python\nimport unittest\n" + "# more\n" * 100


def test_sglang_run_stores_what_the_servers_reported(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    problems = tmp_path / "add.jsonl"
    problems.write_text(
        json.dumps({"task_id": "add/0", "question": QUESTION, "reference_code": REFERENCE}) + "\n"
    )
    out = tmp_path / "out.jsonl"
    with (
        FakeLLMServer("fake-org/Policy-8B", policy, metrics=True) as policy_server,
        FakeLLMServer("/models/CodeRM-8B", coderm) as coderm_server,
    ):
        env = embedded_env | {"CODERM_POLICY_URL": policy_server.url, "CODERM_CODERM_URL": coderm_server.url}
        args = ["run", str(problems), "--backend", "sglang", "--coderm-model", "KAKA22/CodeRM-8B"]
        args += ["-n", "4", "-m", "3", "--max-new-tokens", "100", "--json-out", str(out)]
        result = coderm_cli(args, env=env, timeout=300)
        policy_texts = [t for r in policy_server.requests_to("/generate") for t in r.body["text"]]
        coderm_texts = [t for r in coderm_server.requests_to("/generate") for t in r.body["text"]]
    assert result.returncode == 0, result.stderr

    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line["status"] == "completed"
    assert "a + b" in line["selected_solution"] and line["pass_count"] == 2 and line["tests_used"] == 2

    # One prompt each, sent in the Llama-3.1 template as text, without a BOS of ours.
    assert len(set(policy_texts)) == 1 and len(set(coderm_texts)) == 1
    for text in (policy_texts[0], coderm_texts[0]):
        assert text.startswith("<|start_header_id|>system<|end_header_id|>") and BOS not in text
    assert QUESTION in policy_texts[0] and REFERENCE.strip() in coderm_texts[0]

    with sqlite3.connect(Path(embedded_env["CODERM_HOME"]) / "coderm.db") as db:
        columns = '"index", backend, model, prompt_tokens, completion_tokens, finish_reason, latency_s, valid, invalid_reason, queue_s'
        solutions = db.execute(f'select {columns} from solutions order by "index"').fetchall()
        tests = db.execute(f'select {columns} from unit_tests order by "index"').fetchall()
    assert len(solutions) == 4 and len(tests) == 3
    for (
        index,
        backend,
        model,
        prompt_tokens,
        completion_tokens,
        finish,
        latency,
        valid,
        _,
        queued,
    ) in solutions:
        assert (backend, model, valid, finish) == ("sglang", "fake-org/Policy-8B", True, "stop")
        assert prompt_tokens == 1 + count_tokens(policy_texts[0])  # as the server counted, BOS included
        assert completion_tokens == count_tokens(policy(policy_texts[0], index)) + 1  # + end of turn
        assert latency >= queued >= 0  # the server's figures: queued (--enable-metrics) and in all
    assert {t[9] for t in tests} == {None}  # a server without --enable-metrics reports no queue time
    stored = [(t[5], t[4], t[7], t[8]) for t in tests]
    # The served model's own name is stored: /models/CodeRM-8B is KAKA22/CodeRM-8B under another path.
    assert {(t[1], t[2]) for t in tests} == {("sglang", "/models/CodeRM-8B")}
    assert stored == [
        ("stop", count_tokens(UNIT_TEST.format(k=0)) + 1, True, None),
        ("length", 100, False, "no code block"),
        ("stop", count_tokens(UNIT_TEST.format(k=2)) + 1, True, None),
    ]


@pytest.mark.parametrize("command", ["run", "eval"])
def test_run_whose_problems_fail_on_a_misconfigured_server_exits_1_after_its_results(
    command: str, tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    problems = tmp_path / "add.jsonl"
    rows = [
        {"task_id": f"add/{k}", "question": QUESTION, "reference_code": REFERENCE, "ground_truth": REFERENCE}
        for k in range(2)
    ]
    problems.write_text("".join(json.dumps(row) + "\n" for row in rows))
    out = tmp_path / "out.jsonl"
    with (
        FakeLLMServer("meta-llama/Llama-3-8B", policy) as policy_server,
        FakeLLMServer("/models/CodeRM-8B", coderm) as coderm_server,
    ):
        env = embedded_env | {"CODERM_POLICY_URL": policy_server.url, "CODERM_CODERM_URL": coderm_server.url}
        args = [command, str(problems), "--backend", "sglang", "--policy-model", "fake-org/Policy-8B"]
        args += ["-n", "2", "-m", "2", "--max-new-tokens", "100", "--json-out", str(out)]
        result = coderm_cli(args, env=env, timeout=300)
    assert result.returncode == 1, result.stderr
    # The results came first: run's lines; eval has no scored problem to write, and says so.
    assert out.exists() if command == "run" else "nothing to score" in result.stderr
    (summary,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert summary.startswith("error: 2 of 2 problems failed: add/0, add/1: ")
    assert "serves 'meta-llama/Llama-3-8B', not the configured 'fake-org/Policy-8B'" in summary


def test_stop_at_the_closing_fence_keeps_the_code_block(
    tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    problems = tmp_path / "add.jsonl"
    problems.write_text(
        json.dumps({"task_id": "add/0", "question": QUESTION, "reference_code": REFERENCE}) + "\n"
    )
    with (
        FakeLLMServer("fake-org/Policy-8B", policy) as policy_server,
        FakeLLMServer("/models/CodeRM-8B", coderm) as coderm_server,
    ):
        env = embedded_env | {"CODERM_POLICY_URL": policy_server.url, "CODERM_CODERM_URL": coderm_server.url}
        args = ["run", str(problems), "--backend", "sglang", "-n", "2", "-m", "3"]
        result = coderm_cli([*args, "--max-new-tokens", "100", "--stop", "\n```\n"], env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(Path(embedded_env["CODERM_HOME"]) / "coderm.db") as db:
        tests = db.execute('select raw, finish_reason, valid from unit_tests order by "index"').fetchall()
    # The server cut "\n```\n" from the tests; what the model wrote is stored and its block found.
    assert [(raw, finish, valid) for raw, finish, valid in tests if raw.startswith("Here")] == [
        (UNIT_TEST.format(k=k), "stop", True) for k in (0, 2)
    ]
