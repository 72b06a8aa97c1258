"""The `openai` backend: any OpenAI-compatible server (SGLang, vLLM, ...).

`chat` format: `POST /v1/chat/completions` with the prompt as the one user message, so the server
applies the model's own chat template. Text formats (`llama3.1`, `llama3`, `raw`): `POST
/v1/completions` with the rendered text.

One sample per request (n = 1): OpenAI's `usage` counts tokens per request, so this is how each
sample gets its own token count; the requests of a task go out together, bounded by
`CODERM_LLM_MAX_IN_FLIGHT`, and the server's prefix cache shares the prompt between them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from agents.chat_format import render_chat
from agents.llm.base import Sample
from agents.llm.http import gather_or_cancel, run_sync
from agents.llm.servers import ServerBackend
from orchestrator.core.config import ChatFormat, SamplingParams
from orchestrator.core.errors import BackendError


def completion_request(
    model: str, prompt: str, chat_format: ChatFormat, params: SamplingParams
) -> tuple[str, dict[str, Any]]:
    """The path and body of a request for one sample."""
    body: dict[str, Any] = {
        "model": model,
        "n": 1,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_tokens": params.max_new_tokens,
    }
    if params.stop:
        body["stop"] = params.stop
    if chat_format == "chat":
        return "/v1/chat/completions", body | {"messages": [{"role": "user", "content": prompt}]}
    return "/v1/completions", body | {"prompt": render_chat(prompt, chat_format)}


def read_completion(body: Any) -> Sample:
    """The one sample of a (chat) completion answer, with its token counts from `usage`."""
    try:
        (choice,) = body["choices"]
        text = choice["message"]["content"] if "message" in choice else choice["text"]
        usage = body.get("usage") or {}
        return Sample(
            text=text or "",  # a chat answer may have no content at all
            finish_reason=choice.get("finish_reason"),
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise BackendError(f"expected one choice with its text, got: {str(body)[:200]}") from exc


class OpenAIBackend(ServerBackend):
    name = "openai"

    def sample(self, prompt: str, n: int, params: SamplingParams, seed: int) -> list[Sample]:
        """`n` samples of one prompt; the server samples, `seed` is not sent."""
        return run_sync(self._sample(prompt, n, params))

    async def _sample(self, prompt: str, n: int, params: SamplingParams) -> list[Sample]:
        client = await self.checked_client()
        path, body = completion_request(self.model, prompt, self.chat_format, params)

        async def one() -> Sample:
            sample, seconds = await client.request("POST", path, body, read=read_completion)
            return dataclasses.replace(sample, latency_s=seconds)

        return await gather_or_cancel([one() for _ in range(n)])
