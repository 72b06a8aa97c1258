"""The openai backend against a server that speaks the OpenAI-compatible API (SGLang's or vLLM's).

Given a fake server, when the backend samples, expect one request per sample on the endpoint the
chat format calls for, each sample with its own token counts, and the served model checked.
"""

from __future__ import annotations

import pytest
from fake_llm_server import FakeLLMServer, Fault

from agents.llm.openai import OpenAIBackend
from orchestrator.core.config import ChatFormat, SamplingParams, Settings
from orchestrator.core.errors import BackendError, ConfigurationError

PARAMS = SamplingParams(max_new_tokens=64, temperature=0.5, top_p=0.9)


def backend(url: str, chat_format: ChatFormat, model: str | None = None) -> OpenAIBackend:
    settings = Settings(coderm_url=url, llm_backoff_s=0.01, llm_retries=2)  # type: ignore[call-arg]
    return OpenAIBackend("coderm", url, model, chat_format, settings)


def test_chat_format_sends_the_prompt_as_a_user_message_one_sample_per_request() -> None:
    with FakeLLMServer() as server:
        samples = backend(server.url, "chat").sample("  Write tests.\n", 3, PARAMS, seed=0)
        requests = server.requests_to("/v1/chat/completions")
    assert len(samples) == 3 and len(requests) == 3
    for request in requests:
        assert request.body == {
            "model": "fake-org/Fake-Coder-8B",
            "n": 1,
            "temperature": 0.5,
            "top_p": 0.9,
            "max_tokens": 64,
            "messages": [{"role": "user", "content": "  Write tests.\n"}],
        }
    assert sorted(s.text for s in samples) == [f"sample {k} of a fake model" for k in range(3)]
    for s in samples:
        # usage of a one-sample request is that sample's own count: 6 words + end of turn.
        assert (
            s.finish_reason == "stop" and s.completion_tokens == 7 and s.prompt_tokens and s.prompt_tokens > 3
        )
        assert s.latency_s is not None and s.latency_s > 0


def test_text_format_sends_the_rendered_template_to_completions() -> None:
    with FakeLLMServer() as server:
        (sample,) = backend(server.url, "llama3").sample(
            "Write tests.", 1, SamplingParams(max_new_tokens=2), seed=0
        )
        (request,) = server.requests_to("/v1/completions")
    assert request.body["prompt"] == (
        "<|start_header_id|>user<|end_header_id|>\n\nWrite tests.<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    assert (sample.text, sample.finish_reason, sample.completion_tokens) == ("sample 0", "length", 2)


def test_server_without_sglang_endpoints_is_checked_through_v1_models() -> None:
    with FakeLLMServer(native=False) as server:
        chosen = backend(server.url, "chat", model="org/Fake-Coder-8B")
        chosen.sample("Write tests.", 1, PARAMS, seed=0)
        listed = len(server.requests_to("/v1/models"))
    assert chosen.model == "fake-org/Fake-Coder-8B" and listed == 1


def test_server_with_another_model_is_refused() -> None:
    refused = "coderm server .* serves 'fake-org/Fake-Coder-8B', not the configured 'KAKA22/CodeRM-8B'"
    with FakeLLMServer(native=False) as server, pytest.raises(ConfigurationError, match=refused):
        backend(server.url, "chat", model="KAKA22/CodeRM-8B").sample("Write tests.", 1, PARAMS, seed=0)


def test_not_found_is_not_retried_and_server_errors_are() -> None:
    with FakeLLMServer() as server:
        server.fail_next(Fault("status", status=502, path="/v1/chat/completions"))
        assert len(backend(server.url, "chat").sample("Write tests.", 1, PARAMS, seed=0)) == 1
        server.fail_next(Fault("status", status=404, message="no such route", path="/v1/chat/completions"))
        with pytest.raises(BackendError, match="HTTP 404: no such route"):
            backend(server.url, "chat").sample("Write tests.", 1, PARAMS, seed=0)
        attempts = len(server.requests_to("/v1/chat/completions"))
    assert attempts == 3  # 502 then the retry, then the 404 once
