"""EvalPlus's own data as the ground truth of the `humaneval+` and `mbpp+` benchmarks.

EvalPlus releases HumanEval+ and MBPP+ as `HumanEvalPlus.jsonl.gz` and `MbppPlus.jsonl.gz`, one task a
line: `task_id` (`HumanEval/N`, `Mbpp/N`, the ids of the CodeRM prompt files), `prompt`,
`canonical_solution`, `entry_point`, `base_input`, `plus_input`, `atol` and fields we do not use
(`contract`, `assertion`, ...). With CODERM_EVALPLUS_DIR naming a folder that holds them (plain or
gzipped, or as EvalPlus's cache names them, `HumanEvalPlus-v0.1.10.jsonl`), each task becomes a
ground-truth program that runs its base and plus inputs by EvalPlus's rules (agents/evalplus.py).
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path
from typing import Any

from agents.evalplus import Dataset, EvalPlusTask, ground_truth_program
from agents.ground_truth import ground_truth_test
from orchestrator.core.errors import ConfigurationError, ProblemFileError
from orchestrator.inputs.problem_files import ProblemFile, read_json_lines, record_task_id
from sandbox.programs import MAX_PROGRAM_BYTES

ENV_VAR = "CODERM_EVALPLUS_DIR"
# benchmark -> (EvalPlus's file name without its extension, EvalPlus's name of the dataset)
EVALPLUS_SETS: dict[str, tuple[str, Dataset]] = {
    "humaneval+": ("HumanEvalPlus", "humaneval"),
    "mbpp+": ("MbppPlus", "mbpp"),
}
_SHOWN_IDS = 5  # task ids a note names before it says "and N more"


def evalplus_dir() -> Path | None:
    """The folder CODERM_EVALPLUS_DIR names, or None where it is unset or empty."""
    value = os.environ.get(ENV_VAR)
    return Path(value) if value else None


def find_evalplus_file(folder: Path, benchmark: str) -> Path:
    """EvalPlus's file of `benchmark` in `folder`: `<Name>.jsonl[.gz]`, else the one versioned
    `<Name>-v<version>.jsonl[.gz]` (EvalPlus's cache). ConfigurationError where there is none or
    several, since the user asked for EvalPlus's tests."""
    name = EVALPLUS_SETS[benchmark][0]
    for candidate in (folder / f"{name}.jsonl", folder / f"{name}.jsonl.gz"):
        if candidate.is_file():
            return candidate
    versioned = sorted(
        p
        for pattern in (f"{name}-v*.jsonl", f"{name}-v*.jsonl.gz")
        for p in folder.glob(pattern)
        if p.is_file()
    )
    if len(versioned) == 1:
        return versioned[0]
    if versioned:
        raise ConfigurationError(
            f"{ENV_VAR}={folder} holds several versions of {name}: "
            f"{', '.join(p.name for p in versioned)}; keep one, or name it {name}.jsonl"
        )
    raise ConfigurationError(
        f"benchmark {benchmark!r}: {ENV_VAR}={folder} holds no {name}.jsonl or {name}.jsonl.gz "
        f"(EvalPlus's release file); unset {ENV_VAR} to run without EvalPlus's tests"
    )


def read_evalplus_file(path: Path, dataset: Dataset) -> dict[str, EvalPlusTask]:
    """Every task of an EvalPlus file by task id; ProblemFileError at the first bad line."""
    tasks: dict[str, EvalPlusTask] = {}
    for line, record in read_json_lines(path):
        task = _task(path, line, record, dataset)
        if task.task_id in tasks:
            raise ProblemFileError(str(path), line, f"task_id {task.task_id!r} appears twice")
        tasks[task.task_id] = task
    if not tasks:
        raise ProblemFileError(str(path), None, "the file holds no tasks")
    return tasks


def _task(path: Path, line: int, record: dict[str, Any], dataset: Dataset) -> EvalPlusTask:
    def fail(message: str) -> ProblemFileError:
        return ProblemFileError(str(path), line, message)

    task_id = record_task_id(path, line, record)
    entry_point = record.get("entry_point")
    if not isinstance(entry_point, str) or not entry_point.isidentifier():
        raise fail("'entry_point' must be a Python name")
    # EvalPlus runs prompt + canonical_solution; a record with only `code` holds the whole function.
    if isinstance(record.get("canonical_solution"), str) and isinstance(record.get("prompt"), str):
        reference = record["prompt"] + record["canonical_solution"]
    elif isinstance(record.get("code"), str):
        reference = record["code"]
    else:
        raise fail("needs 'prompt' and 'canonical_solution' (or 'code'): the reference solution")
    inputs = {}
    for name in ("base_input", "plus_input"):
        value = record.get(name)
        if not isinstance(value, list) or not all(isinstance(args, list) for args in value):
            raise fail(f"'{name}' must be a list of inputs, each a list of arguments")
        inputs[name] = value
    atol = record.get("atol", 0)
    if isinstance(atol, bool) or not isinstance(atol, int | float) or not math.isfinite(atol) or atol < 0:
        raise fail("'atol' must be a number, 0 or more")
    if dataset == "mbpp" and not task_id.rsplit("/", 1)[-1].isdigit():
        raise fail(f"task_id {task_id!r} is not Mbpp/<number>: EvalPlus reads MBPP+ inputs by the number")
    return EvalPlusTask(task_id, dataset, entry_point, reference, atol=float(atol), **inputs)


def fitted_program(task: EvalPlusTask) -> str | None:
    """`task`'s ground-truth program, compressed where it would be too large for the sandbox
    (`sandbox.programs.MAX_PROGRAM_BYTES`); None where even that is too large."""
    for compress in (False, True):
        program = ground_truth_program(task, compress=compress)
        if len(ground_truth_test(program).encode("utf-8")) <= MAX_PROGRAM_BYTES:
            return program
    return None


def attach_evalplus(problems: ProblemFile, benchmark: str, folder: Path) -> ProblemFile:
    """`problems` (a CodeRM prompt file) with EvalPlus's ground truth from `folder`, by task id;
    a problem EvalPlus's file lacks, or whose program the sandbox cannot take, has none (a note
    says which)."""
    path = find_evalplus_file(folder, benchmark)
    tasks = read_evalplus_file(path, EVALPLUS_SETS[benchmark][1])
    programs = {
        task_id: fitted_program(tasks[task_id])
        for task_id in {p.task_id for p in problems.problems} & tasks.keys()
    }
    notes = [
        f"{benchmark}: ground truth from EvalPlus's {path.name}: base and plus inputs, EvalPlus's "
        "tolerance rules"
    ]
    missing = [p.task_id for p in problems.problems if p.task_id not in tasks]
    if missing:
        notes.append(f"{len(missing)} task(s) not in {path.name}, so not scored: {_some(missing)}")
    too_large = [task_id for task_id, program in programs.items() if program is None]
    if too_large:
        notes.append(
            f"{len(too_large)} task(s) whose EvalPlus inputs make a program over the sandbox's "
            f"{MAX_PROGRAM_BYTES // 1024} KiB even compressed, so not scored: {_some(sorted(too_large))}"
        )
    return dataclasses.replace(
        problems,
        problems=[p.model_copy(update={"ground_truth": programs.get(p.task_id)}) for p in problems.problems],
        notes=[*problems.notes, *notes],
    )


def _some(task_ids: list[str]) -> str:
    shown = ", ".join(task_ids[:_SHOWN_IDS])
    return shown if len(task_ids) <= _SHOWN_IDS else f"{shown} and {len(task_ids) - _SHOWN_IDS} more"
