"""The authors' unit-test extraction, reproduced quirk for quirk, and how it compares with ours.

`--extraction strict` (the default, agents/extract.py) keeps a test's one top-level `TestCase`
class and the imports at its top level that can run after the solution. `--extraction reference`
does what CodeRM's preprocess/extract_unit_test.py does, so that a job can be compared with the
paper's numbers test for test:

* exactly one code block (the same patterns as ours), holding exactly one class anywhere in its
  syntax tree (`ast.walk`), with any base or none; a block that does not parse has no class;
* `if __name__ == '__main__':\\n    unittest.main()` is removed in exactly that form, with either
  quote, and `from your_module import NAME` lines only in that single-name form (an optional
  comment after it); `from your_module import a, b` stays, and kills the test when it runs;
* the imports are collected with `ast.walk`: every import anywhere, nested ones too, in
  breadth-first order, one line per name; a relative import loses its dots (`from . import x`
  becomes `from None import x`, `from .m import x` becomes `from m import x`);
* the code kept is the text from the first `\\nclass` on (a class on the very first line is not
  found: `code[-1:]`, the last character, is kept instead), cut before the first `\\ndef` after it,
  where the trailing lines that contain a `#` anywhere are dropped too, class code included;
* a test is those imports, a newline and that text, trailing newlines stripped; duplicates are
  found on that text.

The script then appends four runner lines (a suite of the class, run with `output` and
`locals_dict` names its harness provides); our harness runs the class itself, so they are not kept.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Literal

from agents.extract import (
    Extraction,
    InvalidReason,
    clean_unit_test_code,
    extract_unit_test,
    find_code_blocks,
)
from sandbox.programs import InvalidProgram, expected_test_methods, parse

ExtractionMode = Literal["strict", "reference"]

_MAIN_GUARDS = (
    "if __name__ == '__main__':\n    unittest.main()",
    'if __name__ == "__main__":\n    unittest.main()',
)
# The script's pattern: `\s` matches newlines too, so a comment on the next line can go with it.
_YOUR_MODULE_IMPORT = re.compile(r"^from\s+your_module\s+import\s+\w+(\s+#.*)?$", re.MULTILINE)
# What the script appends to the kept code (its UNITTEST_FORMAT), as the release files hold it.
_RUNNER = re.compile(
    r"\n\nsuite = unittest\.TestLoader\(\)\.loadTestsFromTestCase\(\w+\)\n"
    r"runner = unittest\.TextTestRunner\(stream=output, verbosity=2\)\n"
    r"result = runner\.run\(suite\)\n"
    r"locals_dict\['result'\] = result\s*\Z"
)

Extractor = Callable[[str], Extraction]


def unit_test_extraction(mode: ExtractionMode) -> tuple[Extractor, Extractor]:
    """The extraction of a completion and the check of replayed code, for `--extraction`."""
    if mode == "reference":
        return extract_unit_test_reference, check_unit_test_code_reference
    return extract_unit_test, clean_unit_test_code


def extract_unit_test_reference(completion: str) -> Extraction:
    blocks = find_code_blocks(completion)
    if len(blocks) != 1:
        reason = InvalidReason.SEVERAL_CODE_BLOCKS if blocks else InvalidReason.NO_CODE_BLOCK
        return Extraction(code=None, invalid_reason=reason)
    code = blocks[0]
    tree = _tree(code)
    if tree is None:  # the script's class search finds no class in it
        return Extraction(code=code, invalid_reason=InvalidReason.SYNTAX_ERROR)
    classes = sum(1 for node in ast.walk(tree) if isinstance(node, ast.ClassDef))
    if classes != 1:
        reason = InvalidReason.SEVERAL_CLASSES if classes else InvalidReason.NO_TEST_CLASS
        return Extraction(code=code, invalid_reason=reason)
    for guard in _MAIN_GUARDS:
        code = code.replace(guard, "")
    code = _YOUR_MODULE_IMPORT.sub("", code)
    kept = (_import_lines(code) + "\n" + _from_the_class(code)).rstrip("\n")
    return Extraction(code=kept, test_methods=_test_methods(kept))


def check_unit_test_code_reference(code: str) -> Extraction:
    """Replayed test code, as the reference ran it: CodeRM's release files hold the script's
    output, so the code is taken as it is, without the runner lines the script appended."""
    if not code.strip():
        return Extraction(code=code, invalid_reason=InvalidReason.EMPTY_CODE)
    kept = _RUNNER.sub("", code)
    return Extraction(code=kept, test_methods=_test_methods(kept))


def _tree(code: str) -> ast.Module | None:
    try:
        return parse(code)
    except InvalidProgram:
        return None


def _import_lines(code: str) -> str:
    """Every import of the code, anywhere, one line per name; `import unittest` when the code
    (changed by the removals before) no longer parses."""
    tree = _tree(code)
    if tree is None:
        return "import unittest"
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import | ast.ImportFrom):
            # The script formats `node.module`, which is None for `from . import x`, and ignores the level.
            head = "import" if isinstance(node, ast.Import) else f"from {node.module} import"
            lines += [f"{head} {a.name}" + (f" as {a.asname}" if a.asname else "") for a in node.names]
    return "\n".join(lines)


def _from_the_class(code: str) -> str:
    text = code[code.find("\nclass") :]  # -1 when the class opens the code: its last character
    cut = text.find("\ndef")
    if cut == -1:
        return text
    lines = text[:cut].splitlines()
    # lines[0] is the empty line before `class`, so the loop always stops.
    while "#" in lines[-1]:
        lines.pop()
    return "\n".join(lines)


def _test_methods(code: str) -> int | None:
    """The test methods of the kept code's one top-level class; None when the cut left none that
    can run (our harness then fails the test against every solution, as the script's does)."""
    tree = _tree(code)
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)] if tree is not None else []
    return len(expected_test_methods(classes[0])) if len(classes) == 1 else None


@dataclass(frozen=True)
class ExtractionDisagreements:
    """How many unit tests come out differently under the two extractions.

    A test disagrees when it is valid under one and invalid under the other, or valid under both
    with different programs: other imports (the set of top-level imports, one per name, differs)
    or, with the same imports, other code (the rest differs as a syntax tree: formatting and
    comments do not count).
    """

    compared: int
    valid_only_strict: int
    valid_only_reference: int
    other_imports: int
    other_code: int

    @property
    def total(self) -> int:
        return self.valid_only_strict + self.valid_only_reference + self.other_imports + self.other_code

    def to_json(self) -> dict[str, int]:
        return {
            "compared": self.compared,
            "total": self.total,
            "valid_only_strict": self.valid_only_strict,
            "valid_only_reference": self.valid_only_reference,
            "other_imports": self.other_imports,
            "other_code": self.other_code,
        }

    def summary(self, used: ExtractionMode) -> str:
        return (
            f"extraction: {self.total} of the job's {self.compared} unit tests come out differently "
            f"under --extraction strict and reference (this job used {used}): {self.valid_only_strict} "
            f"valid only in strict, {self.valid_only_reference} valid only in reference, and of those "
            f"valid in both, {self.other_imports} with other imports, {self.other_code} with the same "
            "imports but other code (syntax trees compared: formatting and comments do not count)"
        )


def compare_extractions(samples: Iterable[tuple[str, bool]]) -> ExtractionDisagreements:
    """Both extractions of each (raw text, is replayed code) sample, compared."""
    counts = dict.fromkeys(("valid_only_strict", "valid_only_reference", "other_imports", "other_code"), 0)
    compared = 0
    for raw, is_code in samples:
        compared += 1
        strict, reference = (
            (clean_unit_test_code(raw), check_unit_test_code_reference(raw))
            if is_code
            else (extract_unit_test(raw), extract_unit_test_reference(raw))
        )
        if strict.valid != reference.valid:
            counts["valid_only_strict" if strict.valid else "valid_only_reference"] += 1
        elif strict.valid:
            ours, theirs = _program(strict.code or ""), _program(reference.code or "")
            if ours[0] != theirs[0]:
                counts["other_imports"] += 1
            elif ours[1] != theirs[1]:
                counts["other_code"] += 1
    return ExtractionDisagreements(compared=compared, **counts)


def _program(code: str) -> tuple[frozenset[str], tuple[str, ...]]:
    """A program as the comparison sees it: its top-level imports, one per name, as a set, and
    its other top-level statements as syntax trees; code that does not parse is its text."""
    tree = _tree(code)
    if tree is None:
        return frozenset(), (code,)
    imports: set[str] = set()
    rest = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            imports |= {ast.dump(ast.Import(names=[alias])) for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imports |= {
                ast.dump(ast.ImportFrom(module=node.module, names=[alias], level=node.level))
                for alias in node.names
            }
        else:
            rest.append(ast.dump(node))
    return frozenset(imports), tuple(rest)
