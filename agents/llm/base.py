"""The interface every LLM backend implements (DESIGN §4)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from orchestrator.core.config import SamplingParams


@dataclass(frozen=True)
class Sample:
    """One completion, with what is needed to audit it.

    `is_code` marks samples that are already code (replayed generations), which skip the search for
    a fenced block but are checked like any other.
    """

    text: str
    finish_reason: str | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_s: float | None = None
    is_code: bool = False


class Backend(Protocol):
    """Samples `n` completions of one user prompt."""

    name: str
    model: str

    def sample(self, prompt: str, n: int, params: SamplingParams, seed: int) -> list[Sample]: ...
