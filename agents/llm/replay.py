"""The `replay` backend: samples that already exist, read from the problem file.

Users re-run execution, voting and metrics on generations they already have, without a model.
"""

from __future__ import annotations

from agents.llm.base import Sample
from orchestrator.core.config import SamplingParams


class ReplayBackend:
    name = "replay"

    def __init__(self, samples: list[str], model: str = "replay") -> None:
        self.samples = samples
        self.model = model

    def sample(self, prompt: str, n: int, params: SamplingParams, seed: int) -> list[Sample]:
        """The first `n` stored samples (all of them, when fewer are stored)."""
        return [Sample(text=text, finish_reason="replay", is_code=True) for text in self.samples[:n]]
