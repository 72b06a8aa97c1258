"""Record the sandbox's verdicts on a replay file, or compare them with a recording.

    python tests/benchmarks/verdict_snapshot.py REPLAY.jsonl --write SNAPSHOT.jsonl
    python tests/benchmarks/verdict_snapshot.py REPLAY.jsonl --compare SNAPSHOT.jsonl

REPLAY.jsonl is a file of `make_replay_benchmark.py` (HumanEval's form plus `solutions` and
`unit_tests`). For every problem, each distinct solution runs against each distinct unit test and
against HumanEval's own test program (the ground truth); a line of the snapshot holds the outcome
letters of that matrix. A change to the sandbox must leave honest verdicts as they were: record a
snapshot before the change, compare after it. `--compare` prints every pair that differs and exits
non-zero if any does.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from agents.ground_truth import ground_truth_test
from orchestrator.core.config import SandboxLimits
from sandbox.executor import JailPool, unique
from sandbox.policy import SandboxPolicy


def problem_matrix(pool: JailPool, record: dict[str, Any], limits: SandboxLimits) -> dict[str, Any]:
    """The outcome letters of one replayed problem's distinct solutions x (distinct tests + ground truth)."""
    solutions, _ = unique(record["solutions"])
    tests, _ = unique(record["unit_tests"])
    truth = ground_truth_test(f"{record['test']}\ncheck({record['entry_point']})\n")
    matrix = pool.run_matrix(solutions, [*tests, truth], limits)
    return {
        "task_id": record["task_id"],
        "solutions": solutions,
        "tests": tests,
        "outcomes": ["".join(cell.outcome.value for cell in row[:-1]) for row in matrix],
        "ground_truth": "".join(row[-1].outcome.value for row in matrix),
    }


def differences(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Every pair whose verdict changed, as readable lines."""
    found = []
    for i, (old, new) in enumerate(zip(before["outcomes"], after["outcomes"], strict=True)):
        found += [
            f"{before['task_id']} solution {i} test {j}: {a} -> {b}"
            for j, (a, b) in enumerate(zip(old, new, strict=True))
            if a != b
        ]
    found += [
        f"{before['task_id']} solution {i} ground truth: {a} -> {b}"
        for i, (a, b) in enumerate(zip(before["ground_truth"], after["ground_truth"], strict=True))
        if a != b
    ]
    return found


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("replay", type=Path)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--write", type=Path, help="record the verdicts into this file")
    mode.add_argument("--compare", type=Path, help="compare the verdicts with this recording")
    parser.add_argument("--problems", type=int, default=0, help="only the first N problems (0: all)")
    args = parser.parse_args()

    records = [json.loads(line) for line in args.replay.read_text().splitlines() if line.strip()]
    if args.problems:
        records = records[: args.problems]
    recorded = {}
    if args.compare:
        recorded = {
            line["task_id"]: line for line in map(json.loads, args.compare.read_text().splitlines()) if line
        }
    limits = SandboxLimits(time_limit_s=1.0)
    pool = JailPool(SandboxPolicy())
    started, pairs, changed = time.perf_counter(), 0, []
    out = args.write.open("w") if args.write else None
    try:
        for record in records:
            result = problem_matrix(pool, record, limits)
            pairs += len(result["solutions"]) * (len(result["tests"]) + 1)
            if out is not None:
                out.write(json.dumps(result) + "\n")
            else:
                before = recorded[record["task_id"]]
                if before["solutions"] != result["solutions"] or before["tests"] != result["tests"]:
                    sys.exit(f"{record['task_id']}: the recording was made from another replay file")
                changed += differences(before, result)
            print(f"{record['task_id']}: {pairs} pairs, {time.perf_counter() - started:.0f} s", flush=True)
    finally:
        pool.close()
        if out is not None:
            out.close()
    print(f"{pairs} distinct pairs in {time.perf_counter() - started:.1f} s")
    if args.compare:
        print("\n".join(changed) if changed else "every verdict is as recorded")
        sys.exit(1 if changed else 0)


if __name__ == "__main__":
    main()
