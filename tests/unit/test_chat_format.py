"""Chat templates as text: the Llama templates exactly, and never a BOS of our own."""

from __future__ import annotations

import pytest

from agents.chat_format import chat_format_of_model, render_chat, resolve_chat_format, settle_chat_format
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


@pytest.mark.parametrize(
    ("model", "told"),
    [
        ("meta-llama/Meta-Llama-3-8B-Instruct", "llama3"),
        ("/models/llama3-8b-instruct", "llama3"),
        ("meta-llama/Llama-3.1-8B-Instruct", "llama3.1"),
        ("meta-llama/Meta-Llama-3.1-70B-Instruct", "llama3.1"),
        ("KAKA22/CodeRM-8B", "llama3.1"),
        ("Qwen/Qwen2.5-Coder-7B-Instruct", None),
    ],
)
def test_a_served_models_name_tells_its_template(model: str, told: str | None) -> None:
    assert chat_format_of_model(model) == told


def test_auto_follows_the_served_model_and_an_explicit_choice_that_disagrees_is_warned_about() -> None:
    assert settle_chat_format("auto", "meta-llama/Meta-Llama-3-8B-Instruct") == ("llama3", None)
    assert settle_chat_format("auto", "KAKA22/CodeRM-8B") == ("llama3.1", None)
    chosen, warning = settle_chat_format("auto", "some-model")
    assert chosen == "llama3.1" and warning is not None and "does not tell" in warning
    chosen, warning = settle_chat_format("llama3.1", "meta-llama/Meta-Llama-3-8B-Instruct")
    assert chosen == "llama3.1" and warning is not None and "looks like llama3" in warning
    assert settle_chat_format("raw", "some-model") == ("raw", None)
