"""Problem features for the difficulty probe: the policy model's hidden state of the prompt.

Which hidden state: the model's final one (after its last norm, what the language-model head
reads) at the last token of the prompt, rendered with the agent's chat format and ending in the
assistant header, so it is the state from which the first token of a solution is sampled. The
local backend reads it from transformers' `output_hidden_states`; SGLang returns it with
`return_hidden_states` when the server runs with `--return-hidden-states-mode full` (SGLang 0.5;
`--enable-return-hidden-states` before).

A feature vector is stored with its problem as float32 bytes, and with a `source` naming model,
chat format and position, so a probe is only ever applied to the features it was trained on.
"""

from __future__ import annotations

from typing import Protocol

import numpy as np

from agents.llm import backend_for
from orchestrator.core.config import DEFAULT_LOCAL_MODEL, AgentConfig, ChatFormat, JobConfig, Settings
from orchestrator.core.errors import BackendError

POSITION = "final hidden state at the last prompt token"


class FeatureBackend(Protocol):
    name: str
    model: str
    chat_format: ChatFormat

    def prompt_features(self, prompt: str) -> list[float]: ...


def feature_agent(config: JobConfig) -> AgentConfig:
    """The backend and model the features come from: the policy's, or the local SmolLM2 for replays."""
    scaling, policy = config.scaling, config.policy
    backend = scaling.feature_backend or policy.backend
    model = scaling.feature_model or policy.model
    if backend in ("auto", "replay") and scaling.feature_backend is None:
        backend, model = "auto", model if policy.backend not in ("auto", "replay") else DEFAULT_LOCAL_MODEL
    return policy.model_copy(update={"backend": backend, "model": model})


def features_backend(config: JobConfig, settings: Settings) -> FeatureBackend:
    agent = feature_agent(config)
    backend = backend_for("policy", agent, None, settings)
    if not hasattr(backend, "prompt_features"):
        raise BackendError(f"the {backend.name} backend cannot give the hidden states a probe reads")
    return backend  # type: ignore[return-value]


def feature_source(backend: FeatureBackend, config: JobConfig) -> str:
    """What a vector came from: the model and template a server backend settles on its first request,
    so this is read after one."""
    return f"{backend.model or feature_agent(config).model} | {backend.chat_format} | {POSITION}"


def encode(vector: list[float]) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


def decode(data: bytes) -> np.ndarray:
    return np.frombuffer(data, dtype="<f4").astype(np.float64)
