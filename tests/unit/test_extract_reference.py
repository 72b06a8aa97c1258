"""The authors' unit-test extraction (`--extraction reference`), one quirk per test.

Every expected text below is what CodeRM's preprocess/extract_unit_test.py keeps of the completion
(its `remove_func` output, before it appends its runner lines), checked against that script.
"""

from __future__ import annotations

from agents.extract import InvalidReason, clean_unit_test_code, extract_unit_test
from agents.extract_reference import (
    ExtractionDisagreements,
    check_unit_test_code_reference,
    compare_extractions,
    extract_unit_test_reference,
    unit_test_extraction,
)

FENCE = "```"


def completion(*blocks: str, lang: str = "python") -> str:
    return "Here are the tests:\n" + "\n".join(f"{FENCE}{lang}\n{b}\n{FENCE}" for b in blocks) + "\nDone."


def reference(code: str) -> str | None:
    result = extract_unit_test_reference(completion(code))
    assert result.valid, result.invalid_reason
    return result.code


def test_every_import_anywhere_is_kept_one_line_per_name_top_level_first() -> None:
    code = (
        "import unittest, math as m\n"
        "from collections import Counter, deque\n"
        "\n"
        "class TestX(unittest.TestCase):\n"
        "    def test_a(self):\n"
        "        import os\n"
        "        from itertools import chain as ch\n"
        "        self.assertTrue(os and ch and m and Counter and deque)"
    )
    assert reference(code) == (
        "import unittest\nimport math as m\nfrom collections import Counter\nfrom collections import deque\n"
        "import os\nfrom itertools import chain as ch\n"
        "\nclass TestX(unittest.TestCase):\n"
        "    def test_a(self):\n"
        "        import os\n"
        "        from itertools import chain as ch\n"
        "        self.assertTrue(os and ch and m and Counter and deque)"
    )


def test_a_relative_import_loses_its_dots() -> None:
    code = "import unittest\nfrom . import helpers\nfrom .tools import f\n\nclass T(unittest.TestCase):\n    pass"
    assert reference(code) == (
        "import unittest\nfrom None import helpers\nfrom tools import f\n\nclass T(unittest.TestCase):\n    pass"
    )


def test_only_the_single_name_your_module_import_is_removed() -> None:
    code = (
        "import unittest\n"
        "from your_module import add\n"
        "from your_module import mul  # the function under test\n"
        "from your_module import sub, div\n"
        "from solution import neg\n"
        "\nclass T(unittest.TestCase):\n    pass"
    )
    assert reference(code) == (
        "import unittest\nfrom your_module import sub\nfrom your_module import div\nfrom solution import neg\n"
        "\nclass T(unittest.TestCase):\n    pass"
    )
    # Ours drops every import of the code under test.
    ours = extract_unit_test(completion(code)).code or ""
    assert "your_module" not in ours and "solution" not in ours


def test_a_class_on_the_first_line_keeps_only_the_last_character() -> None:
    # `code.find('\nclass')` is -1 there, and `code[-1:]` is what is left: the class is lost.
    result = extract_unit_test_reference(
        completion("class T(unittest.TestCase):\n    def test_a(self):\n        f()")
    )
    assert result.valid and result.code == "\n)" and result.test_methods is None


def test_the_text_is_cut_at_the_next_def_and_trailing_lines_with_a_hash_go() -> None:
    code = (
        "import unittest\n"
        "\n"
        "class T(unittest.TestCase):\n"
        "    def test_a(self):\n"
        "        self.assertEqual(add(1, 2), 3)\n"
        "    def test_b(self):\n"
        "        self.assertEqual(add(2, 2), 4)  # two and two\n"
        "# a helper\n"
        "def add(a, b):\n"
        "    return a + b\n"
        "\n"
        "print('after')"
    )
    # The last assertion goes with the comments, since it carries one too.
    assert reference(code) == (
        "import unittest\n\nclass T(unittest.TestCase):\n"
        "    def test_a(self):\n        self.assertEqual(add(1, 2), 3)\n    def test_b(self):"
    )


def test_without_a_def_after_the_class_everything_after_it_stays() -> None:
    code = "import unittest\n\nclass T(unittest.TestCase):\n    pass\n\nprint('after')  # shown\n"
    assert (
        reference(code)
        == "import unittest\n\nclass T(unittest.TestCase):\n    pass\n\nprint('after')  # shown"
    )


def test_the_main_guard_is_removed_in_its_two_exact_forms_only() -> None:
    body = "import unittest\n\nclass T(unittest.TestCase):\n    def test_a(self):\n        pass\n\n"
    for guard in (
        "if __name__ == '__main__':\n    unittest.main()",
        'if __name__ == "__main__":\n    unittest.main()',
    ):
        assert reference(body + guard) == body.rstrip("\n")
    kept = "if __name__ == '__main__':\n    unittest.main(argv=[''], exit=False)"
    assert reference(body + kept) == body + kept


def test_exactly_one_class_anywhere_with_any_base() -> None:
    plain = extract_unit_test_reference(
        completion("import unittest\n\nclass T:\n    def test_a(self):\n        pass")
    )
    assert plain.valid and plain.test_methods == 1
    assert not extract_unit_test(
        completion("import unittest\n\nclass T:\n    def test_a(self):\n        pass")
    ).valid
    nested = "import unittest\n\nclass T(unittest.TestCase):\n    class Inner:\n        pass\n    def test_a(self):\n        pass"
    assert extract_unit_test_reference(completion(nested)).invalid_reason is InvalidReason.SEVERAL_CLASSES
    assert (
        extract_unit_test_reference(completion("import unittest")).invalid_reason
        is InvalidReason.NO_TEST_CLASS
    )
    assert extract_unit_test_reference(completion("class T(:")).invalid_reason is InvalidReason.SYNTAX_ERROR


def test_exactly_one_code_block() -> None:
    test = "import unittest\n\nclass T(unittest.TestCase):\n    pass"
    assert (
        extract_unit_test_reference(completion(test, test)).invalid_reason
        is InvalidReason.SEVERAL_CODE_BLOCKS
    )
    assert extract_unit_test_reference("no code").invalid_reason is InvalidReason.NO_CODE_BLOCK
    assert reference(test) == test
    assert extract_unit_test_reference(completion(test, lang="")).code == test  # the bare fence as fallback


def test_duplicates_are_found_on_the_kept_text() -> None:
    test = "import unittest\n\nclass T(unittest.TestCase):\n    def test_a(self):\n        pass\n"
    one = extract_unit_test_reference(completion(test + "def helper():\n    return 1"))
    other = extract_unit_test_reference(
        "Other prose.\n" + completion(test + "# note\ndef other():\n    pass")
    )
    assert one.code == other.code and one.code_hash == other.code_hash is not None


def test_replayed_code_is_taken_as_the_reference_ran_it_without_its_runner() -> None:
    """A CodeRM release file holds the script's output: kept code, then its four runner lines."""
    kept = "import unittest\nfrom your_module import sub\n\nclass T(unittest.TestCase):\n    def test_a(self):\n        pass"
    released = (
        kept + "\n\nsuite = unittest.TestLoader().loadTestsFromTestCase(T)\n"
        "runner = unittest.TextTestRunner(stream=output, verbosity=2)\n"
        "result = runner.run(suite)\nlocals_dict['result'] = result\n"
    )
    result = check_unit_test_code_reference(released)
    assert result.valid and result.code == kept and result.test_methods == 1
    assert check_unit_test_code_reference(kept).code == kept
    assert check_unit_test_code_reference(" \n").invalid_reason is InvalidReason.EMPTY_CODE


def test_the_mode_picks_the_extraction() -> None:
    assert unit_test_extraction("strict") == (extract_unit_test, clean_unit_test_code)
    assert unit_test_extraction("reference") == (extract_unit_test_reference, check_unit_test_code_reference)


def test_disagreements_are_counted_by_kind() -> None:
    same = "import unittest\n\n\nclass T(unittest.TestCase):\n    def test_a(self):\n        pass\n"
    other_imports = "import unittest\nfrom solution import f\n\n\nclass T(unittest.TestCase):\n    pass\n"
    other_code = "import unittest\n\n\nclass T(unittest.TestCase):\n    pass\n\nprint('after')\n"
    plain_class = "import unittest\n\nclass T:\n    def test_a(self):\n        pass"
    counted = compare_extractions(
        [
            (completion(same), False),
            (completion("# formatting and comments do not count\n" + same.replace("\n\n\n", "\n")), False),
            (completion(other_imports), False),
            (completion(other_code), False),
            (completion(plain_class), False),
            ("no code", False),  # invalid in both
            (same, True),  # replayed code
            ("from solution import f\n" + same, True),
        ]
    )
    assert counted == ExtractionDisagreements(
        compared=8, valid_only_strict=0, valid_only_reference=1, other_imports=2, other_code=1
    )
    assert counted.total == 4
    assert counted.to_json() == {
        "compared": 8,
        "total": 4,
        "valid_only_strict": 0,
        "valid_only_reference": 1,
        "other_imports": 2,
        "other_code": 1,
    }
