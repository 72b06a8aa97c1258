"""LiveCodeBench answers in the form CodeRM's unit tests call: `class Solution` to functions.

LiveCodeBench's policy prompts give LeetCode starter code (`class Solution:` with one method), but
its CodeRM unit-test prompts show the reference as a top-level function, so CodeRM's tests call
`maximumSetSize(...)`, not `Solution().maximumSetSize(...)`; the paper's authors ran their
solutions in that function form (their `sol_*_func.jsonl` files). Run as written, every such answer
fails every test (NameError). `to_function_form` makes the program the tests can call, mechanically:

    <LiveCodeBench's import preamble>
    <the answer, unchanged>

    def maximumSetSize(*args, **kwargs):
        return Solution().maximumSetSize(*args, **kwargs)

When: for each name the tests call (`entry_names`: the problem's entry point, else the top-level
functions of its reference code that no other of them uses) that the answer does not bind at its
top level but its top-level `class Solution` defines as a method. Nothing else is touched: a program
that already defines the functions, has no `Solution` class, or does not parse comes back as it
is, and so does every solution of a problem that names no function (no entry point, no top-level
function in its reference).

The preamble is the one LiveCodeBench's runner (`lcb_runner/evaluation/testing_util.py`,
`import_string`) puts before every solution, since LeetCode answers use `List`, `Counter`, `heapq`
and the like without importing them; it goes after a docstring and `from __future__` imports,
which must come first. Each call makes a fresh `Solution()`, as LeetCode runs each test case, so
no state an instance keeps leaks from one call into the next; `*args, **kwargs` pass positional and
keyword arguments through and keep the method's own defaults.

Pure: no I/O, nothing executed.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Sequence
from dataclasses import dataclass

from agents.extract import Extraction
from sandbox.programs import InvalidProgram, compile_program, parse

CLASS_NAME = "Solution"

# LiveCodeBench's import preamble: these modules star-imported, in this order (so that `builtins`
# puts back what `math.pow` or `io.open` hid), then imported by name, then a deeper recursion limit.
_STAR_IMPORTED = (
    "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
    "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing",
)  # fmt: skip
_IMPORTED = tuple(m for m in _STAR_IMPORTED if m not in ("builtins", "typing"))
PREAMBLE = (
    "".join(f"from {module} import *\n" for module in _STAR_IMPORTED)
    + "".join(f"import {module}\n" for module in _IMPORTED)
    + "sys.setrecursionlimit(50000)\n"
)

_WRAPPER = "def {name}(*args, **kwargs):\n    return " + CLASS_NAME + "().{name}(*args, **kwargs)\n"
_HEADER = "# coderm: the functions the unit tests call, from class Solution (LiveCodeBench's form)\n"
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")
_TOP_LEVEL_DEF = re.compile(r"^(?:async\s+)?def\s+([A-Za-z_]\w*)\s*\(", re.MULTILINE)


@dataclass(frozen=True)
class FunctionForm:
    """A program to run, and the functions added to it (none: it is the program as written)."""

    code: str
    wrapped: tuple[str, ...] = ()

    @property
    def converted(self) -> bool:
        return bool(self.wrapped)


def entry_names(reference_code: str | None, entry_point: str | None = None) -> tuple[str, ...]:
    """The functions a problem's unit tests call.

    Its entry point where it names one; else the top-level functions of its reference code that no
    other of its top-level functions uses, by name or as `self.<name>` (a reference's helpers are
    not what the tests call). A reference that does not parse (3 of LiveCodeBench's 168 in CodeRM's
    prompts) gives the names of its unindented `def` lines.
    """
    if entry_point:
        return (entry_point,)
    if not reference_code:
        return ()
    try:
        tree = parse(reference_code, "reference")
    except InvalidProgram:
        return tuple(dict.fromkeys(_TOP_LEVEL_DEF.findall(reference_code)))
    functions = [n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
    used: set[str] = set()
    for function in functions:
        used |= _names_used(function) - {function.name}
    entries = tuple(dict.fromkeys(f.name for f in functions if f.name not in used))
    # Functions that all use each other: the first, where CodeRM's prompts put the starter's.
    return entries or tuple(f.name for f in functions[:1])


def _names_used(function: ast.FunctionDef | ast.AsyncFunctionDef) -> set[str]:
    """Names a function reads, and the `self.name` it reads: a reference made from a class's
    methods (two of LiveCodeBench's) still calls its helpers as `self.find(...)`."""
    names = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "self":
            names.add(node.attr)
    return names


def to_function_form(code: str, names: Sequence[str]) -> FunctionForm:
    """`code` with module-level functions `names` delegating to `Solution()`, where it needs them.

    Only the names the program lacks at its top level and its top-level `class Solution` defines
    are added; with none, `code` comes back as it is. So does a program that does not parse, or
    whose conversion would not compile (as written, it keeps its own reason to fail).
    """
    try:
        tree = parse(code, "solution")
    except InvalidProgram:
        return FunctionForm(code)
    classes = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == CLASS_NAME]
    if not classes:
        return FunctionForm(code)
    methods = {n.name for n in classes[-1].body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)}
    bound = _top_level_names(tree)
    wrapped = tuple(n for n in dict.fromkeys(names) if n in methods and n not in bound)
    if not wrapped:
        return FunctionForm(code)

    head, body = _split_after_future_imports(code, tree)
    wrappers = "\n\n".join(_WRAPPER.format(name=name) for name in wrapped)
    converted = f"{head}{PREAMBLE}\n{body.rstrip()}\n\n\n{_HEADER}{wrappers}"
    try:  # compiled, not only parsed: a misplaced `from __future__` is the compiler's error
        compile_program(converted, "solution")
    except InvalidProgram:
        return FunctionForm(code)
    return FunctionForm(converted, wrapped)


def in_function_form(extraction: Extraction, names: Sequence[str]) -> Extraction:
    """A valid extracted solution as it will run: in function form where it needs it, with the
    code as extracted kept beside it (`extracted_code`); anything else as it is."""
    if not extraction.valid or extraction.code is None or not names:
        return extraction
    form = to_function_form(extraction.code, names)
    if not form.converted:
        return extraction
    return dataclasses.replace(extraction, code=form.code, extracted_code=extraction.code)


def _top_level_names(tree: ast.Module) -> set[str]:
    """Names the module's own top-level statements bind (not those inside `if`, `for` or `try`)."""
    names: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                names |= {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}
    return names


def _split_after_future_imports(code: str, tree: ast.Module) -> tuple[str, str]:
    """(the lines up to the module docstring and `from __future__` imports, the rest)."""
    end = 0
    for position, node in enumerate(tree.body):
        docstring = (
            position == 0
            and isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        )
        if not (docstring or (isinstance(node, ast.ImportFrom) and node.module == "__future__")):
            break
        end = node.end_lineno or node.lineno
    lines = _LINE.findall(code)  # as the parser counts lines: not str.splitlines' form feeds
    head = "".join(lines[:end])
    if head and not head.endswith("\n"):
        head += "\n"
    return head, "".join(lines[end:])
