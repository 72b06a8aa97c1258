"""Turning completions into code, exactly as the paper's preprocessing does (DESIGN §2).

Solutions: the single ```python fenced block, else the single bare ``` block; zero or several blocks
make the sample invalid. Unit tests: exactly one block holding exactly one class, a
`unittest.TestCase`; the solution's own module imports and the `unittest.main()` runner are dropped.

Every invalid sample keeps its reason, so a run can be audited.
"""

from __future__ import annotations

import ast
import enum
import hashlib
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from sandbox.programs import InvalidProgram, expected_test_methods, parse

# The paper's patterns: a fence must be on its own line, closed on its own line.
_PYTHON_BLOCK = re.compile(r"```python\n(.*?)\n```", re.DOTALL)
_BARE_BLOCK = re.compile(r"```\n(.*?)\n```", re.DOTALL)
_FENCE_LINE = re.compile(r"^```", re.MULTILINE)


class InvalidReason(enum.StrEnum):
    NO_CODE_BLOCK = "no code block"
    SEVERAL_CODE_BLOCKS = "several code blocks"
    EMPTY_CODE = "empty code block"
    SYNTAX_ERROR = "syntax error"
    NO_TEST_CLASS = "no TestCase class"
    SEVERAL_CLASSES = "several classes"


@dataclass(frozen=True)
class Extraction:
    """What a completion yields: code, or the reason it yields none."""

    code: str | None
    invalid_reason: InvalidReason | None = None
    test_methods: int | None = None
    # The code as extracted, where `code` (what runs) was made from it: agents/function_form.py.
    extracted_code: str | None = None

    @property
    def valid(self) -> bool:
        return self.invalid_reason is None

    @property
    def code_hash(self) -> str | None:
        return code_hash(self.code) if self.code is not None and self.valid else None


def code_hash(code: str) -> str:
    return hashlib.sha256(code.encode("utf-8")).hexdigest()


def find_code_blocks(completion: str) -> list[str]:
    blocks = _PYTHON_BLOCK.findall(completion)
    return blocks if blocks else _BARE_BLOCK.findall(completion)


def restore_closing_fence(completion: str, finish_reason: str | None, stop: Sequence[str]) -> str:
    """The completion with the stop string that closed its code block put back.

    Every server cuts the stop string that ended a completion from its text (SGLang, vLLM,
    llama.cpp), so with a stop string that matches the closing fence (`--stop "\n```\n"`) the block
    stays open and no code would be found. A completion that stopped with a block still open gets
    the first stop string that holds a fence back (OpenAI-compatible servers do not say which stop
    string matched); any other is returned as it is.
    """
    if finish_reason != "stop" or len(_FENCE_LINE.findall(completion)) % 2 == 0:
        return completion
    fence = next((s for s in stop if "```" in s), None)
    return completion if fence is None else completion + fence


def _single_block(completion: str) -> str | InvalidReason:
    blocks = find_code_blocks(completion)
    if not blocks:
        return InvalidReason.NO_CODE_BLOCK
    if len(blocks) > 1:
        return InvalidReason.SEVERAL_CODE_BLOCKS
    if not blocks[0].strip():
        return InvalidReason.EMPTY_CODE
    return blocks[0]


def _parse(code: str) -> ast.Module | None:
    """The program's syntax tree, or None when it does not parse: too large, a syntax error, null
    bytes, or nesting deep enough to make the parser raise RecursionError or MemoryError (untrusted
    code must never fail the task that reads it)."""
    try:
        return parse(code)
    except InvalidProgram:
        return None


def extract_solution(completion: str) -> Extraction:
    block = _single_block(completion)
    if isinstance(block, InvalidReason):
        return Extraction(code=None, invalid_reason=block)
    return check_solution_code(block)


def check_solution_code(code: str) -> Extraction:
    """A solution given as code (replay): valid when it parses."""
    if not code.strip():
        return Extraction(code=code, invalid_reason=InvalidReason.EMPTY_CODE)
    if _parse(code) is None:
        return Extraction(code=code, invalid_reason=InvalidReason.SYNTAX_ERROR)
    return Extraction(code=code)


def extract_unit_test(completion: str) -> Extraction:
    block = _single_block(completion)
    if isinstance(block, InvalidReason):
        return Extraction(code=None, invalid_reason=block)
    return clean_unit_test_code(block)


def clean_unit_test_code(code: str) -> Extraction:
    """Reduce a unit-test program to its imports and its one TestCase class.

    The paper keeps the imports and the text from the class on, cutting at the next top-level
    function; we keep the imports and the class itself, which is the same for the tests CodeRM
    writes, and also guarantees that nothing else the test defines (a copy of the function under
    test, a runner) can shadow the solution or run on its own.
    """
    tree = _parse(code)
    if tree is None:
        return Extraction(code=code, invalid_reason=InvalidReason.SYNTAX_ERROR)
    classes = [node for node in ast.walk(tree) if isinstance(node, ast.ClassDef)]
    if not classes:
        return Extraction(code=code, invalid_reason=InvalidReason.NO_TEST_CLASS)
    if len(classes) > 1:
        return Extraction(code=code, invalid_reason=InvalidReason.SEVERAL_CLASSES)
    test_class = classes[0]
    if test_class not in tree.body or not any(_is_test_case_base(b) for b in test_class.bases):
        return Extraction(code=code, invalid_reason=InvalidReason.NO_TEST_CLASS)

    lines = code.splitlines()
    kept = [_source(lines, node) for node in tree.body if _is_kept_import(node)]
    kept.append(_source(lines, test_class))
    methods = len(expected_test_methods(test_class))
    return Extraction(code="\n".join(kept[:-1]) + "\n\n\n" + kept[-1] + "\n", test_methods=methods)


def _is_test_case_base(base: ast.expr) -> bool:
    name = base.attr if isinstance(base, ast.Attribute) else getattr(base, "id", "")
    return name.endswith("TestCase")


def _is_kept_import(node: ast.stmt) -> bool:
    if isinstance(node, ast.Import):
        return True
    if isinstance(node, ast.ImportFrom):
        # `from solution import f` / `from your_module import f` name the code under test, which
        # the harness puts in the same namespace; only the standard library is imported for real.
        # `from __future__` must open a file, and the test comes after the solution.
        module = (node.module or "").split(".")[0]
        return node.level == 0 and module in sys.stdlib_module_names and module != "__future__"
    return False


def _source(lines: list[str], node: ast.stmt) -> str:
    first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
    end = node.end_lineno or node.lineno
    return "\n".join(lines[first - 1 : end])
