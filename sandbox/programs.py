"""Reading untrusted programs without running them: parse, compile, and find a test's methods.

Standard library only: the jail imports this module too. Untrusted source is bounded in size, and
any exception while parsing or compiling it (a RecursionError on deep nesting, a MemoryError on a
parser stack overflow, a SyntaxError, a ValueError on null bytes) makes the program invalid with a
reason; it never escapes to the caller.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from types import CodeType

# Far above anything a model writes in 2,048 tokens; bounds what parsing may cost.
MAX_PROGRAM_BYTES = 256 * 1024
TEST_METHOD_PREFIX = "test"  # unittest.TestLoader.testMethodPrefix


class InvalidProgram(Exception):
    """The program cannot run: the message says why."""


def parse(code: str, what: str = "program") -> ast.Module:
    """The program's syntax tree; InvalidProgram when it is too large or does not parse."""
    if len(code) > MAX_PROGRAM_BYTES or len(code.encode("utf-8", "surrogatepass")) > MAX_PROGRAM_BYTES:
        raise InvalidProgram(f"the {what} is larger than {MAX_PROGRAM_BYTES // 1024} KiB")
    try:
        return ast.parse(code)
    except Exception as exc:  # noqa: BLE001 - whatever the parser raises, the program is invalid
        raise InvalidProgram(_reason(what, "parsing", exc)) from None


def compile_program(code: str, filename: str, what: str = "program") -> CodeType:
    """The program compiled; InvalidProgram when it is too large or does not compile."""
    if len(code) > MAX_PROGRAM_BYTES or len(code.encode("utf-8", "surrogatepass")) > MAX_PROGRAM_BYTES:
        raise InvalidProgram(f"the {what} is larger than {MAX_PROGRAM_BYTES // 1024} KiB")
    try:
        return compile(code, filename, "exec", dont_inherit=True)
    except Exception as exc:  # noqa: BLE001
        raise InvalidProgram(_reason(what, "compiling", exc)) from None


def _reason(what: str, doing: str, exc: Exception) -> str:
    line = getattr(exc, "lineno", None)
    where = f" (line {line})" if isinstance(line, int) else ""
    return f"{type(exc).__name__} {doing} the {what}{where}"


@dataclass(frozen=True)
class TestMethod:
    __test__ = False  # not a pytest test class

    name: str
    plain: bool  # a bare `def`: no decorator, no default values, so its function is fully known


@dataclass(frozen=True)
class TestProgram:
    """What a unit test's own source says: its class and the test methods that must all pass."""

    __test__ = False

    class_name: str
    methods: tuple[TestMethod, ...]  # sorted by name, as unittest's loader runs them
    names: tuple[str, ...]  # every name the class body binds (it may override unittest's own)
    asynchronous: bool  # derived from unittest.IsolatedAsyncioTestCase


def expected_test_methods(class_node: ast.ClassDef) -> tuple[TestMethod, ...]:
    """The test methods a class defines, by unittest's rule: names starting with "test", sorted;
    a class with none but a `runTest` runs that. The last definition of a name is the one that counts."""
    defined: dict[str, TestMethod] = {}
    for node in class_node.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            arguments = node.args
            plain = not node.decorator_list and not arguments.defaults and not any(arguments.kw_defaults)
            defined[node.name] = TestMethod(node.name, plain)
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:  # a later non-def binding of a name replaces its def
                if isinstance(target, ast.Name):
                    defined.pop(target.id, None)
    methods = [defined[name] for name in sorted(defined) if name.startswith(TEST_METHOD_PREFIX)]
    if not methods and "runTest" in defined:
        methods = [defined["runTest"]]
    return tuple(methods)


def read_test(code: str) -> TestProgram:
    """The single top-level class of a unit-test program and its test methods; InvalidProgram if
    the program does not parse or has no single class."""
    tree = parse(code, "unit test")
    classes = [node for node in tree.body if isinstance(node, ast.ClassDef)]
    if len(classes) != 1:
        raise InvalidProgram(
            "the unit test has no test class" if not classes else "the unit test has several classes"
        )
    names = sorted(
        {node.name for node in classes[0].body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)}
        | {
            target.id
            for node in classes[0].body
            if isinstance(node, ast.Assign | ast.AnnAssign | ast.AugAssign)
            for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
            if isinstance(target, ast.Name)
        }
    )
    asynchronous = any(ast.unparse(base).endswith("IsolatedAsyncioTestCase") for base in classes[0].bases)
    return TestProgram(classes[0].name, expected_test_methods(classes[0]), tuple(names), asynchronous)


def method_codes(module_code: CodeType, class_name: str) -> dict[str, CodeType]:
    """The code objects of the functions a top-level class defines, by name (the last definition
    of a name wins, as in the class body), found in the compiled program's constants."""
    bodies = [c for c in module_code.co_consts if isinstance(c, CodeType) and c.co_name == class_name]
    if len(bodies) != 1:
        return {}
    functions = sorted(
        (c for c in bodies[0].co_consts if isinstance(c, CodeType)), key=lambda c: c.co_firstlineno
    )
    return {c.co_name: c for c in functions}
