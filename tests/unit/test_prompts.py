"""The prompts are the paper's, character for character."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from agents.prompts import (
    CODERM_TEMPLATE,
    POLICY_TEMPLATE,
    PromptTemplates,
    parse_template,
    render_coderm_prompt,
    render_policy_prompt,
)


@pytest.mark.parametrize("benchmark", ["humaneval+", "mbpp+", "livecodebench"])
def test_unit_test_prompts_of_the_benchmark_files_are_our_template(data_dir: Path, benchmark: str) -> None:
    pattern = parse_template(CODERM_TEMPLATE)
    for line in (data_dir / f"input_{benchmark}_ut.jsonl").read_text().splitlines():
        content = json.loads(line)["messages"][0]["content"]
        match = pattern.match(content)
        assert match, content[:200]
        assert CODERM_TEMPLATE.format(**match.groupdict()) == content


@pytest.mark.parametrize("benchmark", ["humaneval+", "mbpp+"])
def test_policy_prompts_of_the_benchmark_files_are_our_template(data_dir: Path, benchmark: str) -> None:
    pattern = parse_template(POLICY_TEMPLATE)
    for line in (data_dir / f"input_{benchmark}_sol.jsonl").read_text().splitlines():
        assert pattern.match(json.loads(line)["messages"][0]["content"])


def test_ready_made_prompts_win_unless_the_job_overrides_the_template() -> None:
    default = PromptTemplates()
    assert render_policy_prompt("q", "ready", default) == "ready"
    assert render_policy_prompt("q", None, default) == POLICY_TEMPLATE.format(question="q")
    custom = PromptTemplates(policy="Solve: {question}", coderm="{question} / {code}")
    assert render_policy_prompt("q", "ready", custom) == "Solve: q"
    assert render_coderm_prompt("q", "c", "ready", custom) == "q / c"


def test_braces_in_the_question_are_kept() -> None:
    assert "{x: 1}" in render_policy_prompt("return {x: 1}", None, PromptTemplates())


@pytest.mark.parametrize("template", ["{question} {solution}", "{question}", "{question"])
def test_bad_coderm_templates_are_refused(template: str) -> None:
    with pytest.raises(ValidationError):
        PromptTemplates(coderm=template)
