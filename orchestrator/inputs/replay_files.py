"""Published generations, joined to a problem file by task id, for the replay backend.

CodeRM's release has one JSON line per task:

* `{task_id, solutions: [{solution, plus_status}]}` or `{task_id, solutions: [code]}`: policy samples,
  with EvalPlus' verdict on each where it is given (kept as the solutions' ground-truth labels,
  `Problem.replay_labels`);
* `{task_id, unit_tests: [code]}`: CodeRM's unit tests.

`coderm run FILE --replay-solutions S --replay-tests T` gives each problem of FILE the samples of its
task id, as if FILE carried them inline; other fields of the lines are ignored. Reading is all or
nothing, like problem files: a task id the problem file does not have, a task id given twice, or
samples for a problem that already has them inline stop everything with `file:line: what is wrong`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Literal

from pydantic import ValidationError

from orchestrator.core.errors import ProblemFileError
from orchestrator.inputs.problem_files import (
    ProblemFile,
    ProblemSpec,
    describe_validation_error,
    read_json_lines,
    read_samples,
    record_task_id,
)

SampleField = Literal["solutions", "unit_tests"]


def attach_replay_files(
    problem_file: ProblemFile, solutions: Path | None = None, unit_tests: Path | None = None
) -> ProblemFile:
    """`problem_file` with the samples of the given release files added to its problems."""
    specs = list(problem_file.problems)
    for path, field in ((solutions, "solutions"), (unit_tests, "unit_tests")):
        if path is not None:
            specs = _attach(problem_file.path, specs, Path(path), field)  # type: ignore[arg-type]
    return dataclasses.replace(problem_file, problems=specs)


def _attach(
    problem_path: Path, specs: list[ProblemSpec], path: Path, field: SampleField
) -> list[ProblemSpec]:
    position = {spec.task_id: i for i, spec in enumerate(specs)}
    specs = list(specs)
    seen: dict[str, int] = {}
    for line, record in read_json_lines(path):
        task_id = record_task_id(path, line, record)
        if task_id in seen:
            raise ProblemFileError(
                str(path), line, f"task_id {task_id!r} already appears on line {seen[task_id]}"
            )
        seen[task_id] = line
        if task_id not in position:
            raise ProblemFileError(str(path), line, f"task_id {task_id!r} is not a problem of {problem_path}")
        if field not in record:
            raise ProblemFileError(str(path), line, f"missing '{field}' (a list of code strings)")
        spec = specs[position[task_id]]
        if getattr(spec, field) is not None:
            raise ProblemFileError(
                str(path), line, f"task {task_id!r} already has '{field}' in the problem file {problem_path}"
            )
        samples, labels = read_samples(path, line, field, record[field])
        update: dict[str, Any] = {field: samples}
        if field == "solutions":
            update["solution_labels"] = labels
        try:
            specs[position[task_id]] = ProblemSpec.model_validate(spec.model_dump() | update)
        except ValidationError as exc:
            raise ProblemFileError(str(path), line, describe_validation_error(exc)) from exc
    if not seen:
        raise ProblemFileError(str(path), None, "the file holds no generations")
    return specs
