"""The sglang backend against a server that speaks SGLang 0.5's HTTP API.

Given a fake SGLang server (tests/fake_llm_server.py), when the backend samples, expect the right
requests, every sample attributed to its own prompt, and failures retried or refused as they should;
when it asks for a prompt's hidden state, expect the last prompt token's vector in either shape.
"""

from __future__ import annotations

import re
import socket
from collections import Counter

import pytest
from fake_llm_server import BOS, FakeLLMServer, Fault

from agents.llm.http import compute_backoff
from agents.llm.sglang import (
    GenerateRequest,
    SGLangBackend,
    plan_requests,
    read_generate_answer,
    read_prompt_features,
    sample_seed,
)
from orchestrator.core.config import SamplingParams, Settings
from orchestrator.core.errors import BackendError, ConfigurationError, TransientBackendError

PARAMS = SamplingParams(max_new_tokens=64)
PROMPTS = ["Solve problem A.", "Solve problem B.", "Solve problem C."]


def settings(url: str, **overrides: object) -> Settings:
    """Fast retries, so that failure tests take milliseconds."""
    values: dict[str, object] = {"policy_url": url, "llm_backoff_s": 0.01, "llm_retries": 3} | overrides
    return Settings(**values)  # type: ignore[arg-type]


def backend(url: str, model: str | None = None, **overrides: object) -> SGLangBackend:
    return SGLangBackend("policy", url, model, "llama3.1", settings(url, **overrides))


# --- planning and reading, no server -----------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "per_request", "prompts_per_request"),
    [([100], 8, 8), ([10, 10, 3], 4, 2), ([1, 7, 7, 7, 2], 3, 3), ([5], 10, 1)],
)
def test_n_plan_asks_for_every_sample_once_and_never_a_prompt_twice_per_request(
    counts: list[int], per_request: int, prompts_per_request: int
) -> None:
    plan = plan_requests(counts, per_request, prompts_per_request, "n")
    asked = Counter(owner for request in plan for owner in request.owners)
    assert [asked[i] for i in range(len(counts))] == counts
    for request in plan:
        assert 1 <= request.n <= per_request
        assert len(request.prompts) <= prompts_per_request
        assert len(set(request.prompts)) == len(request.prompts)
    # Each sample of a prompt has its own index, so its own seed where one is sent.
    indices = sorted(
        (p, first + j) for r in plan for p, first in zip(r.prompts, r.first, strict=True) for j in range(r.n)
    )
    assert indices == [(p, j) for p, count in enumerate(counts) for j in range(count)]


def test_one_large_n_is_split_into_several_requests() -> None:
    plan = plan_requests([100], 8, 8, "n")
    assert [r.n for r in plan] == [8] * 12 + [4]
    assert all(r.prompts == (0,) for r in plan)


def test_repeat_plan_sends_copies_with_n_1_each_with_its_sample_index() -> None:
    plan = plan_requests([3, 2], 2, 8, "repeat")
    assert [(r.prompts, r.n, r.first) for r in plan] == [
        ((0, 0), 1, (0, 1)),
        ((0, 1), 1, (2, 0)),
        ((1,), 1, (1,)),
    ]


def test_sample_seeds_stay_signed_64_bit() -> None:
    assert [sample_seed(7, j) for j in range(3)] == [7, 8, 9]
    assert sample_seed(2**63 - 1, 1) == 0 and sample_seed(-1, 0) == 2**63 - 1


def output(text: str, finish: dict[str, object] | None = None) -> dict[str, object]:
    meta = {
        "id": "x",
        "finish_reason": finish or {"type": "stop", "matched": 128009},
        "prompt_tokens": 7,
        "completion_tokens": 3,
    }
    return {"text": text, "output_ids": [1, 2, 3], "meta_info": meta}


def test_batch_answer_with_n_is_read_prompt_major() -> None:
    request = GenerateRequest(prompts=(4, 9), n=2, first=(0, 0))
    body = [output("4a"), output("4b"), output("9a", {"type": "length", "length": 3}), output("9b")]
    samples = read_generate_answer(body, request)
    assert request.owners == [4, 4, 9, 9]
    assert [s.text for s in samples] == ["4a", "4b", "9a", "9b"]
    assert [s.finish_reason for s in samples] == ["stop", "stop", "length", "stop"]
    assert samples[0].prompt_tokens == 7 and samples[0].completion_tokens == 3


def test_answer_of_the_wrong_size_or_shape_is_refused() -> None:
    with pytest.raises(BackendError, match="1 objects for 2 samples"):
        read_generate_answer([output("a")], GenerateRequest((0,), 2, (0,)))
    with pytest.raises(BackendError, match="dict"):
        read_generate_answer(output("a"), GenerateRequest((0,), 1, (0,)))
    with pytest.raises(BackendError, match="without text and meta_info"):
        read_generate_answer([{"text": "a"}], GenerateRequest((0,), 1, (0,)))


def test_aborted_sample_is_worth_a_retry() -> None:
    aborted = output("", {"type": "abort", "message": "server paused"})
    with pytest.raises(TransientBackendError, match="server paused"):
        read_generate_answer([aborted], GenerateRequest((0,), 1, (0,)))


def test_backoff_doubles_with_jitter_is_capped_and_obeys_retry_after() -> None:
    assert [compute_backoff(a, 1.0, jitter=lambda: 1.0) for a in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert compute_backoff(3, 1.0, jitter=lambda: 0.0) == 4.0  # half kept at the least
    assert compute_backoff(20, 1.0, jitter=lambda: 1.0) == 60.0
    assert compute_backoff(0, 1.0, retry_after_s=7.0) == 7.0
    assert compute_backoff(0, 1.0, retry_after_s=900.0) == 60.0


# --- against the fake server ---------------------------------------------------------------------


def name_the_problem(prompt: str, k: int) -> str:
    """An answer that says which prompt it answers; problem C rambles past the token limit."""
    letter = re.search(r"problem (\w)", prompt)[1]  # type: ignore[index]
    return f"{letter} {k}" + (" and on" * 10 if letter == "C" else "")


def test_batched_prompts_with_n_get_their_own_samples_with_tokens_and_finish_reasons() -> None:
    with FakeLLMServer(responder=name_the_problem) as server:
        chosen = backend(
            server.url,
            sglang_samples_per_request=2,
            sglang_prompts_per_request=2,
            sglang_parallel_sampling="n",
        )
        a, b, c = chosen.sample_many(PROMPTS, 5, SamplingParams(max_new_tokens=6), seed=0)
        generate = server.requests_to("/generate")
    assert not isinstance(a, BackendError) and not isinstance(b, BackendError)
    assert not isinstance(c, BackendError)

    assert chosen.model == "fake-org/Fake-Coder-8B"
    for letter, samples in zip("ABC", (a, b, c), strict=True):
        # Every sample came back to the prompt it was asked for, each sample once.
        assert sorted(s.text.split()[:2] for s in samples) == [[letter, str(k)] for k in range(5)]
        for s in samples:
            assert s.prompt_tokens and s.prompt_tokens > 20 and s.latency_s is not None and s.latency_s > 0
    assert {(s.finish_reason, s.completion_tokens) for s in a + b} == {("stop", 3)}  # 2 words + end of turn
    assert {(s.finish_reason, s.completion_tokens) for s in c} == {("length", 6)}
    # Batches of two different prompts with n = 2 were sent, so the prompt-major order was exercised.
    shared = [r.body["sampling_params"] for r in generate if isinstance(r.body["sampling_params"], dict)]
    assert any(
        len(r.body["text"]) == 2 and r.body["sampling_params"]["n"] == 2
        for r in generate
        if r.body["sampling_params"] in shared
    )
    for params in shared:  # the copies share them: no seed
        assert (
            set(params) == {"n", "temperature", "top_p", "max_new_tokens"} and params["max_new_tokens"] == 6
        )


def test_prompt_is_sent_in_the_llama_template_without_a_second_bos() -> None:
    with FakeLLMServer() as server:
        backend(server.url).sample("  Write f.\n", 1, PARAMS, seed=0)
        (request,) = server.requests_to("/generate")
    (text,) = request.body["text"]
    assert text.startswith("<|start_header_id|>system<|end_header_id|>")
    assert "<|start_header_id|>user<|end_header_id|>\n\nWrite f.<|eot_id|>" in text
    # The server's tokenizer adds BOS to what it is sent: one in total only if the text has none.
    assert 1 + text.count(BOS) == 1


def test_repeat_mode_sends_prompt_copies_with_n_1_each_with_its_own_seed() -> None:
    with FakeLLMServer() as server:
        samples = backend(server.url, sglang_samples_per_request=3).sample("Solve it.", 7, PARAMS, seed=41)
        generate = server.requests_to("/generate")
    assert len(samples) == 7
    assert sorted(len(r.body["text"]) for r in generate) == [1, 3, 3]
    sent = [one for r in generate for one in r.body["sampling_params"]]
    assert {one["n"] for one in sent} == {1}
    assert sorted(one["sampling_seed"] for one in sent) == list(range(41, 48))


def test_stop_strings_are_sent_and_cut_the_completion_but_count_as_generated() -> None:
    with FakeLLMServer() as server:
        (sample,) = backend(server.url).sample("Solve it.", 1, SamplingParams(stop=["of"]), seed=0)
        (request,) = server.requests_to("/generate")
    assert request.body["sampling_params"][0]["stop"] == ["of"]
    assert sample.text == "sample 0 " and sample.finish_reason == "stop"
    assert sample.completion_tokens == 3  # "sample", "0" and the stop string "of", as SGLang counts


def test_client_error_is_not_retried() -> None:
    with FakeLLMServer() as server:
        server.fail_next(Fault("status", status=400, message="The input is too long"))
        with pytest.raises(BackendError, match="HTTP 400: The input is too long") as caught:
            backend(server.url).sample("Solve it.", 1, PARAMS, seed=0)
        attempts = len(server.requests_to("/generate"))
    assert not isinstance(caught.value, TransientBackendError)
    assert attempts == 1


def test_rate_limit_and_server_errors_are_retried() -> None:
    with FakeLLMServer() as server:
        server.fail_next(Fault("status", status=429, retry_after=0.01), Fault("status", status=500))
        samples = backend(server.url).sample("Solve it.", 2, PARAMS, seed=0)
        attempts = len(server.requests_to("/generate"))
    assert len(samples) == 2 and attempts == 3


def test_slow_answer_times_out_and_is_retried() -> None:
    with FakeLLMServer() as server:
        server.fail_next(Fault("delay", seconds=2.0))
        samples = backend(server.url, llm_timeout_s=0.3).sample("Solve it.", 1, PARAMS, seed=0)
        attempts = len(server.requests_to("/generate"))
    assert len(samples) == 1 and attempts == 2


def test_dropped_connection_is_retried() -> None:
    with FakeLLMServer() as server:
        server.fail_next(Fault("drop"))
        samples = backend(server.url).sample("Solve it.", 1, PARAMS, seed=0)
        attempts = len(server.requests_to("/generate"))
    assert len(samples) == 1 and attempts == 2


def test_gives_up_after_the_configured_retries() -> None:
    with FakeLLMServer() as server:
        server.fail_next(*[Fault("status", status=503)] * 3)
        with pytest.raises(TransientBackendError, match="HTTP 503.*gave up after 3 attempts"):
            backend(server.url, llm_retries=2).sample("Solve it.", 1, PARAMS, seed=0)


def test_requests_in_flight_stay_within_the_bound() -> None:
    with FakeLLMServer() as server:
        server.fail_next(*[Fault("delay", seconds=0.1)] * 12)
        samples = backend(server.url, llm_max_in_flight=3, sglang_samples_per_request=1).sample(
            "Solve it.", 12, PARAMS, seed=0
        )
        most = server.state.max_in_flight
    assert len(samples) == 12
    assert 2 <= most <= 3


def test_server_with_another_model_is_refused_with_both_names() -> None:
    with FakeLLMServer(model_path="/models/Llama-3-8B-Instruct") as server:
        with pytest.raises(
            ConfigurationError,
            match="serves '/models/Llama-3-8B-Instruct', not the configured 'KAKA22/CodeRM-8B'",
        ):
            backend(server.url, model="KAKA22/CodeRM-8B").sample("Solve it.", 1, PARAMS, seed=0)
        assert server.requests_to("/generate") == []


def test_same_model_under_another_path_is_accepted() -> None:
    with FakeLLMServer(model_path="/models/CodeRM-8B") as server:
        chosen = backend(server.url, model="KAKA22/CodeRM-8B")
        chosen.sample("Solve it.", 1, PARAMS, seed=0)
        chosen.sample("Solve it again.", 1, PARAMS, seed=0)
        checks = len(server.requests_to("/model_info"))
    assert chosen.model == "/models/CodeRM-8B"
    assert checks == 1  # once per process and server


def test_unreachable_server_is_a_transient_error_naming_the_url() -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{free.getsockname()[1]}"
    with pytest.raises(
        TransientBackendError, match=f"the policy server {url} .* not usable: GET {url}/health: ConnectError"
    ):
        backend(url, llm_retries=0).sample("Solve it.", 1, PARAMS, seed=0)


def test_api_key_is_sent_as_a_bearer_token() -> None:
    with FakeLLMServer() as server:
        backend(server.url, llm_api_key="s3cret").sample("Solve it.", 1, PARAMS, seed=0)
        (request,) = server.requests_to("/generate")
    assert request.headers["Authorization"] == "Bearer s3cret"


# --- SGLang 0.5: model identity, health, context length, latency, hidden states -------------------


def test_model_identity_is_the_served_model_name_and_the_path_still_matches() -> None:
    with FakeLLMServer("/models/CodeRM-8B", served_model_name="coderm") as server:
        by_name = backend(server.url, model="coderm")
        by_name.sample("Solve it.", 1, PARAMS, seed=0)
        by_path = backend(server.url, model="KAKA22/CodeRM-8B")
        by_path.sample("Solve it.", 1, PARAMS, seed=0)
        with pytest.raises(ConfigurationError, match=r"serves 'coderm' \(from /models/CodeRM-8B\), not"):
            backend(server.url, model="meta-llama/Llama-3-8B").sample("Solve it.", 1, PARAMS, seed=0)
    assert by_name.model == by_path.model == "coderm"


def test_server_without_model_info_is_asked_the_deprecated_endpoint() -> None:
    with FakeLLMServer("/models/CodeRM-8B") as server:
        server.fail_next(Fault("status", status=404, path="/model_info"))
        chosen = backend(server.url, model="KAKA22/CodeRM-8B")
        chosen.sample("Solve it.", 1, PARAMS, seed=0)
        asked = len(server.requests_to("/get_model_info"))
    assert chosen.model == "/models/CodeRM-8B" and asked == 1


def test_health_gets_a_budget_beyond_the_connect_timeout_and_is_waited_for_while_starting() -> None:
    # /health generates a token (at least a second on SGLang), longer than connecting may take.
    with FakeLLMServer(health_s=1.2, starting_s=0.2) as server:
        samples = backend(server.url, llm_connect_timeout_s=0.5, llm_backoff_s=0.1, llm_retries=4).sample(
            "Solve it.", 1, PARAMS, seed=0
        )
        checks = len(server.requests_to("/health"))
    assert len(samples) == 1 and checks >= 2  # 503 while starting, then the slow 200


def test_health_slower_than_its_budget_is_a_transient_error() -> None:
    with (
        FakeLLMServer(health_s=2.0) as server,
        pytest.raises(TransientBackendError, match="/health: timed out"),
    ):
        backend(server.url, llm_health_timeout_s=0.3, llm_retries=0).sample("Solve it.", 1, PARAMS, seed=0)


def test_prompt_too_long_for_the_context_fails_alone_and_the_batch_goes_on() -> None:
    long = "Solve problem B: " + "word " * 200
    with FakeLLMServer(responder=name_the_problem, context_length=100) as server:
        a, b, c = backend(server.url, sglang_prompts_per_request=8).sample_many(
            ["Solve problem A.", long, "Solve problem C."], 2, SamplingParams(max_new_tokens=8), seed=0
        )
        sent = [text for r in server.requests_to("/generate") for text in r.body["text"]]
        counted = len(server.requests_to("/v1/tokenize"))
    assert isinstance(b, BackendError) and not isinstance(b, TransientBackendError)
    assert re.search(
        r"the prompt is \d+ tokens and asks for up to 8 more, beyond the 100-token context", str(b)
    )
    assert not isinstance(a, BackendError) and not isinstance(c, BackendError)
    assert len(a) == len(c) == 2 and all(len(s.text.split()) > 1 for s in a + c)
    assert counted == 1 and not any("word word" in text for text in sent)


def test_lone_prompt_too_long_is_refused_by_the_server_without_counting_first() -> None:
    with FakeLLMServer(context_length=30) as server:
        with pytest.raises(BackendError, match="HTTP 400: Requested token count exceeds") as caught:
            backend(server.url).sample("Solve it.", 1, SamplingParams(max_new_tokens=64), seed=0)
        counted = len(server.requests_to("/v1/tokenize"))
    assert not isinstance(caught.value, TransientBackendError) and counted == 0


def test_latency_is_the_servers_own_with_its_queued_part_when_it_reports_that() -> None:
    with FakeLLMServer(metrics=True, max_running=1) as server:
        server.state.delay_s = 0.05
        samples = backend(server.url, sglang_samples_per_request=1).sample("Solve it.", 3, PARAMS, seed=0)
    for s in samples:
        assert s.queue_s is not None and s.latency_s is not None and s.latency_s >= s.queue_s >= 0
    with FakeLLMServer() as server:  # without --enable-metrics SGLang reports no queue time
        (sample,) = backend(server.url).sample("Solve it.", 1, PARAMS, seed=0)
    assert sample.queue_s is None and sample.latency_s is not None and sample.latency_s > 0


@pytest.mark.parametrize("shape", ["nested", "flat"])
def test_prompt_features_are_the_last_prompt_tokens_vector_in_either_shape(shape: str) -> None:
    with FakeLLMServer(hidden_states=True, hidden_states_shape=shape) as server:
        chosen = backend(server.url)
        first = chosen.prompt_features("Write f.")
        again = chosen.prompt_features("Write f.")  # the prefix is cached now: one row comes back
        (request, _) = server.requests_to("/generate")
    (text,) = request.body["text"]
    assert first == again == pytest.approx(FakeLLMServer.prompt_vector(text))
    assert request.body["return_hidden_states"] is True


def test_server_without_hidden_states_is_refused_naming_its_flag() -> None:
    with FakeLLMServer() as server, pytest.raises(BackendError, match="--return-hidden-states-mode full"):
        backend(server.url).prompt_features("Write f.")


def test_flat_hidden_states_that_are_not_whole_vectors_are_refused() -> None:
    body = [{"text": "", "meta_info": {"hidden_states": [[0.1] * 10, [0.2] * 4]}}]
    with pytest.raises(
        BackendError, match="10 prompt hidden-state values, which is not a whole number of vectors of 4"
    ):
        read_prompt_features(body)
    with pytest.raises(BackendError, match="--return-hidden-states-mode full"):
        read_prompt_features([{"text": "", "meta_info": {}}])


def test_auto_chat_format_follows_the_served_model(caplog: pytest.LogCaptureFixture) -> None:
    # A Llama 3 (not 3.1) policy gets the Llama 3 template: the user turn only, no system turn.
    with FakeLLMServer("/models/Meta-Llama-3-8B-Instruct") as server:
        SGLangBackend("policy", server.url, None, "auto", settings(server.url)).sample(
            "Write f.", 1, PARAMS, 0
        )
        (request,) = server.requests_to("/generate")
    assert request.body["text"][0].startswith("<|start_header_id|>user<|end_header_id|>\n\nWrite f.")
    # An explicit choice stands, with a warning in the worker's log.
    with FakeLLMServer("/models/Meta-Llama-3-8B-Instruct") as server, caplog.at_level("WARNING"):
        backend(server.url).sample("Write f.", 1, PARAMS, 0)
        (request,) = server.requests_to("/generate")
    assert request.body["text"][0].startswith("<|start_header_id|>system<|end_header_id|>")
    assert "looks like llama3" in caplog.text
