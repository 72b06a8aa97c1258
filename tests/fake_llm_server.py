"""A stand-in for an SGLang 0.5 server that speaks its HTTP API, for tests and benchmarks.

SGLang needs a GPU, so the clients are tested against this instead. It follows SGLang 0.5.23's
formats and behaviour (docs `basic_usage/native_api`, `basic_usage/sampling_params`;
`io_struct.py::GenerateReqInput`, `api/v1/api_types.py`, `tokenizer_manager.py`, `http_server.py`):

* `GET /health`: takes `health_s` (SGLang's generates a token: at least a second; the fake's default
  is none, to keep the tests quick), and answers 503 while the server starts (`starting_s`); then
  200 with an empty body. `GET /model_info` (and the deprecated
  `GET /get_model_info`, the same): `{"model_path", "served_model_name", "tokenizer_path", ...}`;
  `served_model_name` is what `--served-model-name` set, else the model path.
* `POST /generate`: `text` (a string or a list) or `input_ids`; `sampling_params` a dict or one per
  prompt, all with the same `n`. A single prompt with n = 1 gets one object; anything else a list,
  prompt-major (object k*n + j is sample j of prompt k). Each object: `{"text", "output_ids",
  "meta_info": {"id", "finish_reason": {"type": "stop", "matched"} | {"type": "length", "length"},
  "prompt_tokens", "completion_tokens", "cached_tokens", "e2e_latency", "queue_time"?,
  "hidden_states"?}}`. Like SGLang's tokenizer, it adds BOS to the text it is given;
  `completion_tokens` counts every generated token, a matched stop string's too (the text is cut
  before it). `e2e_latency` runs from the request's arrival, so it includes `queue_time`, the wait
  for one of `max_running` generation slots, which SGLang reports only with `--enable-metrics`
  (`metrics`). A batch in which one prompt with its `max_new_tokens` exceeds `context_length` is
  refused whole (400), as SGLang refuses it.
* Hidden states (`return_hidden_states: true`; the schema refuses "last"): only when the server
  allows them (`hidden_states`, as `--return-hidden-states-mode full`), else 400 naming the flag.
  First the vectors of the prompt tokens computed (all but the cached prefix: a prompt seen before
  has all but its last token cached), then one per generated token after the first; nested, a row
  per token, as the Python server sends them, or the prompt's flattened into one row, as the Rust
  server does (`hidden_states_shape="flat"`). `prompt_vector(text)` is the last prompt token's.
* `POST /v1/tokenize` (`{"prompt"}` a string or a list): `{"tokens", "count", "max_model_len"}`.
* OpenAI-compatible: `GET /v1/models` (with `max_model_len`), `POST /v1/completions`,
  `POST /v1/chat/completions` with `choices` and `usage`; an unknown `model` is a 404 as on vLLM.
* Bad input: 400 `{"error": {"message"}}`, with SGLang's words where the tests depend on them.

What a model would write comes from a `responder(prompt, k)` (k counts the samples of that prompt).
Tokens are words and punctuation marks, special tokens count as one. Faults for the next requests
(`fail_next`): an HTTP status, a delay, a dropped connection. `GET /_fake/stats` (not SGLang's)
reports requests, samples and the most requests seen in flight at once.

Run alone (for benchmarks): `python tests/fake_llm_server.py [--model NAME] [--delay S]`; prints
its URL. `--delay` makes every generation take that long, as a GPU would.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import threading
import time
import uuid
import zlib
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

BOS = "<|begin_of_text|>"
EOT_ID = 128009
TOKEN = re.compile(r"<\|[a-z_]+\|>|\w+|[^\w\s]")

Responder = Callable[[str, int], str]
HiddenStatesShape = Literal["nested", "flat"]
HIDDEN_SIZE = 8

SAMPLING_KEYS = {
    "max_new_tokens", "stop", "stop_token_ids", "temperature", "top_p", "top_k", "min_p",
    "frequency_penalty", "presence_penalty", "repetition_penalty", "min_new_tokens", "n",
    "ignore_eos", "skip_special_tokens", "spaces_between_special_tokens", "no_stop_trim",
    "json_schema", "regex", "ebnf", "structural_tag", "custom_params", "sampling_seed",
}  # fmt: skip
GENERATE_KEYS = {
    "text", "input_ids", "sampling_params", "rid", "stream", "return_logprob", "logprob_start_len",
    "top_logprobs_num", "return_text_in_logprobs", "return_hidden_states", "lora_path",
}  # fmt: skip


def count_tokens(text: str) -> int:
    return len(TOKEN.findall(text))


def token_vector(tokens: list[str], position: int) -> list[float]:
    """The fake's hidden state at `position` of a token sequence: a function of what precedes it."""
    digest = zlib.crc32(" ".join(tokens[: position + 1]).encode())
    return [((digest >> i) % 1000) / 1000 for i in range(HIDDEN_SIZE)]


def numbered_responder(prompt: str, k: int) -> str:
    return f"sample {k} of a fake model"


@dataclass
class Fault:
    """What the server does to the next request for `path` instead of answering it."""

    kind: str  # "status", "delay" (then answers), "drop" (closes the connection, no answer),
    # "garbage" (200 with a body that is not JSON, as a proxy's error page or a cut-off answer)
    status: int = 500
    seconds: float = 0.0
    retry_after: float | None = None
    message: str = "injected failure"
    path: str = "/generate"


@dataclass
class Recorded:
    method: str
    path: str
    body: Any
    headers: dict[str, str]


class _Error(Exception):
    def __init__(self, status: int, body: dict[str, Any]) -> None:
        self.status = status
        self.body = body


@dataclass
class _State:
    model_path: str
    responder: Responder
    served_model_name: str = ""  # --served-model-name; empty: the model path
    native: bool = True  # False: no SGLang endpoints, as a vLLM server
    delay_s: float = 0.0  # how long every generation takes
    health_s: float = 0.0  # how long GET /health takes (SGLang's: at least a second)
    starting_s: float = 0.0  # GET /health answers 503 until this long after the start
    context_length: int = 8192
    hidden_states: bool = False  # --return-hidden-states-mode full
    hidden_states_shape: HiddenStatesShape = "nested"
    metrics: bool = False  # --enable-metrics: meta_info.queue_time
    max_running: int = 1024  # generations at once; more wait (queue_time)
    started: float = field(default_factory=time.monotonic)
    seen_prompts: set[str] = field(default_factory=set)
    running: threading.Semaphore = field(init=False)
    faults: deque[Fault] = field(default_factory=deque)
    recorded: list[Recorded] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0
    samples: int = 0
    record: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.running = threading.Semaphore(self.max_running)

    def take_fault(self, path: str) -> Fault | None:
        with self.lock:
            for fault in self.faults:
                if fault.path == path:
                    self.faults.remove(fault)
                    return fault
        return None

    def next_number(self, prompt: str) -> int:
        with self.lock:
            number = self.counters[prompt]
            self.counters[prompt] += 1
            return number

    @property
    def name(self) -> str:
        return self.served_model_name or self.model_path

    def cached_tokens(self, prompt: str, tokens: int) -> int:
        """SGLang's prefix cache: a prompt seen before is cached but for its last token."""
        with self.lock:
            seen = prompt in self.seen_prompts
            self.seen_prompts.add(prompt)
        return tokens - 1 if seen else 0


def _complete(
    state: _State, prompt: str, max_tokens: int, stop: list[str], ignore_eos: bool = False
) -> tuple[str, dict[str, Any], int]:
    """(text, SGLang finish_reason, completion tokens) of one sample.

    A matched stop string's tokens were generated, so they count, though the text is cut before them.
    """
    text = state.responder(prompt, state.next_number(prompt))
    if ignore_eos:  # the model writes on past its end of turn
        text += " more" * max_tokens
    cuts = [(text.find(s), s) for s in stop if s and s in text]
    if cuts:
        position, matched = min(cuts)
        generated = count_tokens(text[: position + len(matched)])
        if generated <= max_tokens:
            return text[:position], {"type": "stop", "matched": matched}, generated
    tokens = list(TOKEN.finditer(text))
    if len(tokens) > max_tokens or ignore_eos:
        return text[: tokens[max_tokens - 1].end()], {"type": "length", "length": max_tokens}, max_tokens
    return text, {"type": "stop", "matched": EOT_ID}, len(tokens) + 1  # + the end-of-turn token


def _bad_request(message: str) -> _Error:
    return _Error(400, {"error": {"message": message}})


def _check_context(state: _State, prompt_tokens: int, max_new_tokens: int) -> None:
    """SGLang's refusal (tokenizer_manager.py::_validate_one_request), for the whole request."""
    if prompt_tokens >= state.context_length:
        raise _bad_request(
            f"The input ({prompt_tokens} tokens) is longer than the model's context length "
            f"({state.context_length} tokens)."
        )
    if prompt_tokens + max_new_tokens > state.context_length:
        raise _bad_request(
            "Requested token count exceeds the model's maximum context length of "
            f"{state.context_length} tokens. You requested a total of {prompt_tokens + max_new_tokens} "
            f"tokens: {prompt_tokens} tokens from the input messages and {max_new_tokens} tokens for "
            "the completion."
        )


def _hidden_states(state: _State, prompt: str, cached: int, generated: int) -> list[Any]:
    """The prompt's computed vectors (nested or flat), then one per generated token after the first."""
    tokens = [BOS, *TOKEN.findall(prompt)]
    rows = [token_vector(tokens, i) for i in range(cached, len(tokens))]
    block: list[Any] = rows if state.hidden_states_shape == "nested" else [x for row in rows for x in row]
    return [block] + [token_vector(tokens + ["gen"] * k, len(tokens) + k - 1) for k in range(1, generated)]


def _generate(state: _State, body: dict[str, Any]) -> Any:
    unknown = set(body) - GENERATE_KEYS
    if unknown:
        raise _bad_request(f"unexpected fields {sorted(unknown)}")
    if body.get("stream"):
        raise _bad_request("this fake does not stream")
    hidden = body.get("return_hidden_states", False)
    if not isinstance(hidden, bool):  # the schema's BoolOrList
        raise _bad_request(
            f"invalid type: {json.dumps(hidden)}, expected a value or an array of values for BoolOrList"
        )
    if hidden and not state.hidden_states:
        raise _bad_request(
            "The server is not configured to return hidden states. Please set "
            "`--return-hidden-states-mode last`, `--return-hidden-states-mode full`, or the legacy "
            "`--enable-return-hidden-states` flag."
        )
    text, input_ids = body.get("text"), body.get("input_ids")
    if (text is None) == (input_ids is None):
        raise _bad_request("Either text, input_ids or input_embeds should be provided.")
    if text is not None:
        single = isinstance(text, str)
        prompts = [text] if single else list(text)
        prompt_tokens = [1 + count_tokens(p) for p in prompts]  # the tokenizer adds BOS
    else:
        single = bool(input_ids) and isinstance(input_ids[0], int)
        id_lists = [input_ids] if single else list(input_ids)
        prompts = [" ".join(map(str, ids)) for ids in id_lists]
        prompt_tokens = [len(ids) for ids in id_lists]
    params = body.get("sampling_params") or {}
    per_prompt = params if isinstance(params, list) else [params] * len(prompts)
    if len(per_prompt) != len(prompts):
        raise _bad_request("The length of sampling_params should be equal to the batch size.")
    for one in per_prompt:
        unknown = set(one) - SAMPLING_KEYS
        if unknown:
            raise _bad_request(f"unexpected sampling parameters {sorted(unknown)}")
    n = per_prompt[0].get("n", 1) if per_prompt else 1
    if any(one.get("n", 1) != n for one in per_prompt):
        raise _bad_request("The parallel_sample_num should be the same for all samples in sample params.")
    for tokens, one in zip(prompt_tokens, per_prompt, strict=True):
        _check_context(state, tokens, one.get("max_new_tokens", 128))
    began = time.perf_counter()
    with state.running:
        queued = time.perf_counter() - began
        if state.delay_s:
            time.sleep(state.delay_s)
        outputs = []
        for prompt, tokens, one in zip(prompts, prompt_tokens, per_prompt, strict=True):
            stop = one.get("stop") or []
            stop = [stop] if isinstance(stop, str) else stop
            cached = state.cached_tokens(prompt, tokens)
            for _ in range(n):  # prompt-major, as the tokenizer manager sends and gathers them
                completion, reason, count = _complete(
                    state, prompt, one.get("max_new_tokens", 128), stop, one.get("ignore_eos", False)
                )
                meta: dict[str, Any] = {
                    "id": uuid.uuid4().hex,
                    "finish_reason": reason,
                    "prompt_tokens": tokens,
                    "completion_tokens": count,
                    "cached_tokens": cached,
                    "e2e_latency": time.perf_counter() - began,
                }
                if state.metrics:
                    meta["queue_time"] = queued
                if hidden:
                    meta["hidden_states"] = _hidden_states(state, prompt, cached, count)
                outputs.append({"text": completion, "output_ids": list(range(count)), "meta_info": meta})
    with state.lock:
        state.samples += len(outputs)
    return outputs[0] if single and n == 1 else outputs


def _tokenize(state: _State, body: dict[str, Any]) -> dict[str, Any]:
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
        raise _bad_request("'prompt' must be a string or a list of strings")
    bos = [0] if body.get("add_special_tokens", True) else []
    tokens = [bos + list(range(1, 1 + count_tokens(p))) for p in prompts]
    return {
        "tokens": tokens[0] if isinstance(prompt, str) else tokens,
        "count": len(tokens[0]) if isinstance(prompt, str) else [len(t) for t in tokens],
        "max_model_len": state.context_length,
    }


def _openai(state: _State, body: dict[str, Any], chat: bool) -> dict[str, Any]:
    model = body.get("model")
    if model is not None and model != state.name:
        raise _Error(
            404,
            {
                "object": "error",
                "message": f"The model `{model}` does not exist.",
                "type": "NotFoundError",
                "code": 404,
            },
        )
    if chat:
        messages = body.get("messages")
        if not isinstance(messages, list) or not messages:
            raise _bad_request("'messages' must be a non-empty list")
        # The server applies the model's chat template; any marker will do for a fake.
        prompts = ["".join(f"<{m['role']}>{m['content']}" for m in messages)]
    else:
        prompt = body.get("prompt")
        prompts = [prompt] if isinstance(prompt, str) else list(prompt or [])
        if not prompts:
            raise _bad_request("'prompt' is required")
    n, max_tokens = body.get("n", 1), body.get("max_tokens", 16)
    stop = body.get("stop") or []
    stop = [stop] if isinstance(stop, str) else stop
    choices, prompt_tokens, completion_tokens = [], 0, 0
    for prompt in prompts:
        prompt_tokens += 1 + count_tokens(prompt)
        _check_context(state, 1 + count_tokens(prompt), max_tokens)
        for _ in range(n):
            text, reason, count = _complete(state, prompt, max_tokens, stop)
            completion_tokens += count
            choice: dict[str, Any] = {"index": len(choices), "finish_reason": reason["type"]}
            if chat:
                choice["message"] = {"role": "assistant", "content": text}
            else:
                choice |= {"text": text, "logprobs": None}
            choices.append(choice)
    with state.lock:
        state.samples += len(choices)
    return {
        "id": uuid.uuid4().hex,
        "object": "chat.completion" if chat else "text_completion",
        "created": int(time.time()),
        "model": state.name,
        "choices": choices,
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as uvicorn
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def _serve(self, method: str) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        path = self.path.split("?")[0]
        with state.lock:
            state.requests += 1
            state.in_flight += 1
            state.max_in_flight = max(state.max_in_flight, state.in_flight)
        try:
            self._answer(method, path, raw)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client gave up (its timeout); nothing to answer
        finally:
            with state.lock:
                state.in_flight -= 1

    def _answer(self, method: str, path: str, raw: bytes) -> None:
        state = self.server.state
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            self._send(400, {"error": {"message": "body is not JSON"}})
            return
        if state.record and path != "/_fake/stats":
            with state.lock:
                state.recorded.append(Recorded(method, path, body, dict(self.headers)))
        fault = state.take_fault(path)
        if fault is not None and fault.kind == "drop":
            self.close_connection = True
            return
        if fault is not None and fault.kind == "garbage":
            data = b"<html><body>502 Bad Gateway</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        if fault is not None and fault.kind == "delay":
            time.sleep(fault.seconds)
        if state.delay_s and path in ("/v1/completions", "/v1/chat/completions"):
            time.sleep(state.delay_s)  # /generate waits inside, where it times the queue
        if fault is not None and fault.kind == "status":
            headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else {}
            self._send(fault.status, {"error": {"message": fault.message}}, headers)
            return
        try:
            status, answer = 200, self._route(method, path, body)
        except _Error as exc:
            status, answer = exc.status, exc.body
        self._send(status, answer)

    def _route(self, method: str, path: str, body: Any) -> Any:
        state = self.server.state
        model_info = {
            "model_path": state.model_path,
            "served_model_name": state.name,
            "tokenizer_path": state.model_path,
            "is_generation": True,
            "preferred_sampling_params": None,
            "weight_version": "default",
            "has_image_understanding": False,
            "has_audio_understanding": False,
        }
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/health"): lambda: _health(state),
            ("GET", "/model_info"): lambda: model_info,
            ("GET", "/get_model_info"): lambda: model_info,  # deprecated in 0.5, the same answer
            ("GET", "/v1/models"): lambda: {
                "object": "list",
                "data": [
                    {
                        "id": state.name,
                        "object": "model",
                        "owned_by": "sglang",
                        "root": state.name,
                        "max_model_len": state.context_length,
                    }
                ],
            },
            ("POST", "/generate"): lambda: _generate(state, _object(body)),
            ("POST", "/v1/tokenize"): lambda: _tokenize(state, _object(body)),
            ("POST", "/v1/completions"): lambda: _openai(state, _object(body), chat=False),
            ("POST", "/v1/chat/completions"): lambda: _openai(state, _object(body), chat=True),
            ("GET", "/_fake/stats"): lambda: {
                "requests": state.requests,
                "samples": state.samples,
                "max_in_flight": state.max_in_flight,
            },
        }
        native = {"/health", "/model_info", "/get_model_info", "/generate", "/v1/tokenize"}
        if (method, path) not in routes or (path in native and not state.native):
            raise _Error(404, {"detail": "Not Found"})
        return routes[(method, path)]()

    def _send(self, status: int, answer: Any, headers: dict[str, str] | None = None) -> None:
        data = b"" if answer is None else json.dumps(answer).encode()
        self.send_response(status)
        if answer is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _health(state: _State) -> None:
    """SGLang's /health: 503 while starting, then the time of a one-token generation."""
    if time.monotonic() - state.started < state.starting_s:
        raise _Error(503, {"error": {"message": "starting"}})
    time.sleep(state.health_s)


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _Error(422, {"detail": "expected a JSON object"})
    return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    state: _State


class FakeLLMServer:
    """The fake server in a background thread of this process: `with FakeLLMServer() as server:`.

    `options` set the server's other `_State` fields: served_model_name, health_s, starting_s,
    context_length, hidden_states, hidden_states_shape, metrics, max_running, delay_s.
    """

    def __init__(
        self,
        model_path: str = "fake-org/Fake-Coder-8B",
        responder: Responder = numbered_responder,
        port: int = 0,
        native: bool = True,
        **options: Any,
    ) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.state = _State(model_path=model_path, responder=responder, native=native, **options)
        # A short poll lets `shutdown` return at once rather than after serve_forever's 0.5 s default.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def state(self) -> _State:
        return self._server.state

    @staticmethod
    def prompt_vector(text: str) -> list[float]:
        """The hidden state of the last token of `text` as sent to /generate (after the BOS it gets)."""
        tokens = [BOS, *TOKEN.findall(text)]
        return token_vector(tokens, len(tokens) - 1)

    def requests_to(self, path: str) -> list[Recorded]:
        with self.state.lock:
            return [r for r in self.state.recorded if r.path == path]

    def fail_next(self, *faults: Fault) -> None:
        with self.state.lock:
            self.state.faults.extend(faults)

    def __enter__(self) -> FakeLLMServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fake-org/Fake-Coder-8B")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--delay", type=float, default=0.0, help="seconds every generation takes")
    args = parser.parse_args()
    server = FakeLLMServer(args.model, port=args.port)
    server.state.delay_s = args.delay
    server.state.record = False  # a benchmark's millions of requests would fill memory
    print(server.url, flush=True)
    server._server.serve_forever()  # until killed


if __name__ == "__main__":
    sys.exit(main())
