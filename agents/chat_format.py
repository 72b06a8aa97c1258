"""How one user prompt becomes model input, as data (DESIGN §2).

The paper's models are chat models: the prompt is one user turn of the model's chat template.

* `llama3.1`: the Llama-3.1-Instruct template (CodeRM-8B is a Llama-3.1-8B-Instruct fine-tune),
  rendered here as text. With no system message that template still writes a system turn with its
  knowledge-cutoff lines, and it trims the message.
* `llama3`: the Llama-3-Instruct template (the paper's Llama3-8B policy): the user turn only.
* `auto` with SGLang: whichever of the two the served model's name tells (`settle_chat_format`),
  `llama3.1` where it tells neither; an explicit choice that disagrees with the name is warned about.
* `chat`: the server (or the local tokenizer) applies the model's own template to the message:
  `/v1/chat/completions` for the `openai` backend, `apply_chat_template` for `local`.
* `raw`: the prompt as it is, no template.

The rendered templates leave out `<|begin_of_text|>`: SGLang tokenises the text it is sent with the
model's tokenizer, which adds BOS itself, so a BOS in the text would be the second one. The local
backend tokenises rendered text the same way (special tokens added by the tokenizer).
"""

from __future__ import annotations

import re

from orchestrator.core.config import BackendName, ChatFormat
from orchestrator.core.errors import ConfigurationError

# `{user}` is the user message, already trimmed as the Jinja templates' `| trim` does.
CHAT_TEMPLATES: dict[str, str] = {
    "llama3.1": (
        "<|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "llama3": (
        "<|start_header_id|>user<|end_header_id|>\n\n{user}<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
}

# What `auto` means for each backend that sends prompts to a model.
_AUTO: dict[str, ChatFormat] = {"sglang": "llama3.1", "openai": "chat", "local": "chat"}


def resolve_chat_format(backend: BackendName, chat_format: ChatFormat) -> ChatFormat:
    """The concrete format a backend uses; refuses combinations that cannot work."""
    if chat_format == "auto":
        return _AUTO.get(backend, "raw")
    if backend == "sglang" and chat_format == "chat":
        raise ConfigurationError(
            "the sglang backend sends text to /generate, so it cannot use the server's chat template; "
            "use chat format llama3.1, llama3 or raw, or the openai backend (/v1/chat/completions)"
        )
    return chat_format


def chat_format_of_model(model: str) -> ChatFormat | None:
    """The text template a served model's name (or path) tells, where it tells one: `llama3.1` for
    Llama 3.1 and later 3.x models, and CodeRM-8B (a Llama-3.1-8B-Instruct fine-tune); `llama3` for
    Llama 3 itself (the paper's Llama3-8B policy)."""
    name = model.lower()
    if "coderm" in name or re.search(r"llama-?3\.[1-9]", name):
        return "llama3.1"
    if re.search(r"llama-?3(?![.\d])", name):
        return "llama3"
    return None


def settle_chat_format(chosen: ChatFormat, model: str) -> tuple[ChatFormat, str | None]:
    """The text template to send `model` under `chosen`, and a warning where the choice and the
    model's name disagree. `auto` takes the template the name tells, else `llama3.1`; an explicit
    choice stands, warned about when the name tells another."""
    told = chat_format_of_model(model)
    if chosen == "auto":
        if told is None:
            return "llama3.1", (
                f"the served model {model!r} does not tell its chat template; using llama3.1 "
                "(set the chat format if it is another)"
            )
        return told, None
    if told is not None and told != chosen:
        return chosen, f"chat format {chosen} was chosen, but the served model {model!r} looks like {told}"
    return chosen, None


def render_chat(prompt: str, chat_format: ChatFormat) -> str:
    """The text a model is given for `prompt` under a text template (`llama3.1`, `llama3`, `raw`)."""
    if chat_format == "raw":
        return prompt
    if chat_format not in CHAT_TEMPLATES:
        raise ValueError(f"chat format {chat_format!r} is applied by the server or tokenizer, not as text")
    return CHAT_TEMPLATES[chat_format].format(user=prompt.strip())
