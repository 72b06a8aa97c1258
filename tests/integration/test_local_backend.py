"""The local backend for real: SmolLM2-135M-Instruct in this process (on the CPU here)."""

from __future__ import annotations

import pytest

from agents.llm.local import LocalBackend, choose_device
from orchestrator.core.config import SamplingParams
from orchestrator.core.errors import BackendError

PROMPT = "Write a Python function add(a, b) that returns a + b."


@pytest.fixture(scope="module")
def smollm2() -> LocalBackend:
    return LocalBackend("smollm2", batch_size=2)


@pytest.mark.slow
def test_samples_carry_token_counts_and_repeat_with_the_same_seed(smollm2: LocalBackend) -> None:
    params = SamplingParams(max_new_tokens=4)
    first = smollm2.sample(PROMPT, 2, params, seed=7)
    again = smollm2.sample(PROMPT, 2, params, seed=7)
    assert [s.text for s in first] == [s.text for s in again]
    for sample in first:
        assert sample.text and sample.prompt_tokens is not None and sample.prompt_tokens > 20
        assert sample.completion_tokens is not None and 0 < sample.completion_tokens <= 4
        assert sample.finish_reason == ("length" if sample.completion_tokens == 4 else "stop")
        assert sample.latency_s is not None and sample.latency_s > 0


@pytest.mark.slow
def test_stop_string_ends_the_completion_and_is_cut_from_it(smollm2: LocalBackend) -> None:
    # Greedy, so the same few tokens every time; English prose has a space within the first eight.
    (sample,) = smollm2.sample(PROMPT, 1, SamplingParams(temperature=0, max_new_tokens=8, stop=[" "]), seed=0)
    assert " " not in sample.text
    assert sample.finish_reason == "stop"
    assert sample.completion_tokens is not None and sample.completion_tokens < 8


@pytest.mark.parametrize(
    ("device", "message"), [("cuda:7", "torch sees [0-7] CUDA device"), ("gpu-ish", "not a torch device")]
)
def test_unusable_device_is_a_clear_error(device: str, message: str) -> None:
    with pytest.raises(BackendError, match=message):
        choose_device(device)
