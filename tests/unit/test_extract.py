"""Extraction of solutions and unit tests from completions, as the paper's preprocessing does."""

from __future__ import annotations

import pytest

from agents.extract import (
    InvalidReason,
    check_solution_code,
    extract_solution,
    extract_unit_test,
    restore_closing_fence,
)

FENCE = "```"


def completion(*blocks: str, lang: str = "python", prose: str = "Here you go:") -> str:
    parts = [prose]
    for block in blocks:
        parts.append(f"{FENCE}{lang}\n{block}\n{FENCE}")
    parts.append("Hope this helps.")
    return "\n".join(parts)


def test_single_python_block_is_the_solution() -> None:
    result = extract_solution(completion("def f(x):\n    return x + 1"))
    assert result.valid and result.code == "def f(x):\n    return x + 1"
    assert result.code_hash is not None and len(result.code_hash) == 64


def test_bare_block_is_the_fallback_but_only_without_python_blocks() -> None:
    assert extract_solution(completion("def f(): pass", lang="")).code == "def f(): pass"
    text = completion("print(1)", lang="") + "\n" + completion("def f(): pass")
    assert extract_solution(text).code == "def f(): pass"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("just prose, no code", InvalidReason.NO_CODE_BLOCK),
        (completion("a = 1", "b = 2"), InvalidReason.SEVERAL_CODE_BLOCKS),
        (f"{FENCE}python\ndef f(:\n{FENCE}", InvalidReason.SYNTAX_ERROR),
        (f"{FENCE}python\n   \n{FENCE}", InvalidReason.EMPTY_CODE),
        # The paper's pattern wants the fence on its own line: an unterminated block is no block.
        (f"{FENCE}python\ndef f(): pass", InvalidReason.NO_CODE_BLOCK),
    ],
)
def test_invalid_solutions_keep_their_reason(text: str, reason: InvalidReason) -> None:
    result = extract_solution(text)
    assert not result.valid and result.invalid_reason is reason and result.code_hash is None


def test_replayed_code_is_checked_without_fences() -> None:
    assert check_solution_code("def f():\n    return 1\n").valid
    assert check_solution_code("def f(:").invalid_reason is InvalidReason.SYNTAX_ERROR


CODERM_STYLE_TEST = """import unittest
from typing import List
from solution import has_close_elements
from your_module import helper  # the paper's harness drops this too
import math

def has_close_elements(numbers, threshold):
    return True  # a copy of the function that would shadow the solution

class TestHasCloseElements(unittest.TestCase):
    # Test with numbers far apart
    def test_far(self):
        # no two numbers within the threshold
        self.assertFalse(has_close_elements([1.0, 2.0, 3.0], 0.5))

    def test_close(self):
        self.assertTrue(has_close_elements([1.0, 2.8, 3.0], 0.3))

def helper_after():
    pass

if __name__ == "__main__":
    unittest.main()"""


def test_unit_test_keeps_imports_and_the_class_only() -> None:
    result = extract_unit_test(completion(CODERM_STYLE_TEST))
    assert result.valid and result.test_methods == 2
    code = result.code or ""
    assert "import unittest" in code and "from typing import List" in code and "import math" in code
    assert "from solution import" not in code and "from your_module import" not in code
    assert "return True" not in code and "helper_after" not in code and "unittest.main()" not in code
    assert "# no two numbers within the threshold" in code  # comments inside the class survive
    assert code.rstrip().endswith("self.assertTrue(has_close_elements([1.0, 2.8, 3.0], 0.3))")
    compile(code, "<test>", "exec")


def test_decorated_class_keeps_its_decorator() -> None:
    code = "import unittest\n\n@unittest.skipIf(False, 'never')\nclass T(unittest.TestCase):\n    def test_a(self):\n        pass"
    result = extract_unit_test(completion(code))
    assert result.valid and "@unittest.skipIf(False, 'never')" in (result.code or "")


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        ("import unittest\n\ndef test_f():\n    assert True", InvalidReason.NO_TEST_CLASS),
        ("class Helper:\n    pass", InvalidReason.NO_TEST_CLASS),
        (
            "import unittest\nclass A(unittest.TestCase):\n    def test_a(self): pass\n"
            "class B(unittest.TestCase):\n    def test_b(self): pass",
            InvalidReason.SEVERAL_CLASSES,
        ),
        (
            "import unittest\nclass A(unittest.TestCase):\n    class Inner:\n        pass\n    def test_a(self): pass",
            InvalidReason.SEVERAL_CLASSES,
        ),
        ("import unittest\nclass A(unittest.TestCase)\n    pass", InvalidReason.SYNTAX_ERROR),
    ],
)
def test_invalid_unit_tests_keep_their_reason(code: str, reason: InvalidReason) -> None:
    result = extract_unit_test(completion(code))
    assert result.invalid_reason is reason


def test_class_without_test_methods_is_valid_but_flagged() -> None:
    result = extract_unit_test(completion("import unittest\nclass T(unittest.TestCase):\n    pass"))
    assert result.valid and result.test_methods == 0


def test_future_import_is_dropped_since_the_test_follows_the_solution() -> None:
    code = "from __future__ import annotations\nimport unittest\nclass T(unittest.TestCase):\n    def test_a(self): pass"
    result = extract_unit_test(completion(code))
    assert result.valid and "__future__" not in (result.code or "")


@pytest.mark.parametrize("stop", ["\n```\n", "\n```", "```"])
def test_stop_string_that_closed_the_block_is_put_back(stop: str) -> None:
    cut = "Here you go:\n```python\ndef f():\n    return 1" + ("\n" if stop == "```" else "")
    restored = restore_closing_fence(cut, "stop", ["\nclass", stop])
    assert restored == cut + stop
    assert extract_solution(restored).code == "def f():\n    return 1"


def test_completions_that_did_not_stop_inside_a_block_are_left_alone() -> None:
    closed = completion("def f(): pass")
    assert restore_closing_fence(closed, "stop", ["\n```\n"]) == closed  # no block left open
    open_block = "```python\ndef f():"
    assert restore_closing_fence(open_block, "length", ["\n```\n"]) == open_block  # ran out of tokens
    assert restore_closing_fence(open_block, "stop", ["\n\n\n"]) == open_block  # no fence to restore
