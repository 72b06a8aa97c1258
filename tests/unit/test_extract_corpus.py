"""Extraction on a corpus of real-looking completions, as Llama-3 policies and CodeRM write them.

tests/data/coderm_style_completions.jsonl: one completion per line with what extraction must make of
it: valid or the reason it is not, text the code must keep or lose, and for unit tests the number
of test methods and (where given) a right solution that the extracted tests must pass.
"""

from __future__ import annotations

import ast
import io
import json
import unittest
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agents.extract import (
    Extraction,
    InvalidReason,
    clean_unit_test_code,
    extract_solution,
    extract_unit_test,
)

CORPUS: list[dict[str, Any]] = [
    json.loads(line)
    for line in (Path(__file__).parent.parent / "data" / "coderm_style_completions.jsonl")
    .read_text()
    .splitlines()
]
EXTRACT: dict[str, Callable[[str], Extraction]] = {
    "solution": extract_solution,
    "unit_test": extract_unit_test,
    "replayed_unit_test": clean_unit_test_code,  # CodeRM's released tests are code already
}


@pytest.mark.parametrize("case", CORPUS, ids=[case["id"] for case in CORPUS])
def test_completion_yields_the_expected_code_or_reason(case: dict[str, Any]) -> None:
    result = EXTRACT[case["kind"]](case["completion"])
    assert result.invalid_reason == case["reason"]
    assert result.valid is case["valid"]
    if not result.valid:
        assert result.code_hash is None
        return
    code = result.code or ""
    compile(code, case["id"], "exec")
    for text in case["kept"]:
        assert text in code
    for text in case["dropped"]:
        assert text not in code
    if case["test_methods"] is not None:
        assert result.test_methods == case["test_methods"]


RUNNABLE = [case for case in CORPUS if case["solution"] is not None]


@pytest.mark.parametrize("case", RUNNABLE, ids=[case["id"] for case in RUNNABLE])
def test_extracted_tests_pass_a_right_solution(case: dict[str, Any]) -> None:
    """Program = solution + "\\n\\n" + test, as the harness runs it; nothing needed was cut away."""
    code = EXTRACT[case["kind"]](case["completion"]).code or ""
    program = case["solution"] + "\n\n" + code
    namespace: dict[str, Any] = {"__name__": "solution"}
    exec(compile(program, case["id"], "exec"), namespace)  # our own corpus, not model output
    (name,) = [node.name for node in ast.parse(code).body if isinstance(node, ast.ClassDef)]
    suite = unittest.defaultTestLoader.loadTestsFromTestCase(namespace[name])
    outcome = unittest.TextTestRunner(stream=io.StringIO()).run(suite)
    assert outcome.wasSuccessful() and outcome.testsRun == case["test_methods"]


def test_the_corpus_covers_every_reason() -> None:
    assert {case["reason"] for case in CORPUS} == {None} | {reason.value for reason in InvalidReason}
