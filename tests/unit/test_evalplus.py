"""EvalPlus's tests as a ground-truth program (agents/evalplus.py, agents/evalplus_checker.py).

The program runs here as the sandbox runs ground truth: after the solution, in the solution's own
globals (tests/integration/test_evalplus_sandbox.py runs it in the jail itself). A solution is
correct iff the program raises nothing.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from agents import evalplus_checker
from agents.evalplus import EvalPlusTask, ground_truth_program
from agents.evalplus_checker import _allclose, allclose, is_floats, output_matches
from orchestrator.core.errors import ProblemFileError
from orchestrator.inputs.evalplus_files import fitted_program, read_evalplus_file


def passes(solution: str, program: str) -> bool:
    names: dict[str, Any] = {"__name__": "__main__"}
    exec(compile(solution, "<solution>", "exec"), names)
    try:
        exec(compile(program, "<ground truth>", "exec"), names)
    except Exception:
        return False
    return True


@pytest.fixture(scope="module")
def humaneval_plus(data_dir: Path) -> dict[str, EvalPlusTask]:
    return read_evalplus_file(data_dir / "evalplus" / "HumanEvalPlus.jsonl", "humaneval")


@pytest.fixture(scope="module")
def mbpp_plus(data_dir: Path) -> dict[str, EvalPlusTask]:
    return read_evalplus_file(data_dir / "evalplus" / "MbppPlus.jsonl", "mbpp")


CLOSE = {  # HumanEval/0
    "correct": "def has_close_elements(numbers, threshold):\n    s = sorted(numbers)\n    return any(b - a < threshold for a, b in zip(s, s[1:]))\n",
    # `<=`: agrees with every base input; the plus input [1.0, 2.0, 4.0] at 1.0 tells it apart.
    "wrong on plus only": "def has_close_elements(numbers, threshold):\n    s = sorted(numbers)\n    return any(b - a <= threshold for a, b in zip(s, s[1:]))\n",
    "wrong": "def has_close_elements(numbers, threshold):\n    return True\n",
}
TRUNCATE = {  # HumanEval/2, atol 1e-6
    "exact": "def truncate_number(number):\n    return number % 1.0\n",
    "within atol": "def truncate_number(number):\n    return round(number - int(number), 9)\n",
    "outside atol": "def truncate_number(number):\n    return round(number - int(number), 2)\n",
    # The digits after '.': right on the base inputs, raises on the plus input 1e-07.
    "wrong on plus only": "def truncate_number(number):\n    return float('0.' + str(number).split('.')[1])\n",
}
PARENS = {  # HumanEval/1: a list result
    "correct": (
        "def separate_paren_groups(paren_string):\n    out, cur, depth = [], '', 0\n"
        "    for c in paren_string.replace(' ', ''):\n        cur += c\n"
        "        depth += 1 if c == '(' else -1\n        if depth == 0:\n"
        "            out.append(cur)\n            cur = ''\n    return out\n"
    ),
    "wrong": "def separate_paren_groups(paren_string):\n    return paren_string.split()\n",
}


@pytest.mark.parametrize(
    ("task_id", "solutions", "name", "verdict"),
    [
        ("HumanEval/0", CLOSE, "correct", True),
        ("HumanEval/0", CLOSE, "wrong on plus only", False),
        ("HumanEval/0", CLOSE, "wrong", False),
        ("HumanEval/1", PARENS, "correct", True),
        ("HumanEval/1", PARENS, "wrong", False),
        ("HumanEval/2", TRUNCATE, "exact", True),
        ("HumanEval/2", TRUNCATE, "within atol", True),
        ("HumanEval/2", TRUNCATE, "outside atol", False),
        ("HumanEval/2", TRUNCATE, "wrong on plus only", False),
    ],
)
def test_a_solution_passes_iff_it_matches_the_reference_on_base_and_plus_inputs(
    humaneval_plus: dict[str, EvalPlusTask], task_id: str, solutions: dict[str, str], name: str, verdict: bool
) -> None:
    assert passes(solutions[name], ground_truth_program(humaneval_plus[task_id])) is verdict


def test_the_plus_inputs_are_what_tells_a_plausible_wrong_solution_apart(
    humaneval_plus: dict[str, EvalPlusTask],
) -> None:
    base_only = EvalPlusTask(**{**vars(humaneval_plus["HumanEval/0"]), "plus_input": []})
    assert passes(CLOSE["wrong on plus only"], ground_truth_program(base_only))
    assert not passes(CLOSE["wrong on plus only"], ground_truth_program(humaneval_plus["HumanEval/0"]))


def test_a_failure_says_which_input(humaneval_plus: dict[str, EvalPlusTask]) -> None:
    names: dict[str, Any] = {}
    exec(CLOSE["wrong on plus only"], names)
    with pytest.raises(AssertionError, match="EvalPlus plus input 3 of 5: expected False, got True"):
        exec(ground_truth_program(humaneval_plus["HumanEval/0"]), names)


def test_a_solution_without_the_entry_point_fails(humaneval_plus: dict[str, EvalPlusTask]) -> None:
    assert not passes(
        "def something_else(x):\n    return x\n", ground_truth_program(humaneval_plus["HumanEval/2"])
    )


# ---- A hostile solution shares the process with the ground truth; these cannot make it pass. ----

HELPER_TASK = EvalPlusTask(
    task_id="HumanEval/900",
    dataset="humaneval",
    entry_point="scaled",
    # The reference calls a helper of its prompt by name, as HumanEval/32's find_zero calls poly.
    reference="def factor():\n    return 3\n\n\ndef scaled(x):\n    return x * factor()\n",
    base_input=[[1], [2]],
    plus_input=[[-5]],
    atol=0,
)


def test_a_solution_that_rebinds_the_reference_s_names_is_judged_against_the_real_reference() -> None:
    # Its `factor` and `scaled` agree with each other; had the reference read the solution's
    # globals, it would have agreed too.
    hostile = "def factor():\n    return 2\n\n\ndef scaled(x):\n    return x * factor()\n"
    assert not passes(hostile, ground_truth_program(HELPER_TASK))
    assert passes("def scaled(x):\n    return 3 * x\n", ground_truth_program(HELPER_TASK))


def test_a_solution_that_rebinds_the_checker_s_names_changes_nothing() -> None:
    hostile = (
        "def scaled(x):\n    return 0\n\n"
        "def check(*args, **kwargs):\n    return None\n\n"
        "def output_matches(*args, **kwargs):\n    return True, 0\n\n"
        "_coderm_evalplus = {'check': check}\n"
    )
    assert not passes(hostile, ground_truth_program(HELPER_TASK))


def test_a_solution_that_mutates_its_inputs_cannot_change_the_expected_outputs(
    humaneval_plus: dict[str, EvalPlusTask],
) -> None:
    # Were the reference run after it on the same list, it would see [] and also say False.
    hostile = "def has_close_elements(numbers, threshold):\n    numbers.clear()\n    return False\n"
    assert not passes(hostile, ground_truth_program(humaneval_plus["HumanEval/0"]))
    # Nor can it change what the next input is, or what the reference saw.
    task = EvalPlusTask(
        "HumanEval/901", "humaneval", "first", "def first(xs):\n    return xs[0]\n", [[[1, 2]]], [[[1, 2]]], 0
    )
    hostile = "def first(xs):\n    head = xs[0]\n    xs[0] = 99\n    return head\n"
    assert passes(hostile, ground_truth_program(task))


def test_what_a_solution_prints_is_dropped(
    humaneval_plus: dict[str, EvalPlusTask], capsys: pytest.CaptureFixture[str]
) -> None:
    chatty = "def truncate_number(number):\n    print('thinking', number)\n    return number % 1.0\n"
    assert passes(chatty, ground_truth_program(humaneval_plus["HumanEval/2"]))
    assert "thinking" not in capsys.readouterr().out


# ---- EvalPlus's tolerance rules and special oracles (evalplus/eval/__init__.py) ----


def matches(
    out: Any, exp: Any, atol: float = 0, entry_point: str = "f", dataset: str = "humaneval", args: Any = ()
) -> bool:
    return output_matches(dataset, entry_point, out, exp, list(args), atol)[0]


def test_floats_match_within_the_task_s_atol_or_1e_6_when_it_is_0() -> None:
    assert matches(0.1 + 0.2, 0.3)  # 0 atol and a float expected: 1e-6
    assert matches(1.0000005, 1.0) and not matches(1.00001, 1.0)
    assert matches(1.00005, 1.0, atol=1e-4) and not matches(1.0002, 1.0, atol=1e-4)
    assert matches([1.0000001, 2.0], [1.0, 2.0]) and not matches([1.1, 2.0], [1.0, 2.0])
    assert not matches([1.0], [1.0, 2.0])  # the length
    assert not matches(1, 1.0000001)  # not equal, and not the expected's type
    assert not matches(2, 1)  # no tolerance for ints where the task's atol is 0
    assert not matches(float("nan"), float("nan"))
    assert matches(math.inf, math.inf) and not matches(math.inf, 1e308, atol=1e-6)


def test_the_1e_6_default_sticks_for_the_rest_of_the_stage() -> None:
    # EvalPlus sets atol once it meets a float output and keeps it for the stage's later inputs.
    assert output_matches("humaneval", "f", 0.3000001, 0.3, [], 0) == (True, 1e-6)
    assert output_matches("humaneval", "f", (1.0000001, 2), (1.0, 2), [], 1e-6)[0]
    assert not output_matches("humaneval", "f", (1.0000001, 2), (1.0, 2), [], 0)[0]


def test_is_floats_is_evalplus_s() -> None:
    assert is_floats(1.0) and is_floats([1.0, 2.0]) and is_floats((0.5,))
    assert not is_floats([]) and not is_floats([1.0, 2]) and not is_floats(1) and not is_floats(True)


ALLCLOSE_CASES = [
    (1.0, 1.0 + 1e-9, 0.0),
    (1.0, 1.1, 1e-6),
    ([1.0, 2.0], [1.0, 2.0 + 1e-8], 1e-6),
    ([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.00001]], 1e-6),
    ([[1.0, 2.0], [3.0, 4.0]], [[1.0, 2.0], [3.0, 4.1]], 1e-6),
    ((1, 2), (1, 2), 1e-6),
    ([True, False], [True, False], 1e-6),
    ([], [], 1e-6),
    (float("inf"), float("inf"), 1e-6),
    (float("-inf"), float("inf"), 1e-6),
    (float("nan"), float("nan"), 1e-6),
    (1e10, 1e10 + 100, 1e-6),  # within rtol * |exp|
    (1e10, 1e10 + 10000, 1e-6),
    (complex(1, 1), complex(1, 1.0000001), 1e-6),
]


@pytest.mark.parametrize(("out", "exp", "atol"), ALLCLOSE_CASES)
def test_the_pure_python_tolerance_agrees_with_numpy(out: Any, exp: Any, atol: float) -> None:
    numpy = pytest.importorskip("numpy")
    assert _allclose(out, exp, atol) == bool(numpy.allclose(out, exp, rtol=1e-07, atol=atol))
    assert allclose(out, exp, atol) == _allclose(out, exp, atol)


def test_find_zero_accepts_any_root_within_atol() -> None:
    # HumanEval/32: xs = [-6, 11, -6, 1] has roots 1, 2 and 3.
    args = [[-6, 11, -6, 1]]
    for root in (1.0, 2.0, 3.00000001):
        assert matches(root, 1.0, atol=1e-4, entry_point="find_zero", args=args)
    assert not matches(2.5, 1.0, atol=1e-4, entry_point="find_zero", args=args)


def test_mbpp_special_oracles() -> None:
    def mbpp(out: Any, exp: Any, entry_point: str, args: Any = (), atol: float = 0) -> bool:
        return matches(out, exp, atol, entry_point, "mbpp", args)

    assert mbpp([5, 4], (4, 5), "similar_elements") and not mbpp([4], (4, 5), "similar_elements")
    assert mbpp("anything", None, "are_equivalent")
    assert mbpp(0, 7, "sum_div") and not mbpp(1, 7, "sum_div")
    assert (
        mbpp(True, True, "check_str")
        and mbpp("match!", True, "check_str")
        and not mbpp(None, True, "check_str")
    )
    # |1-2| + |2-5| + |3-6| = 7, whatever the reference said
    assert mbpp(7, 11, "digit_distance_nums", args=(123, 256)) and not mbpp(
        5, 11, "digit_distance_nums", args=(123, 256)
    )
    # base 3, height 4: 9 + 4 * (3 * 4.27) / 2 = 34.6, rounded 35
    assert mbpp(34, 40, "surface_Area", args=(3, 4), atol=1) and not mbpp(
        30, 40, "surface_Area", args=(3, 4), atol=1
    )


def test_mbpp_inputs_become_the_tuples_evalplus_calls_with(mbpp_plus: dict[str, EvalPlusTask]) -> None:
    # Mbpp/2's arguments are tuples: a solution may rely on it.
    strict = "def similar_elements(a, b):\n    assert type(a) is tuple and type(b) is tuple\n    return set(a) & set(b)\n"
    assert passes(strict, ground_truth_program(mbpp_plus["Mbpp/2"]))
    assert evalplus_checker.parse_inputs("mbpp", "Mbpp/124", [["2", "1+2j"]]) == [(2.0, 1 + 2j)]
    assert evalplus_checker.parse_inputs("mbpp", "Mbpp/580", [[[1, [2, 3]]]]) == [(((1, (2, 3)),))]
    assert evalplus_checker.parse_inputs("mbpp", "Mbpp/115", [[[[1], []]]]) == [[[{1}, {}]]]
    assert evalplus_checker.parse_inputs("mbpp", "Mbpp/3", [[7]]) == [[7]]


def test_mbpp_not_none_tasks_compare_whether_something_was_returned() -> None:
    task = EvalPlusTask(
        "Mbpp/900", "mbpp", "check_str",
        "import re\ndef check_str(s):\n    return re.search('^[aeiou]', s)\n",
        [["apple"], ["pear"]], [], 0,
    )  # fmt: skip
    assert passes(
        "import re\ndef check_str(s):\n    return re.match('[aeiou]', s)\n", ground_truth_program(task)
    )
    assert passes("def check_str(s):\n    return s[0] in 'aeiou'\n", ground_truth_program(task))
    assert not passes("def check_str(s):\n    return 'yes'\n", ground_truth_program(task))


@pytest.mark.parametrize(
    ("task_id", "solution", "verdict"),
    [
        ("Mbpp/2", "def similar_elements(a, b):\n    return sorted(set(a) & set(b), reverse=True)\n", True),
        (
            "Mbpp/3",
            "def is_not_prime(n):\n    return n < 2 or any(n % i == 0 for i in range(2, int(n ** 0.5) + 1))\n",
            True,
        ),
        # 1 is not prime, and the plus inputs ask.
        (
            "Mbpp/3",
            "def is_not_prime(n):\n    return any(n % i == 0 for i in range(2, int(n ** 0.5) + 1))\n",
            False,
        ),
        ("Mbpp/4", "def heap_queue_largest(nums, n):\n    return sorted(nums, reverse=True)[:n]\n", True),
        ("Mbpp/4", "def heap_queue_largest(nums, n):\n    return sorted(nums)[-n:][::-1]\n", False),  # n = 0
    ],
)
def test_mbpp_plus_tasks(
    mbpp_plus: dict[str, EvalPlusTask], task_id: str, solution: str, verdict: bool
) -> None:
    assert passes(solution, ground_truth_program(mbpp_plus[task_id])) is verdict


# ---- The program's size, and the files ----


def test_large_inputs_travel_compressed_and_too_large_ones_are_refused() -> None:
    many = [[[i, i + 1, i + 2]] for i in range(20_000)]
    task = EvalPlusTask(
        "HumanEval/902", "humaneval", "total", "def total(xs):\n    return sum(xs)\n", [[[1, 2, 3]]], many, 0
    )
    program = fitted_program(task)
    assert program is not None and f"['check']('{evalplus_checker.COMPRESSED}" in program
    assert passes("def total(xs):\n    return xs[0] + xs[1] + xs[2]\n", program)
    assert not passes("def total(xs):\n    return 3 * xs[1] + 1\n", program)
    noise = [[str(hash((i, "salt")) * 7)] for i in range(40_000)]  # does not compress under the limit
    assert (
        fitted_program(
            EvalPlusTask("HumanEval/903", "humaneval", "f", "def f(x):\n    return x\n", [], noise, 0)
        )
        is None
    )


def test_a_plain_program_shows_its_inputs(humaneval_plus: dict[str, EvalPlusTask]) -> None:
    program = fitted_program(humaneval_plus["HumanEval/2"])
    assert program is not None and "1e-07" in program
    assert f"['check']('{evalplus_checker.COMPRESSED}" not in program
    assert program.startswith("# EvalPlus ground truth of HumanEval/2: 3 base and 4 plus inputs")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (
            '{"task_id": "HumanEval/0", "prompt": "", "canonical_solution": "", "base_input": [], "plus_input": []}',
            "'entry_point'",
        ),
        (
            '{"task_id": "HumanEval/0", "entry_point": "f", "base_input": [], "plus_input": []}',
            "reference solution",
        ),
        (
            '{"task_id": "HumanEval/0", "entry_point": "f", "code": "", "base_input": [1], "plus_input": []}',
            "'base_input'",
        ),
        (
            '{"task_id": "HumanEval/0", "entry_point": "f", "code": "", "base_input": [], "plus_input": [], "atol": -1}',
            "'atol'",
        ),
    ],
)
def test_a_bad_evalplus_line_is_reported_with_its_place(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "HumanEvalPlus.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(ProblemFileError, match=message) as caught:
        read_evalplus_file(path, "humaneval")
    assert f"{path}:1:" in str(caught.value)
