"""EvalPlus's differential test, run in the sandbox after the solution (see agents/evalplus.py).

This module's source is the checker of every EvalPlus ground-truth program: the program executes it
in a namespace of its own and calls `check(payload, names)`, where `names` are the solution's
globals. Standard library only (numpy where importable), since it runs in the jail.

What it does, as EvalPlus's `evaluate` does (evalplus/evaluate.py, evalplus/eval/__init__.py):

1. The reference (`prompt + canonical_solution`) runs in a fresh namespace of its own, so nothing the
   solution defines (its own `poly`, a rebound entry point) can stand in for it; it computes every
   expected output, base and plus, before the solution's function is called once. MBPP+ inputs are
   first turned back into the tuples, sets and complex numbers EvalPlus serialised as lists and
   strings (`_MBPP_INPUTS`), and for the tasks whose outputs EvalPlus does not compare, the expected
   output is only whether the reference returned something (`MBPP_OUTPUT_NOT_NONE`).
2. The solution's entry point is called on every base input, then every plus input, each call on a
   fresh deep copy of the input (the reference's calls too), with its printing discarded. The first
   output that does not match raises AssertionError, so the program fails; a correct solution passes
   every base and every plus input (EvalPlus's `plus_status == "pass"` after `base_status`).
3. An output matches by EvalPlus's rule: `out == exp`; the special oracles (HumanEval/32
   `find_zero`: |poly(xs, out)| <= atol; MBPP's set-equality tasks, `sum_div`, `surface_Area`,
   `digit_distance_nums`, `are_equivalent`, the not-None tasks); then, when the task's atol is 0 and
   the expected output is a float or a non-empty list or tuple of floats, atol becomes 1e-6 for this
   and the stage's later inputs (EvalPlus's atol is sticky within a stage); and an output that is not
   equal, where atol is not 0, matches iff it has the expected's type, its length for lists and
   tuples, and is `numpy.allclose(out, exp, rtol=1e-07, atol=atol)`.

Rules left out: EvalPlus's time limits (each input gets max(4 s, 4 x the reference's time), a task at
most 60 s) become the sandbox's one ground-truth limit for this whole program, reference included; and
where numpy cannot be imported, `_allclose` compares numbers and equally shaped lists and tuples of
them by numpy's formula, without numpy's broadcasting. Like EvalPlus's own check, which also runs the
solution in the process that holds the expected outputs, it does not stand up to code that reaches
into its frames (sys._getframe) or returns objects that claim equality with anything.
"""

from __future__ import annotations

import base64
import builtins
import contextlib
import copy
import json
import math
import zlib
from collections.abc import Callable
from typing import Any

COMPRESSED = "zlib+b85:"
"""Prefix of a payload that is zlib-compressed JSON in base85 (a large task's inputs)."""

HUMANEVAL, MBPP = "humaneval", "mbpp"
DEFAULT_FLOAT_ATOL = 1e-6  # EvalPlus: "enforce atol for float comparison" when the task's is 0
RTOL = 1e-07  # numpy.testing.assert_allclose's default, which EvalPlus passes to numpy.allclose

# evalplus/eval/_special_oracle.py
MBPP_OUTPUT_NOT_NONE = frozenset({"check_str", "text_match_three", "text_starta_endb"})
MBPP_OUTPUT_SET_EQ = frozenset(
    {
        "similar_elements",  # Mbpp/2
        "find_char_long",  # Mbpp/7
        "common_in_nested_lists",  # Mbpp/111
        "extract_singly",  # Mbpp/140
        "larg_nnum",  # Mbpp/232
        "intersection_array",  # Mbpp/249
        "find_dissimilar",  # Mbpp/579
        "Diff",  # Mbpp/769
    }
)


def check(payload: str, names: dict[str, Any]) -> None:
    """Raise AssertionError unless `names[entry_point]` matches the reference on every input."""
    task = decode(payload)
    dataset, entry_point = task["dataset"], task["entry_point"]
    inputs = {
        stage: parse_inputs(dataset, task["task_id"], task[f"{stage}_input"]) for stage in ("base", "plus")
    }
    reference = _function(task["reference"], entry_point, "the reference solution")
    not_none = dataset == MBPP and entry_point in MBPP_OUTPUT_NOT_NONE
    expected = {stage: _outputs(reference, stage_inputs, not_none) for stage, stage_inputs in inputs.items()}
    candidate = names.get(entry_point)
    if candidate is None:
        raise AssertionError(f"the solution defines no {entry_point!r}")
    for stage in ("base", "plus"):
        judge_stage(dataset, entry_point, candidate, stage, inputs[stage], expected[stage], task["atol"])


def decode(payload: str) -> dict[str, Any]:
    if payload.startswith(COMPRESSED):
        payload = zlib.decompress(base64.b85decode(payload[len(COMPRESSED) :])).decode("utf-8")
    task: dict[str, Any] = json.loads(payload)
    return task


def judge_stage(
    dataset: str,
    entry_point: str,
    candidate: Callable[..., Any],
    stage: str,
    inputs: list[Any],
    expected: list[Any],
    atol: float,
) -> None:
    """EvalPlus's `unsafe_execute` for one stage (base or plus), stopping at the first mismatch."""
    for position, (args, exp) in enumerate(zip(inputs, expected, strict=True)):
        with _silenced():
            out = candidate(*copy.deepcopy(args))
        # The oracles read `args` and never change it; the solution only ever saw a copy.
        matched, atol = output_matches(dataset, entry_point, out, exp, args, atol)
        if not matched:
            raise AssertionError(
                f"EvalPlus {stage} input {position + 1} of {len(inputs)}: expected {_short(exp)}, "
                f"got {_short(out)}"
            )


def output_matches(
    dataset: str, entry_point: str, out: Any, exp: Any, args: Any, atol: float
) -> tuple[bool, float]:
    """Whether `out` matches `exp` for the input `args`, and the atol for the stage's next input.

    An exception while comparing (a length of a number, numpy refusing strings) is a mismatch, as in
    EvalPlus, where any exception fails the input."""
    try:
        exact: Any = out == exp
        if dataset == MBPP:
            exact = _mbpp_oracle(entry_point, exact, out, exp, args, atol)
        if dataset == HUMANEVAL and entry_point == "find_zero":  # HumanEval/32: any root will do
            (xs,) = args
            return abs(_poly(xs, out)) <= atol, atol
        if atol == 0 and is_floats(exp):
            atol = DEFAULT_FLOAT_ATOL
        if not exact and atol != 0:
            if type(out) is not type(exp):
                return False, atol
            if isinstance(exp, list | tuple) and len(out) != len(exp):
                return False, atol
            return bool(allclose(out, exp, atol)), atol
        return bool(exact), atol
    except Exception:  # noqa: BLE001 - EvalPlus fails the input on any exception
        return False, atol


def _mbpp_oracle(entry_point: str, exact: Any, out: Any, exp: Any, args: Any, atol: float) -> Any:
    """EvalPlus's special oracles for MBPP+ (evalplus/eval/__init__.py, `dataset == "mbpp"`)."""
    if entry_point == "are_equivalent":  # Mbpp/164
        return True
    if entry_point == "sum_div":  # Mbpp/295
        return exact or out == 0
    if entry_point == "surface_Area":  # Mbpp/581
        return exact or abs(out - _surface_area(*args)) <= atol
    if entry_point == "digit_distance_nums":  # Mbpp/558
        return exact or out == _digit_distance(*args)
    if entry_point in MBPP_OUTPUT_SET_EQ:
        return set(out) == set(exp)
    if entry_point in MBPP_OUTPUT_NOT_NONE:  # exp is whether the reference returned something
        return out == exp if isinstance(out, bool) else exp == (out is not None)
    return exact


def is_floats(value: Any) -> bool:
    """EvalPlus's `is_floats`: a float, a non-empty list or tuple of floats, or a float ndarray."""
    if isinstance(value, float):
        return True
    if isinstance(value, list | tuple) and value:
        return all(isinstance(item, float) for item in value)
    dtype = getattr(value, "dtype", None)
    return type(value).__name__ == "ndarray" and str(dtype) in ("float64", "float32")


def allclose(out: Any, exp: Any, atol: float) -> bool:
    """`numpy.allclose(out, exp, rtol=1e-07, atol=atol)`; without numpy, `_allclose`."""
    try:
        import numpy
    except Exception:  # noqa: BLE001 - not installed, or not allowed in this sandbox
        return _allclose(out, exp, atol)
    return bool(numpy.allclose(out, exp, rtol=RTOL, atol=atol))


def _allclose(out: Any, exp: Any, atol: float) -> bool:
    """numpy's |out - exp| <= atol + rtol * |exp|, element by element, for numbers and equally shaped
    (nested) lists and tuples of them; infinities match only themselves, NaN nothing."""
    if isinstance(exp, list | tuple):
        return (
            isinstance(out, list | tuple)
            and len(out) == len(exp)
            and all(_allclose(o, e, atol) for o, e in zip(out, exp, strict=True))
        )
    numbers = (int, float, complex)
    if not isinstance(out, numbers) or not isinstance(exp, numbers):
        return False
    if _infinite(out) or _infinite(exp):
        return out == exp
    return abs(out - exp) <= atol + RTOL * abs(exp)


def _infinite(value: int | float | complex) -> bool:
    if isinstance(value, complex):
        return math.isinf(value.real) or math.isinf(value.imag)
    return isinstance(value, float) and math.isinf(value)


def _function(code: str, entry_point: str, what: str) -> Callable[..., Any]:
    """`entry_point` of `code` run in a namespace of its own (EvalPlus's `exec(code, {})`)."""
    namespace: dict[str, Any] = {"__builtins__": builtins}
    with _silenced():
        exec(compile(code, f"<{what}>", "exec"), namespace)
    function: Callable[..., Any] = namespace[entry_point]
    return function


def _outputs(reference: Callable[..., Any], inputs: list[Any], not_none: bool) -> list[Any]:
    """EvalPlus's `trusted_exec`: the reference on a deep copy of each input."""
    outputs = []
    for args in inputs:
        with _silenced():
            out = reference(*copy.deepcopy(args))
        outputs.append(out is not None if not_none else out)
    return outputs


class _Discard:
    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def _silenced() -> Any:
    """EvalPlus's `swallow_io` for stdout and stderr: what the code prints is dropped."""
    sink = _Discard()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):  # type: ignore[type-var]
        yield


def _short(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001
        return f"<{type(value).__name__}>"
    return text if len(text) <= 120 else text[:117] + "..."


# ---- EvalPlus's special oracles (evalplus/eval/_special_oracle.py) ----


def _poly(xs: list[float], x: float) -> float:
    """HumanEval/32: the polynomial with coefficients xs at x."""
    return sum(coefficient * math.pow(x, power) for power, coefficient in enumerate(xs))


def _surface_area(base_edge: float, height: float) -> int:
    """Mbpp/581: a square pyramid's surface, the height being the apex's distance from the base."""
    slant = math.sqrt((base_edge / 2) ** 2 + height**2)
    return round(base_edge**2 + 4 * (base_edge * slant) / 2)


def _digit_distance(first: int, second: int) -> int:
    """Mbpp/558: the digits' distances summed, the shorter number padded with zeros."""
    width = max(len(str(first)), len(str(second)))
    return sum(
        abs(int(a) - int(b)) for a, b in zip(str(first).zfill(width), str(second).zfill(width), strict=True)
    )


# ---- MBPP+'s inputs as EvalPlus deserialises them (evalplus/data/mbpp.py) ----


def _all_tuples(items: Any) -> Any:
    """Every list, at any depth, a tuple."""
    return tuple(_all_tuples(item) for item in items) if isinstance(items, list) else items


def _arguments_tuples(inp: list[Any]) -> list[Any]:
    return [tuple(arg) for arg in inp]


def _arguments_lists_of_tuples(inp: list[Any]) -> list[Any]:
    return [[tuple(item) for item in arg] for arg in inp]


def _arguments_tuples_of_tuples(inp: list[Any]) -> list[Any]:
    return [tuple(tuple(item) for item in arg) for arg in inp]


def _first_list_of_tuples(inp: list[Any]) -> list[Any]:
    return [[tuple(item) for item in inp[0]], inp[1]]


def _first_tuple(inp: list[Any]) -> list[Any]:
    return [tuple(inp[0]), inp[1]]


def _second_tuple(inp: list[Any]) -> list[Any]:
    return [inp[0], tuple(inp[1])]


def _sets(inp: list[Any]) -> list[Any]:
    # A list of sets; an empty one becomes EvalPlus's `{}`, an empty dict.
    return [[set(item) if isinstance(item, list) and item else {} for item in inp[0]]]


def _tuple_of_tuples_and_items(inp: list[Any]) -> list[Any]:
    return [tuple(tuple(item) if isinstance(item, list) else item for item in inp[0])]


def _dict_of_tuples(inp: list[Any]) -> list[Any]:
    return [{key: tuple(value) for key, value in inp[0].items()}, *inp[1:]]


# Task number -> how EvalPlus turns the input's JSON lists and strings back into its arguments.
_MBPP_INPUTS: dict[int, Callable[[Any], Any]] = {
    **dict.fromkeys(
        (2, 116, 132, 143, 222, 261, 273, 394, 399, 421, 424, 429, 470, 560, 579, 596, 616, 630, 726, 740,
         744, 809),
        _arguments_tuples,
    ),
    **dict.fromkeys(
        (63, 64, 70, 94, 120, 237, 272, 299, 400, 409, 417, 438, 473, 614, 780), _arguments_lists_of_tuples
    ),
    **dict.fromkeys((75, 413, 444, 753), _first_list_of_tuples),
    **dict.fromkeys((106, 750), _second_tuple),
    **dict.fromkeys((250, 405, 446, 617, 720, 763, 808), _first_tuple),
    **dict.fromkeys((259, 401, 445), _arguments_tuples_of_tuples),
    **dict.fromkeys((580, 615, 791), _all_tuples),
    115: _sets,
    124: lambda inp: (float(inp[0]), complex(inp[1])),
    252: lambda inp: [complex(inp[0])],
    278: _tuple_of_tuples_and_items,
    307: lambda inp: [tuple(inp[0]), inp[1], inp[2]],
    722: _dict_of_tuples,
}  # fmt: skip


def parse_inputs(dataset: str, task_id: str, inputs: list[Any]) -> list[Any]:
    """The arguments of each input as EvalPlus calls the function with them."""
    if dataset != MBPP:
        return inputs
    convert = _MBPP_INPUTS.get(int(task_id.rsplit("/", 1)[-1]))
    return inputs if convert is None else [convert(inp) for inp in inputs]
