"""Chat templates as text: the Llama templates exactly, and never a BOS of our own."""

from __future__ import annotations

import pytest

from agents.chat_format import render_chat, resolve_chat_format
from orchestrator.core.errors import ConfigurationError

LLAMA31 = (
    "<|start_header_id|>system<|end_header_id|>\n\n"
    "Cutting Knowledge Date: December 2023\n"
    "Today Date: 26 Jul 2024\n\n"
    "<|eot_id|><|start_header_id|>user<|end_header_id|>\n\n"
    "Write f().<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
)


def test_llama31_template_is_what_the_jinja_template_renders_minus_bos() -> None:
    # Llama-3.1-Instruct's template with one user message, no system message and no tools; its
    # `| trim` drops the whitespace around the message.
    assert render_chat("\n Write f().\n\n", "llama3.1") == LLAMA31


@pytest.mark.parametrize("chat_format", ["llama3.1", "llama3"])
def test_text_templates_start_at_the_first_header_so_the_tokenizer_adds_the_only_bos(
    chat_format: str,
) -> None:
    text = render_chat("Write f() using {braces}.", chat_format)  # type: ignore[arg-type]
    assert text.startswith("<|start_header_id|>") and "<|begin_of_text|>" not in text
    assert "Write f() using {braces}.<|eot_id|>" in text
    assert text.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_raw_is_the_prompt_unchanged() -> None:
    assert render_chat(" as is \n", "raw") == " as is \n"


@pytest.mark.parametrize(
    ("backend", "chat_format", "resolved"),
    [
        ("sglang", "auto", "llama3.1"),
        ("openai", "auto", "chat"),
        ("local", "auto", "chat"),
        ("openai", "llama3", "llama3"),
        ("sglang", "raw", "raw"),
    ],
)
def test_auto_picks_per_backend(backend: str, chat_format: str, resolved: str) -> None:
    assert resolve_chat_format(backend, chat_format) == resolved  # type: ignore[arg-type]


def test_server_side_chat_is_refused_for_generate() -> None:
    with pytest.raises(ConfigurationError, match="openai backend"):
        resolve_chat_format("sglang", "chat")
