"""LiveCodeBench's `class Solution` answers in the function form CodeRM's unit tests call."""

from __future__ import annotations

import ast
import gzip
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from agents.extract import InvalidReason, check_solution_code, extract_solution
from agents.function_form import PREAMBLE, entry_names, in_function_form, to_function_form
from orchestrator.inputs.problem_files import ProblemSpec, read_problem_file


def run(program: str) -> dict[str, Any]:
    """Our own test programs, executed here as the jail executes a solution: a fresh namespace."""
    namespace: dict[str, Any] = {"__name__": "solution"}
    exec(compile(program, "solution", "exec", dont_inherit=True), namespace)
    return namespace


TWO_SUM = """class Solution:
    def twoSum(self, nums: List[int], target: int) -> List[int]:
        seen = {}
        for i, n in enumerate(nums):
            if target - n in seen:
                return [seen[target - n], i]
            seen[n] = i
        return []
"""


def test_a_method_becomes_a_function_with_lcb_imports_for_names_used_unimported() -> None:
    with pytest.raises(NameError, match="List"):  # as written, `List` is not defined
        run(TWO_SUM)
    form = to_function_form(TWO_SUM, ["twoSum"])
    assert form.converted and form.wrapped == ("twoSum",)
    assert form.code.startswith(PREAMBLE) and TWO_SUM.rstrip() in form.code
    namespace = run(form.code)
    assert namespace["twoSum"]([2, 7, 11, 15], 9) == [0, 1]
    assert namespace["twoSum"](nums=[3, 3], target=6) == [0, 1]  # keyword arguments pass through


def test_the_preamble_is_livecodebench_s() -> None:
    """lcb_runner's `import_string`: 18 modules star-imported, 16 by name, recursion limit 50000."""
    statements = ast.parse(PREAMBLE).body
    star = [s.module for s in statements if isinstance(s, ast.ImportFrom)]
    plain = [s.names[0].name for s in statements if isinstance(s, ast.Import)]
    assert star == [
        "string", "re", "datetime", "collections", "heapq", "bisect", "copy", "math", "random",
        "statistics", "itertools", "functools", "operator", "io", "sys", "json", "builtins", "typing",
    ]  # fmt: skip
    assert plain == star[:-2]
    assert ast.unparse(statements[-1]) == "sys.setrecursionlimit(50000)"
    namespace = run(PREAMBLE)
    for name in ("List", "Optional", "Counter", "deque", "heappush", "bisect_left", "inf", "gcd", "lru_cache",
                 "accumulate", "reduce", "ascii_lowercase", "defaultdict"):  # fmt: skip
        assert name in namespace, name
    # `builtins` comes after `math` and `io`, so the builtins they would hide are the builtins.
    assert namespace["pow"] is pow and namespace["open"] is open
    assert namespace["datetime"].__name__ == "datetime"  # the module: `import datetime` comes last


def test_several_methods_only_the_names_the_tests_call() -> None:
    code = """class Solution:
    def first(self, x):
        return self.helper(x) + 1

    def second(self, x):
        return x * 2

    def helper(self, x):
        return x * 10
"""
    form = to_function_form(code, ["first", "second", "absent"])
    assert form.wrapped == ("first", "second")  # not the helper, not a name the class lacks
    namespace = run(form.code)
    assert (namespace["first"](1), namespace["second"](3)) == (11, 6)
    assert "helper" not in namespace


def test_a_helper_class_and_static_and_class_methods() -> None:
    code = """class UnionFind:
    def __init__(self, n):
        self.parent = list(range(n))

    def find(self, x):
        while self.parent[x] != x:
            x = self.parent[x]
        return x

    def union(self, a, b):
        self.parent[self.find(a)] = self.find(b)


class Solution:
    def countComponents(self, n: int, edges: List[List[int]]) -> int:
        uf = UnionFind(n)
        for a, b in edges:
            uf.union(a, b)
        return len({uf.find(x) for x in range(n)})

    @staticmethod
    def double(x: int) -> int:
        return 2 * x

    @classmethod
    def name(cls) -> str:
        return cls.__name__
"""
    form = to_function_form(code, ["countComponents", "double", "name"])
    namespace = run(form.code)
    assert namespace["countComponents"](5, [[0, 1], [1, 2], [3, 4]]) == 2
    assert (namespace["double"](4), namespace["name"]()) == (8, "Solution")


def test_each_call_gets_a_fresh_solution() -> None:
    code = """class Solution:
    def __init__(self):
        self.calls = 0

    def count(self) -> int:
        self.calls += 1
        return self.calls
"""
    namespace = run(to_function_form(code, ["count"]).code)
    assert [namespace["count"]() for _ in range(3)] == [1, 1, 1]


@pytest.mark.parametrize(
    "code",
    [
        "def twoSum(nums, target):\n    return [0, 1]\n",  # already function form
        # a function the tests call beside the class: it is what runs, as written
        TWO_SUM + "\n\ndef twoSum(nums, target):\n    return Solution().twoSum(nums, target)\n",
        TWO_SUM + "\n\ntwoSum = Solution().twoSum\n",
        "from helpers import twoSum\n\n\n" + TWO_SUM,
        "class Other:\n    def twoSum(self, nums, target):\n        return []\n",  # no Solution class
        "class Solution:\n    def threeSum(self, nums):\n        return []\n",  # not the name tested
        "class Solution:\n    def twoSum(self, nums, target)\n        return []\n",  # syntax error
        "class Solution:\n    def twoSum(self, nums, target):\n        return [\n",  # cut off
        "",
    ],
)
def test_what_needs_no_conversion_is_left_as_it_is(code: str) -> None:
    form = to_function_form(code, ["twoSum"])
    assert form.code is code and form.wrapped == () and not form.converted


def test_no_names_no_conversion() -> None:
    assert to_function_form(TWO_SUM, []).code is TWO_SUM


def test_the_class_that_counts_is_the_last_top_level_solution() -> None:
    code = TWO_SUM + "\n\nclass Solution:\n    def other(self):\n        return 1\n"
    assert not to_function_form(code, ["twoSum"]).converted


def test_docstring_and_future_imports_stay_first() -> None:
    code = (
        '"""Two sum."""\nfrom __future__ import annotations\nfrom __future__ import division\n\n\n' + TWO_SUM
    )
    form = to_function_form(code, ["twoSum"])
    assert form.converted
    assert form.code.startswith('"""Two sum."""\nfrom __future__ import annotations\n'
                                "from __future__ import division\n" + PREAMBLE)  # fmt: skip
    assert run(form.code)["twoSum"]([1, 2], 3) == [0, 1]


def test_odd_line_breaks_do_not_move_the_preamble() -> None:
    """The parser counts lines by \\n and \\r only; a form feed in a docstring is not a line."""
    code = '"""a\x0cb"""\r\nfrom __future__ import annotations\r\n' + TWO_SUM
    form = to_function_form(code, ["twoSum"])
    assert form.converted and run(form.code)["twoSum"]([1, 2], 3) == [0, 1]


def test_a_program_the_conversion_would_break_is_left_as_it_is() -> None:
    # A future import after other code on its line cannot be kept first: nothing is changed.
    code = "from __future__ import annotations; x = 1\nfrom __future__ import division\n" + TWO_SUM
    assert to_function_form(code, ["twoSum"]).code is code


# --- the names the tests call ---------------------------------------------------------------


def test_entry_names_prefer_the_entry_point() -> None:
    assert entry_names("def f():\n    return g()\n\ndef g():\n    return 1\n", "g") == ("g",)


def test_entry_names_leave_out_the_reference_s_helpers() -> None:
    reference = """def find(parent, x):
    return x if parent[x] == x else find(parent, parent[x])

def union(parent, a, b):
    parent[find(parent, a)] = find(parent, b)

def timeTaken(edges):
    parent = list(range(len(edges) + 1))
    for a, b in edges:
        union(parent, a, b)
    return parent
"""
    assert entry_names(reference) == ("timeTaken",)
    # Two of LiveCodeBench's references were methods: they call their helpers through `self`.
    assert entry_names(reference.replace("    union(parent", "    self.union(parent")) == ("timeTaken",)
    # A helper passed rather than called is used too.
    assert entry_names("def key(x):\n    return -x\n\ndef order(xs):\n    return sorted(xs, key=key)\n") == (
        "order",
    )
    # Functions that all use one another: the first.
    assert entry_names(
        "def even(n):\n    return n == 0 or odd(n - 1)\n\ndef odd(n):\n    return even(n - 1)\n"
    ) == ("even",)
    # A recursive entry point calls only itself: still an entry point.
    assert entry_names("def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n") == ("fib",)


def test_entry_names_of_a_reference_that_does_not_parse() -> None:
    reference = "def longestCommonPrefix(arr1, arr2):\n    return max(min(len(x)) for x in arr1))\n"
    assert entry_names(reference) == ("longestCommonPrefix",)
    assert entry_names(None) == entry_names("") == ()


# --- extraction: what runs, and the code as extracted -----------------------------------------


def test_an_extracted_solution_is_stored_with_the_code_as_extracted() -> None:
    extraction = in_function_form(extract_solution(f"Sure:\n```python\n{TWO_SUM}```\n"), ["twoSum"])
    assert extraction.valid and extraction.extracted_code == TWO_SUM.rstrip("\n")
    assert extraction.code is not None and extraction.code.startswith(PREAMBLE)
    assert extraction.code_hash is not None  # of the code that runs
    plain = check_solution_code("def twoSum(nums, target):\n    return []\n")
    assert in_function_form(plain, ["twoSum"]) is plain  # nothing to convert: extracted_code None
    invalid = extract_solution("no code here")
    assert in_function_form(invalid, ["twoSum"]) is invalid
    assert invalid.invalid_reason is InvalidReason.NO_CODE_BLOCK


# --- all 168 LiveCodeBench prompt pairs ---------------------------------------------------------


def starter(policy_prompt: str) -> str:
    """The policy prompt's starter code: `class Solution:` and one method without a body."""
    (code,) = re.findall(r"```python\n(.*?)```", policy_prompt, re.DOTALL)
    return code


def ut_starter_names(coderm_prompt: str) -> list[str]:
    """The functions of the unit-test prompt's own starter code line, which its reference implements."""
    (section,) = re.findall(r"starter code to write the solution to the problem:\n(.*?)\n\n### code", coderm_prompt, re.DOTALL)  # fmt: skip
    return re.findall(r"^def (\w+)\(", section, re.MULTILINE)


@pytest.fixture(scope="module")
def livecodebench(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> list[ProblemSpec]:
    """CodeRM's 168 LiveCodeBench prompt pairs (tests/data/livecodebench-168, gzipped copies),
    read as `coderm` reads them."""
    folder = tmp_path_factory.mktemp("livecodebench")
    for kind in ("sol", "ut"):
        name = f"input_livecodebench_{kind}.jsonl"
        with (
            gzip.open(data_dir / "livecodebench-168" / f"{name}.gz") as packed,
            (folder / name).open("wb") as plain,
        ):
            shutil.copyfileobj(packed, plain)
    return read_problem_file(folder / "input_livecodebench_sol.jsonl").problems


def test_every_lcb_policy_prompt_asks_for_a_class_and_every_ut_prompt_shows_a_function(
    livecodebench: list[ProblemSpec],
) -> None:
    assert len(livecodebench) == 168
    for problem in livecodebench:
        assert problem.policy_prompt and problem.coderm_prompt and problem.reference_code
        assert starter(problem.policy_prompt).startswith("class Solution:\n"), problem.task_id
        assert re.match(r"def \w+\(", problem.reference_code), problem.task_id


def test_on_all_168_the_conversion_gives_exactly_the_functions_the_ut_prompt_shows(
    livecodebench: list[ProblemSpec],
) -> None:
    """A policy answer as the starter code asks for it, given a body, becomes a program defining
    exactly the function of the unit-test prompt's reference, callable with its arguments."""
    for problem in livecodebench:
        assert problem.policy_prompt and problem.coderm_prompt
        names = entry_names(problem.reference_code, problem.entry_point)
        expected = ut_starter_names(problem.coderm_prompt)
        assert len(expected) == 1 and list(names) == expected, problem.task_id
        assert problem.reference_code and problem.reference_code.startswith(f"def {expected[0]}(")

        stub = starter(problem.policy_prompt).rstrip() + "\n        pass\n"
        (method,) = ast.parse(stub).body[0].body  # type: ignore[attr-defined]
        arguments = [a.arg for a in method.args.args[1:]]
        answer = stub.replace("        pass\n", f"        return ('answered', [{', '.join(arguments)}])\n")
        try:  # as written, no test could call it (and most use `List` unimported)
            as_written = run(answer)
        except NameError:
            as_written = {}
        assert expected[0] not in as_written
        form = to_function_form(answer, names)
        assert list(form.wrapped) == expected, problem.task_id
        namespace = run(form.code)
        defined = {n.name for n in ast.parse(form.code).body if isinstance(n, ast.FunctionDef)}
        assert defined == set(expected), problem.task_id
        values = list(range(len(arguments)))
        assert namespace[expected[0]](*values) == ("answered", values), problem.task_id
