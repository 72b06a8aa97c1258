"""Best-of-N against unit-test slots per problem, for each band of true pass rate: where tests help.

    python tests/benchmarks/scaling_by_difficulty.py JOB [--solutions 32] [--budgets 1,2,4,...]
        [--repeats 10] [--seed 0]

Dynamic scaling's gain formula lambda (1 - lambda)^b assumes that every further test helps a
problem, less and less: best-of-N rising and concave in b. This prints, for a finished job with
ground truth (the database of CODERM_DATABASE_URL), fixed allocations re-scored on each band of
problems (as `coderm probe compare` re-scores the whole job): where a band's row falls, tests hurt
there and no allocation by that formula can gain from giving it more.
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from agents.scoring import ScoredProblem, rescore
from orchestrator.core.config import Settings
from orchestrator.core.db import session_scope
from orchestrator.observability.metrics import pass_rate_band
from orchestrator.reporting.evaluation import scored_problems


def band(problem: ScoredProblem) -> str:
    rate = sum(problem.sample_correct) / max(len(problem.sample_correct), 1)
    return "0 (none right)" if rate == 0 else "1 (all right)" if rate == 1 else pass_rate_band(rate)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("job")
    parser.add_argument("--solutions", type=int, default=32)
    parser.add_argument("--budgets", default="1,2,4,8,16,32,64")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    budgets = [int(b) for b in args.budgets.split(",")]
    with session_scope(Settings().effective_database_url) as session:
        problems = scored_problems(session, args.job)
    bands: dict[str, list[ScoredProblem]] = defaultdict(list)
    for problem in problems:
        bands[band(problem)].append(problem)
    print("pass rate", "problems", *(f"b={b}" for b in budgets), sep="\t")
    for name in sorted(bands):
        row = [rescore(bands[name], args.solutions, b, args.repeats, args.seed)[0].best_of_n for b in budgets]
        print(name, len(bands[name]), *(f"{100 * value:.1f}" for value in row), sep="\t")


if __name__ == "__main__":
    main()
