"""`coderm worker` for the policy or CodeRM queue checks the agent's model server before it starts."""

from __future__ import annotations

import socket

import pytest
from fake_llm_server import FakeLLMServer

pytestmark = pytest.mark.e2e

# Never contacted: the server check refuses before the worker connects to its broker.
UNUSED_BROKER = {
    "CODERM_BROKER_URL": "amqp://guest:guest@127.0.0.1:1/none",
    "CODERM_RESULT_BACKEND": "redis://127.0.0.1:1/0",
}


def test_server_with_another_model_stops_the_worker_with_one_line(
    embedded_env: dict[str, str], coderm_cli
) -> None:
    with FakeLLMServer("meta-llama/Meta-Llama-3-8B-Instruct") as server:
        env = embedded_env | UNUSED_BROKER | {"CODERM_CODERM_URL": server.url}
        result = coderm_cli(
            ["worker", "-Q", "coderm", "--coderm-model", "KAKA22/CodeRM-8B"], env=env, timeout=60
        )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: the coderm server {server.url} serves 'meta-llama/Meta-Llama-3-8B-Instruct', not the "
        "configured 'KAKA22/CodeRM-8B'; point CODERM_CODERM_URL at the right server or fix --coderm-model"
    ]


def test_unreachable_server_stops_the_worker_with_one_line(embedded_env: dict[str, str], coderm_cli) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{free.getsockname()[1]}"
    env = embedded_env | UNUSED_BROKER | {"CODERM_POLICY_URL": url, "CODERM_LLM_RETRIES": "0"}
    result = coderm_cli(["worker", "-Q", "orchestrator,policy"], env=env, timeout=60)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(
        f"error: the policy server {url} (CODERM_POLICY_URL) is not usable: GET {url}/health: ConnectError"
    )


@pytest.mark.integration
def test_worker_starts_once_its_server_serves_the_model(service_env: dict[str, str], start_worker) -> None:
    with FakeLLMServer("/models/Meta-Llama-3-8B-Instruct") as server:
        env = service_env | {
            "CODERM_POLICY_URL": server.url,
            "CODERM_POLICY_MODEL": "meta-llama/Meta-Llama-3-8B-Instruct",
        }
        worker = start_worker(env, "policy")
        checked = [r.path for r in server.requests_to("/health") + server.requests_to("/model_info")]
    assert f"policy server {server.url} serves /models/Meta-Llama-3-8B-Instruct" in worker.log_text()
    assert checked == ["/health", "/model_info"]
