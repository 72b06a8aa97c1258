"""Checks request bodies with SGLang's own request types; run by test_sglang_contract.py.

Runs in a process of its own, with the `sglang` wheel (installed without its dependencies) and a few
small packages it imports on `PYTHONPATH`, over the project's venv (torch, transformers, pydantic).
Reads `{"generate": [body], "tokenize": [body], "completions": [body], "chat": [body]}` on stdin and
writes the same keys with, per body, null or SGLang's words refusing it.

What a `/generate` body goes through here is what SGLang 0.5 does to it before tokenizing
(`http_server.py::generate_request`, `tokenizer_manager.py`): the JSON contract that both its Python
and its Rust HTTP server apply (`sglang.api.v1.api_types.GenerateRequest`), FastAPI's parse into
the `GenerateReqInput` dataclass, `normalize_batch_and_arguments()`, and for every request it makes
of the batch `SamplingParams(**params)`, `.normalize(tokenizer)` and `.verify(vocab_size)`. The OpenAI-style
bodies go through the pydantic models of its `/v1/tokenize`, `/v1/completions` and
`/v1/chat/completions`.

Packages that need a GPU or are not installed (triton, tvm_ffi, torchvision, IPython, ...) are
stubbed: importing them gives modules whose every attribute is an inert stand-in. None of them takes
part in the checks above, which are plain Python.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import sys
import types
from collections.abc import Callable
from typing import Any

VOCAB_SIZE = 128256  # Llama 3's


class ByteTokenizer:
    """What `SamplingParams.normalize` asks of the server's tokenizer: the length of a stop string's
    tokens (bytes here; never fewer than a real tokenizer's tokens)."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode())


# Before any stub exists: torch remembers, on first asking, that triton is absent, so a stubbed
# triton is never taken for the real one by torch's compiler.
import torch._inductor.compile_fx  # noqa: E402, F401


class _StandInType(type):
    """Any attribute is the stand-in itself; calling it returns it, or, as a decorator, what it
    decorates; it iterates as empty and is false."""

    def __getattr__(cls, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return cls

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        if len(args) == 1 and not kwargs and callable(args[0]):
            return args[0]
        return cls

    def __iter__(cls) -> Any:
        return iter(())

    def __bool__(cls) -> bool:
        return False


class StandIn(metaclass=_StandInType):
    pass


class _StubModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return StandIn


class _Stubs(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds, after every real finder failed, a stub for a package named in `packages`."""

    def __init__(self) -> None:
        self.packages: set[str] = set()

    def find_spec(
        self, fullname: str, path: Any, target: Any = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname.split(".")[0] in self.packages:
            return importlib.machinery.ModuleSpec(fullname, self, is_package=True)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        module = _StubModule(spec.name)
        module.__path__ = []
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        pass


def import_sglang() -> types.SimpleNamespace:
    """SGLang's request types, stubbing each missing package as its import fails."""
    stubs = _Stubs()
    sys.meta_path.append(stubs)
    for _ in range(50):
        try:
            from sglang.api.v1.api_types import GenerateRequest
            from sglang.srt.entrypoints.openai.protocol import (
                ChatCompletionRequest,
                CompletionRequest,
                TokenizeRequest,
            )
            from sglang.srt.managers.io_struct import GenerateReqInput
            from sglang.srt.sampling.sampling_params import SamplingParams
        except ModuleNotFoundError as exc:
            missing = (exc.name or "").split(".")[0]
            if not missing or missing == "sglang" or missing in stubs.packages:
                raise
            stubs.packages.add(missing)
            for name in [m for m in sys.modules if m.split(".")[0] == "sglang"]:
                del sys.modules[name]  # half-imported modules would keep what they failed to bind
            continue
        print(f"stubbed: {', '.join(sorted(stubs.packages))}", file=sys.stderr)
        return types.SimpleNamespace(
            GenerateRequest=GenerateRequest,
            GenerateReqInput=GenerateReqInput,
            SamplingParams=SamplingParams,
            TokenizeRequest=TokenizeRequest,
            CompletionRequest=CompletionRequest,
            ChatCompletionRequest=ChatCompletionRequest,
        )
    raise RuntimeError(f"SGLang still does not import with {sorted(stubs.packages)} stubbed")


def checker(sglang: types.SimpleNamespace) -> dict[str, Callable[[Any], None]]:
    from pydantic import TypeAdapter

    parse_generate = TypeAdapter(sglang.GenerateReqInput)

    def generate(body: Any) -> None:
        sglang.GenerateRequest.from_json_value(body)  # the contract of both HTTP servers
        request = parse_generate.validate_python(body)  # FastAPI's parse of the route's argument
        request.normalize_batch_and_arguments()
        items = request.batch_size * request.parallel_sample_num if not request.is_single else 1
        for i in range(items):
            item = request if request.is_single else request[i]
            params = sglang.SamplingParams(**(item.sampling_params or {}))
            params.normalize(ByteTokenizer())
            params.verify(VOCAB_SIZE)

    return {
        "generate": generate,
        "tokenize": sglang.TokenizeRequest.model_validate,
        "completions": sglang.CompletionRequest.model_validate,
        "chat": sglang.ChatCompletionRequest.model_validate,
    }


def main() -> None:
    bodies = json.load(sys.stdin)
    checks = checker(import_sglang())
    verdicts: dict[str, list[str | None]] = {}
    for kind, items in bodies.items():
        verdicts[kind] = []
        for body in items:
            try:
                checks[kind](body)
                verdicts[kind].append(None)
            except Exception as exc:  # SGLang's refusal, whatever its type
                verdicts[kind].append(f"{type(exc).__name__}: {exc}")
    json.dump(verdicts, sys.stdout)


if __name__ == "__main__":
    main()
