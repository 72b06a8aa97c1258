"""The interface every LLM backend implements (DESIGN §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestrator.core.config import SamplingParams


@dataclass(frozen=True)
class Sample:
    """One completion, with what is needed to audit it.

    `latency_s` is the time the sample took, queued and generating: the server's own figure where
    it reports one (SGLang's `e2e_latency`), else the request's as the client measured it.
    `queue_s` is the part spent queued at the server, where the server reports it. `is_code` marks
    samples that are already code (replayed generations), which skip the search for a fenced block
    but are checked like any other.
    """

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    queue_s: float | None = None
    is_code: bool = False


class Backend(Protocol):
    """Samples `n` completions of one user prompt."""

    name: str
    model: str

    def sample(self, prompt: str, n: int, params: SamplingParams, seed: int) -> list[Sample]: ...
