"""A stand-in for an SGLang server that speaks its documented HTTP API, for tests and benchmarks.

SGLang needs a GPU, so the clients are tested against this instead. It follows SGLang's formats
(docs `basic_usage/native_api`, `basic_usage/sampling_params`; `io_struct.py::GenerateReqInput`,
`tokenizer_manager.py::_handle_batch_request`, `http_server.py`):

* `GET /health`: 200, empty body. `GET /get_model_info`: `{"model_path", "tokenizer_path", ...}`.
* `POST /generate`: `text` (a string or a list) or `input_ids`; `sampling_params` a dict or one per
  prompt, all with the same `n`. A single prompt with n = 1 gets one object; anything else a list,
  prompt-major (object k*n + j is sample j of prompt k). Each object: `{"text", "output_ids",
  "meta_info": {"id", "finish_reason": {"type": "stop", "matched"} | {"type": "length", "length"},
  "prompt_tokens", "completion_tokens", "cached_tokens", "e2e_latency"}}`. Like SGLang's tokenizer,
  it adds BOS to the text it is given. Bad input: 400 `{"error": {"message"}}`.
* OpenAI-compatible: `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions` with
  `choices` and `usage`; an unknown `model` is a 404 as on vLLM.

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
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BOS = "<|begin_of_text|>"
EOT_ID = 128009
TOKEN = re.compile(r"<\|[a-z_]+\|>|\w+|[^\w\s]")

Responder = Callable[[str, int], str]

SAMPLING_KEYS = {
    "max_new_tokens", "stop", "stop_token_ids", "temperature", "top_p", "top_k", "min_p",
    "frequency_penalty", "presence_penalty", "repetition_penalty", "min_new_tokens", "n",
    "ignore_eos", "skip_special_tokens", "spaces_between_special_tokens", "no_stop_trim",
    "json_schema", "regex", "ebnf", "structural_tag", "custom_params",
}  # fmt: skip
GENERATE_KEYS = {
    "text", "input_ids", "sampling_params", "rid", "stream", "return_logprob", "logprob_start_len",
    "top_logprobs_num", "return_text_in_logprobs", "return_hidden_states", "lora_path",
}  # fmt: skip


def count_tokens(text: str) -> int:
    return len(TOKEN.findall(text))


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
    native: bool = True  # False: no SGLang endpoints, as a vLLM server
    delay_s: float = 0.0  # how long every generation takes
    faults: deque[Fault] = field(default_factory=deque)
    recorded: list[Recorded] = field(default_factory=list)
    counters: Counter[str] = field(default_factory=Counter)
    in_flight: int = 0
    max_in_flight: int = 0
    requests: int = 0
    samples: int = 0
    record: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

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


def _complete(
    state: _State, prompt: str, max_tokens: int, stop: list[str]
) -> tuple[str, dict[str, Any], int]:
    """(text, SGLang finish_reason, completion tokens) of one sample."""
    text = state.responder(prompt, state.next_number(prompt))
    cuts = [(text.find(s), s) for s in stop if s and s in text]
    if cuts:
        position, matched = min(cuts)
        text = text[:position]
        return text, {"type": "stop", "matched": matched}, count_tokens(text) + 1
    tokens = list(TOKEN.finditer(text))
    if len(tokens) > max_tokens:
        return text[: tokens[max_tokens - 1].end()], {"type": "length", "length": max_tokens}, max_tokens
    return text, {"type": "stop", "matched": EOT_ID}, len(tokens) + 1  # + the end-of-turn token


def _bad_request(message: str) -> _Error:
    return _Error(400, {"error": {"message": message}})


def _generate(state: _State, body: dict[str, Any]) -> Any:
    unknown = set(body) - GENERATE_KEYS
    if unknown:
        raise _bad_request(f"unexpected fields {sorted(unknown)}")
    if body.get("stream"):
        raise _bad_request("this fake does not stream")
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
    began = time.perf_counter()
    outputs = []
    for prompt, tokens, one in zip(prompts, prompt_tokens, per_prompt, strict=True):
        stop = one.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        for _ in range(n):  # prompt-major, as the tokenizer manager sends and gathers them
            completion, reason, count = _complete(state, prompt, one.get("max_new_tokens", 128), stop)
            outputs.append(
                {
                    "text": completion,
                    "output_ids": list(range(count)),
                    "meta_info": {
                        "id": uuid.uuid4().hex,
                        "finish_reason": reason,
                        "prompt_tokens": tokens,
                        "completion_tokens": count,
                        "cached_tokens": 0,
                        "e2e_latency": time.perf_counter() - began,
                    },
                }
            )
    with state.lock:
        state.samples += len(outputs)
    return outputs[0] if single and n == 1 else outputs


def _openai(state: _State, body: dict[str, Any], chat: bool) -> dict[str, Any]:
    model = body.get("model")
    if model is not None and model != state.model_path:
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
        "model": state.model_path,
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
        if state.delay_s and path in ("/generate", "/v1/completions", "/v1/chat/completions"):
            time.sleep(state.delay_s)
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
        routes: dict[tuple[str, str], Callable[[], Any]] = {
            ("GET", "/health"): lambda: None,
            ("GET", "/get_model_info"): lambda: {
                "model_path": state.model_path,
                "tokenizer_path": state.model_path,
                "is_generation": True,
                "preferred_sampling_params": None,
                "weight_version": "default",
                "has_image_understanding": False,
                "has_audio_understanding": False,
            },
            ("GET", "/v1/models"): lambda: {
                "object": "list",
                "data": [
                    {
                        "id": state.model_path,
                        "object": "model",
                        "owned_by": "sglang",
                        "root": state.model_path,
                    }
                ],
            },
            ("POST", "/generate"): lambda: _generate(state, _object(body)),
            ("POST", "/v1/completions"): lambda: _openai(state, _object(body), chat=False),
            ("POST", "/v1/chat/completions"): lambda: _openai(state, _object(body), chat=True),
            ("GET", "/_fake/stats"): lambda: {
                "requests": state.requests,
                "samples": state.samples,
                "max_in_flight": state.max_in_flight,
            },
        }
        native = {"/health", "/get_model_info", "/generate"}
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


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise _Error(422, {"detail": "expected a JSON object"})
    return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024
    state: _State


class FakeLLMServer:
    """The fake server in a background thread of this process: `with FakeLLMServer() as server:`."""

    def __init__(
        self,
        model_path: str = "fake-org/Fake-Coder-8B",
        responder: Responder = numbered_responder,
        port: int = 0,
        native: bool = True,
    ) -> None:
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.state = _State(model_path=model_path, responder=responder, native=native)
        # A short poll lets `shutdown` return at once rather than after serve_forever's 0.5 s default.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,), daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def state(self) -> _State:
        return self._server.state

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
