"""The `sglang` backend: SGLang's native `POST /generate` (DESIGN §4).

Request (`io_struct.py::GenerateReqInput`, docs `basic_usage/sampling_params.md`):

    {"text": [prompt, ...], "sampling_params": {"n", "temperature", "top_p", "max_new_tokens", "stop"}}

Answer: one object per sample, `{"text", "output_ids", "meta_info": {"prompt_tokens",
"completion_tokens", "finish_reason": {"type": "stop" | "length" | "abort", ...}, ...}}`; a list,
since we always send `text` as a list (a lone string with n = 1 would come back as one object).

Order of the answer to several prompts with n > 1: prompt-major, object k*n + j is sample j of
the k-th prompt. `GenerateReqInput` first repeats the text list n times (sample-major), but the
tokenizer manager then takes the batch's prompts one by one and sends each one's n copies in turn
(`for i in range(batch_size): for _ in range(parallel_sample_num)`), and gathers the answers in
that order (`tokenizer_manager.py::_handle_batch_request`, sgl-project/sglang at 001067f).

A task's n samples are split over several requests of at most `CODERM_SGLANG_SAMPLES_PER_REQUEST`
each, all in flight together, so one large n neither waits on one request nor hides a failure of
one part; prompts of a batch (`sample_many`) that want the same n share requests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agents.chat_format import render_chat
from agents.llm.base import Sample
from agents.llm.http import gather_or_cancel, run_sync
from agents.llm.servers import ServerBackend
from orchestrator.core.config import AgentRole, ChatFormat, SamplingParams, Settings
from orchestrator.core.errors import BackendError, TransientBackendError


@dataclass(frozen=True)
class GenerateRequest:
    """One /generate call: the prompts it sends (indices, one per text) and its `n`."""

    prompts: tuple[int, ...]
    n: int

    @property
    def owners(self) -> list[int]:
        """The prompt each answer object belongs to, in SGLang's (prompt-major) order."""
        return [prompt for prompt in self.prompts for _ in range(self.n)]


def plan_requests(
    counts: Sequence[int],
    samples_per_request: int,
    prompts_per_request: int,
    parallel_sampling: Literal["n", "repeat"] = "n",
) -> list[GenerateRequest]:
    """Requests that together ask for `counts[i]` samples of prompt i.

    `n`: each prompt's samples go in rounds of at most `samples_per_request`; within a round,
    prompts that want the same n share requests, at most `prompts_per_request` of them, never one
    prompt twice. `repeat`: the prompt copies themselves, `samples_per_request` texts a request, n=1.
    """
    if parallel_sampling == "repeat":
        copies = [prompt for prompt, count in enumerate(counts) for _ in range(count)]
        return [
            GenerateRequest(tuple(copies[start : start + samples_per_request]), 1)
            for start in range(0, len(copies), samples_per_request)
        ]
    requests: list[GenerateRequest] = []
    remaining = list(counts)
    while any(remaining):
        by_size: dict[int, list[int]] = {}
        for prompt, left in enumerate(remaining):
            if left > 0:
                size = min(left, samples_per_request)
                by_size.setdefault(size, []).append(prompt)
                remaining[prompt] -= size
        for size, prompts in by_size.items():
            for start in range(0, len(prompts), prompts_per_request):
                requests.append(GenerateRequest(tuple(prompts[start : start + prompts_per_request]), size))
    return requests


def generate_payload(
    texts: Sequence[str], request: GenerateRequest, params: SamplingParams
) -> dict[str, Any]:
    sampling: dict[str, Any] = {
        "n": request.n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_new_tokens": params.max_new_tokens,
    }
    if params.stop:
        sampling["stop"] = params.stop
    return {"text": [texts[prompt] for prompt in request.prompts], "sampling_params": sampling}


def read_generate_answer(body: Any, request: GenerateRequest) -> list[Sample]:
    """The samples of one /generate answer, in SGLang's order (see `GenerateRequest.owners`)."""
    expected = len(request.prompts) * request.n
    if not isinstance(body, list) or len(body) != expected:
        found = f"{len(body)} objects" if isinstance(body, list) else type(body).__name__
        raise BackendError(f"/generate answered {found} for {expected} samples")
    return [_read_output(output) for output in body]


def read_prompt_features(body: Any) -> list[float]:
    """The last prompt row of `meta_info.hidden_states`, whose first element holds one row per prompt
    token (later elements, one vector each, belong to generated tokens)."""
    try:
        output = body[0] if isinstance(body, list) else body
        rows = output["meta_info"]["hidden_states"][0]
        last = rows[-1] if rows and isinstance(rows[0], list) else rows
        return [float(x) for x in last]
    except (KeyError, IndexError, TypeError) as exc:
        raise BackendError(
            "/generate returned no hidden states: start the server with --enable-return-hidden-states"
        ) from exc


def _read_output(output: Any) -> Sample:
    try:
        meta = output["meta_info"]
        text = output["text"]
        reason = meta.get("finish_reason")
        kind = reason.get("type") if isinstance(reason, dict) else reason
        if kind == "abort":
            # The server gave up on the request (overload, a pause for a weight update): ask again.
            raise TransientBackendError(f"/generate aborted a sample: {reason.get('message', reason)}")
        return Sample(
            text=text,
            finish_reason=kind,
            prompt_tokens=meta.get("prompt_tokens"),
            completion_tokens=meta.get("completion_tokens"),
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise BackendError(
            f"/generate answered an object without text and meta_info: {str(output)[:200]}"
        ) from exc


class SGLangBackend(ServerBackend):
    """Samples from an SGLang server (or the SGLang router in front of several)."""

    name = "sglang"

    def __init__(
        self, role: AgentRole, url: str, model: str | None, chat_format: ChatFormat, settings: Settings
    ) -> None:
        super().__init__(role, url, model, chat_format, settings)
        self.samples_per_request = settings.sglang_samples_per_request
        self.prompts_per_request = settings.sglang_prompts_per_request
        self.parallel_sampling = settings.sglang_parallel_sampling

    def sample(self, prompt: str, n: int, params: SamplingParams, seed: int) -> list[Sample]:
        """`n` samples of one prompt. SGLang samples server-side; `seed` is not sent."""
        return self.sample_many([prompt], n, params)[0]

    def sample_many(self, prompts: Sequence[str], n: int, params: SamplingParams) -> list[list[Sample]]:
        """`n` samples of each prompt, requested all at once."""
        return run_sync(self._sample_many(prompts, n, params))

    def prompt_features(self, prompt: str) -> list[float]:
        """The final hidden state at the prompt's last token (server started with
        `--enable-return-hidden-states`)."""
        return run_sync(self._prompt_features(prompt))

    async def _prompt_features(self, prompt: str) -> list[float]:
        client = await self.checked_client()
        payload = {
            "text": [render_chat(prompt, self.chat_format)],
            "sampling_params": {"n": 1, "temperature": 0.0, "max_new_tokens": 1},
            "return_hidden_states": True,
        }
        features, _ = await client.request("POST", "/generate", payload, read=read_prompt_features)
        return features

    async def _sample_many(
        self, prompts: Sequence[str], n: int, params: SamplingParams
    ) -> list[list[Sample]]:
        client = await self.checked_client()
        texts = [render_chat(prompt, self.chat_format) for prompt in prompts]
        plan = plan_requests(
            [n] * len(prompts), self.samples_per_request, self.prompts_per_request, self.parallel_sampling
        )

        async def generate(request: GenerateRequest) -> list[Sample]:
            samples, seconds = await client.request(
                "POST",
                "/generate",
                generate_payload(texts, request, params),
                read=lambda body: read_generate_answer(body, request),
            )
            return [dataclasses.replace(sample, latency_s=seconds) for sample in samples]

        answers = await gather_or_cancel([generate(request) for request in plan])
        samples: list[list[Sample]] = [[] for _ in prompts]
        for request, answer in zip(plan, answers, strict=True):
            for owner, sample in zip(request.owners, answer, strict=True):
                samples[owner].append(sample)
        return samples
