"""The two prompts of the method, as data (DESIGN §2).

The paper's wording is reproduced exactly (including its "it's"); a job may override either template
through `JobConfig.prompts`. Templates are `str.format` strings with named fields only:
`{question}` for the policy, `{question}` and `{code}` for CodeRM.
"""

from __future__ import annotations

import re
import string

from pydantic import BaseModel, ConfigDict, field_validator

POLICY_TEMPLATE = (
    "Please provide a self-contained Python script that solves the following problem in a markdown "
    "code block:\n```python\n{question}\n```\n"
)

CODERM_TEMPLATE = (
    "Below is a question and it's corresponding code answer. Please write test cases to check the "
    "correctness of the code answer. You need to use the unittest library in Python and create a test "
    "class for testing.\n\n### question\n{question}\n\n### code solution\n{code}\n\nPlease add detailed "
    "comments to the test cases you write. You do not need to test the function's ability to throw "
    "exceptions.\n"
)

_ALLOWED_FIELDS = {"policy": {"question"}, "coderm": {"question", "code"}}


def template_fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}


def parse_template(template: str) -> re.Pattern[str]:
    """A pattern that matches a rendered `template` and captures its fields by name."""
    pattern = ""
    for literal, name, _, _ in string.Formatter().parse(template):
        pattern += re.escape(literal)
        if name is not None:
            pattern += f"(?P<{name}>.*)"
    return re.compile(pattern + r"\Z", re.DOTALL)


class PromptTemplates(BaseModel):
    """Per-job prompt overrides. `None` means the paper's template (or the problem's ready-made prompt)."""

    model_config = ConfigDict(extra="forbid")

    policy: str | None = None
    coderm: str | None = None

    @field_validator("policy", "coderm")
    @classmethod
    def _known_fields_only(cls, value: str | None, info: object) -> str | None:
        if value is None:
            return None
        agent = getattr(info, "field_name", "")
        try:
            fields = template_fields(value)
        except ValueError as exc:
            raise ValueError(f"not a valid format string: {exc}") from exc
        allowed = _ALLOWED_FIELDS[agent]
        if not fields <= allowed or (agent == "coderm" and "code" not in fields):
            raise ValueError(
                f"may use only {sorted(allowed)} as fields (CodeRM needs {{code}}), found {sorted(fields)}"
            )
        return value


def render_policy_prompt(question: str, ready_made: str | None, templates: PromptTemplates) -> str:
    """The user message for the policy model."""
    if templates.policy is None and ready_made is not None:
        return ready_made
    return (templates.policy or POLICY_TEMPLATE).format(question=question)


def render_coderm_prompt(question: str, code: str, ready_made: str | None, templates: PromptTemplates) -> str:
    """The user message for CodeRM: the question and ONE solution, never one prompt per candidate."""
    if templates.coderm is None and ready_made is not None:
        return ready_made
    return (templates.coderm or CODERM_TEMPLATE).format(question=question, code=code)
