"""The `sglang` backend: SGLang's native `POST /generate` (DESIGN §4).

Written against SGLang 0.5.23, whose own request types check every body built here
(tests/contract/test_sglang_contract.py): the JSON contract both its Python and its Rust HTTP server
apply (`sglang.api.v1.GenerateRequest`), `GenerateReqInput` and `SamplingParams.verify()`.

Request: `{"text": [prompt, ...], "sampling_params": {...} or [{...} per text]}`, with
`sampling_params` {"n", "temperature", "top_p", "max_new_tokens", "stop", "sampling_seed"}.

Answer: one object per sample, `{"text", "output_ids", "meta_info": {"prompt_tokens",
"completion_tokens", "finish_reason": {"type": "stop" | "length" | "abort", ...}, "e2e_latency",
"queue_time", ...}}`; a list, since we always send `text` as a list (a lone string with n = 1 would
come back as one object). `completion_tokens` counts every generated token, a stop string's too.

Order of the answer to several prompts with n > 1: prompt-major, object k*n + j is sample j of
the k-th prompt. `GenerateReqInput` first repeats the text list n times (sample-major), but the
tokenizer manager then takes the batch's prompts one by one and sends each one's n copies in turn
(`for i in range(batch_size): for _ in range(parallel_sample_num)`), and gathers the answers in
that order (`tokenizer_manager.py::_handle_batch_request`, sgl-project/sglang at 001067f).

Seeds: with `--enable-deterministic-inference` SGLang samples from the request's `sampling_seed`
(42 when none is sent), so samples that share a seed are the same sample. In the `repeat` layout
(the default) each sample is a text of its own with its own parameters and seed (the problem's seed
plus the sample's index). In the `n` layout the n copies of a text share its parameters, so no seed
is sent there.

A task's n samples are split over several requests of at most `CODERM_SGLANG_SAMPLES_PER_REQUEST`
each, all in flight together, so one large n neither waits on one request nor hides a failure of
one part; prompts of a batch (`sample_many`) share requests. SGLang refuses a whole request when one
of its prompts, with `max_new_tokens`, does not fit the context length (HTTP 400), so the prompts of
a batch are first counted (`POST /v1/tokenize`) against the served context length (`GET /v1/models`):
one that does not fit gets an error of its own and the others are sampled. A lone prompt is sent
as it is: the server's refusal then concerns it alone.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from agents.chat_format import render_chat, settle_chat_format
from agents.llm.base import Sample
from agents.llm.http import ServerClient, gather_or_cancel, run_sync
from agents.llm.servers import NOT_THERE, ServerBackend, served_context_length
from orchestrator.core.config import AgentRole, ChatFormat, SamplingParams, Settings
from orchestrator.core.errors import BackendError, TransientBackendError

logger = logging.getLogger(__name__)

NO_HIDDEN_STATES = (
    "/generate returned no hidden states: start the server with --return-hidden-states-mode full "
    "(SGLang 0.5; --enable-return-hidden-states before)"
)

PromptSamples = list[Sample] | BackendError
"""The samples of one prompt of a batch, or why it got none."""


@dataclass(frozen=True)
class GenerateRequest:
    """One /generate call: the prompt of each text, its `n`, and, per text, the index among its
    prompt's samples of the text's first sample."""

    prompts: tuple[int, ...]
    n: int
    first: tuple[int, ...]

    @property
    def owners(self) -> list[int]:
        """The prompt each answer object belongs to, in SGLang's (prompt-major) order."""
        return [prompt for prompt in self.prompts for _ in range(self.n)]


def plan_requests(
    counts: Sequence[int],
    samples_per_request: int,
    prompts_per_request: int,
    parallel_sampling: Literal["n", "repeat"] = "repeat",
) -> list[GenerateRequest]:
    """Requests that together ask for `counts[i]` samples of prompt i.

    `repeat`: the prompt copies themselves, `samples_per_request` texts a request, n=1. `n`: each
    prompt's samples go in rounds of at most `samples_per_request`; within a round, prompts that want
    the same n share requests, at most `prompts_per_request` of them, never one prompt twice.
    """
    if parallel_sampling == "repeat":
        copies = [(prompt, index) for prompt, count in enumerate(counts) for index in range(count)]
        return [
            GenerateRequest(
                tuple(p for p, _ in copies[start : start + samples_per_request]),
                1,
                tuple(i for _, i in copies[start : start + samples_per_request]),
            )
            for start in range(0, len(copies), samples_per_request)
        ]
    requests: list[GenerateRequest] = []
    planned = [0] * len(counts)
    while any(done < count for done, count in zip(planned, counts, strict=True)):
        by_size: dict[int, list[int]] = {}
        firsts = list(planned)
        for prompt, count in enumerate(counts):
            if planned[prompt] < count:
                size = min(count - planned[prompt], samples_per_request)
                by_size.setdefault(size, []).append(prompt)
                planned[prompt] += size
        for size, prompts in by_size.items():
            for start in range(0, len(prompts), prompts_per_request):
                chosen = tuple(prompts[start : start + prompts_per_request])
                requests.append(GenerateRequest(chosen, size, tuple(firsts[p] for p in chosen)))
    return requests


def sample_seed(seed: int, index: int) -> int:
    """The `sampling_seed` of a prompt's sample `index`; SGLang takes a signed 64-bit integer."""
    return (seed + index) % 2**63


def generate_payload(
    texts: Sequence[str], request: GenerateRequest, params: SamplingParams, seed: int
) -> dict[str, Any]:
    sampling: dict[str, Any] = {
        "n": request.n,
        "temperature": params.temperature,
        "top_p": params.top_p,
        "max_new_tokens": params.max_new_tokens,
    }
    if params.stop:
        sampling["stop"] = params.stop
    payload: dict[str, Any] = {"text": [texts[prompt] for prompt in request.prompts]}
    if request.n == 1:  # a sample per text: each gets its own seed
        payload["sampling_params"] = [
            sampling | {"sampling_seed": sample_seed(seed, index)} for index in request.first
        ]
    else:
        payload["sampling_params"] = sampling
    return payload


def features_payload(text: str) -> dict[str, Any]:
    """The request whose answer `read_prompt_features` reads."""
    return {
        "text": [text],
        # Two tokens, whatever the model would say first: the second one's vector tells the hidden
        # size where the prompt's vectors come flattened into one row (the Rust server).
        "sampling_params": {"n": 1, "temperature": 0.0, "max_new_tokens": 2, "ignore_eos": True},
        # The schema refuses "last", so every prompt token's vector comes back (about 80 MB of JSON
        # for an 8B model and 1k tokens); only the last one is kept.
        "return_hidden_states": True,
    }


def tokenize_payload(model: str, texts: Sequence[str]) -> dict[str, Any]:
    """The request that counts the tokens of `texts` as /generate will (BOS included)."""
    return {"model": model, "prompt": list(texts)}


def read_generate_answer(body: Any, request: GenerateRequest) -> list[Sample]:
    """The samples of one /generate answer, in SGLang's order (see `GenerateRequest.owners`)."""
    expected = len(request.prompts) * request.n
    if not isinstance(body, list) or len(body) != expected:
        found = f"{len(body)} objects" if isinstance(body, list) else type(body).__name__
        raise BackendError(f"/generate answered {found} for {expected} samples")
    return [_read_output(output) for output in body]


def read_prompt_features(body: Any) -> list[float]:
    """The hidden state of the prompt's last token, from the answer to `features_payload`.

    `meta_info.hidden_states` holds first the vectors of the prompt tokens the server computed (the
    last is the last prompt token's), then one vector per generated token. SGLang's Python server
    sends the prompt's vectors nested, one row each; its Rust server (`SGLANG_RUST_SERVER=1`), whose
    schema allows one row of numbers per entry, flattens them into one row, which is then cut into
    vectors of the length of a generated token's row.
    """
    try:
        output = body[0] if isinstance(body, list) else body
        hidden = output["meta_info"]["hidden_states"]
        prompt = hidden[0]
        if prompt and isinstance(prompt[0], list):
            return [float(x) for x in prompt[-1]]
        size = len(hidden[1])
    except (KeyError, IndexError, TypeError) as exc:
        raise BackendError(NO_HIDDEN_STATES) from exc
    if not size or not prompt or len(prompt) % size:
        raise BackendError(
            f"/generate returned a flat row of {len(prompt)} prompt hidden-state values, which is not "
            f"a whole number of vectors of {size} (a generated token's)"
        )
    return [float(x) for x in prompt[-size:]]


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
            latency_s=_seconds(meta.get("e2e_latency")),
            queue_s=_seconds(meta.get("queue_time")),  # only with the server's --enable-metrics
        )
    except (KeyError, TypeError, AttributeError) as exc:
        raise BackendError(
            f"/generate answered an object without text and meta_info: {str(output)[:200]}"
        ) from exc


def _seconds(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _token_counts(expected: int) -> Callable[[Any], list[int]]:
    def read(body: Any) -> list[int]:
        counts = body.get("count") if isinstance(body, dict) else None
        if not isinstance(counts, list) or len(counts) != expected:
            raise BackendError(f"/v1/tokenize answered without {expected} counts: {str(body)[:200]}")
        return [int(c) for c in counts]

    return read


class SGLangBackend(ServerBackend):
    """Samples from an SGLang server (or the SGLang router in front of several)."""

    name = "sglang"

    def __init__(
        self, role: AgentRole, url: str, model: str | None, chat_format: ChatFormat, settings: Settings
    ) -> None:
        super().__init__(role, url, model, chat_format, settings)
        self.chat_format_settled = False
        self.samples_per_request = settings.sglang_samples_per_request
        self.prompts_per_request = settings.sglang_prompts_per_request
        self.parallel_sampling = settings.sglang_parallel_sampling

    async def checked_client(self) -> ServerClient:
        """The checked client, and the chat template settled against the served model (once)."""
        client = await super().checked_client()
        if not self.chat_format_settled:
            self.chat_format, warning = settle_chat_format(self.chat_format, self.model)
            if warning is not None:
                logger.warning("%s server %s: %s", self.role, self.url, warning)
            self.chat_format_settled = True
        return client

    def sample(self, prompt: str, n: int, params: SamplingParams, seed: int) -> list[Sample]:
        """`n` samples of one prompt; sample j carries the seed `seed` + j where the layout lets each
        sample have its own (see the module's docstring)."""
        (samples,) = self.sample_many([prompt], n, params, seed)
        if isinstance(samples, BackendError):
            raise samples
        return samples

    def sample_many(
        self, prompts: Sequence[str], n: int, params: SamplingParams, seed: int
    ) -> list[PromptSamples]:
        """`n` samples of each prompt, requested all at once; a prompt too long for the served
        context gets its error instead."""
        return run_sync(self._sample_many(prompts, n, params, seed))

    def prompt_features(self, prompt: str) -> list[float]:
        """The final hidden state at the prompt's last token (server started with
        `--return-hidden-states-mode full`)."""
        return run_sync(self._prompt_features(prompt))

    async def _prompt_features(self, prompt: str) -> list[float]:
        client = await self.checked_client()
        payload = features_payload(render_chat(prompt, self.chat_format))
        features, _ = await client.request("POST", "/generate", payload, read=read_prompt_features)
        return features

    async def _sample_many(
        self, prompts: Sequence[str], n: int, params: SamplingParams, seed: int
    ) -> list[PromptSamples]:
        client = await self.checked_client()
        texts = [render_chat(prompt, self.chat_format) for prompt in prompts]
        refused = await self._unfit_prompts(client, texts, params) if len(texts) > 1 else {}
        plan = plan_requests(
            [0 if i in refused else n for i in range(len(texts))],
            self.samples_per_request,
            self.prompts_per_request,
            self.parallel_sampling,
        )

        async def generate(request: GenerateRequest) -> list[Sample]:
            samples, seconds = await client.request(
                "POST",
                "/generate",
                generate_payload(texts, request, params, seed),
                read=lambda body: read_generate_answer(body, request),
            )
            # Where the server did not time the sample, the request's time stands for it.
            return [
                s if s.latency_s is not None else dataclasses.replace(s, latency_s=seconds) for s in samples
            ]

        answers = await gather_or_cancel([generate(request) for request in plan])
        samples: list[list[Sample]] = [[] for _ in prompts]
        for request, answer in zip(plan, answers, strict=True):
            for owner, sample in zip(request.owners, answer, strict=True):
                samples[owner].append(sample)
        return [refused.get(i, found) for i, found in enumerate(samples)]

    async def _unfit_prompts(
        self, client: ServerClient, texts: Sequence[str], params: SamplingParams
    ) -> dict[int, BackendError]:
        """The prompts that, with `max_new_tokens`, exceed the served context length (SGLang's own
        rule), each with its error; none when the server does not say its length or cannot count."""
        limit = await client.once(("context length",), lambda: served_context_length(client))
        if limit is None:
            return {}
        try:
            counts, _ = await client.request(
                "POST", "/v1/tokenize", tokenize_payload(self.model, texts), read=_token_counts(len(texts))
            )
        except BackendError as exc:
            if exc.status_code in NOT_THERE:
                return {}
            raise
        return {
            i: BackendError(
                f"the prompt is {count} tokens and asks for up to {params.max_new_tokens} more, beyond "
                f"the {limit}-token context of {self.model} at {self.url}: shorten the problem or lower "
                "--max-new-tokens"
            )
            for i, count in enumerate(counts)
            if count + params.max_new_tokens > limit
        }
