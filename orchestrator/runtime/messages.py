"""What each task accepts: the schema of every message that crosses the broker.

Only JSON crosses the broker (`orchestrator.runtime.celery_app`), and JSON from anyone who may publish to a
queue is untrusted input. Every task of ours names the model of its arguments (`arguments_model`);
`orchestrator.runtime.task_base.CodermTask` checks each message against it before the task runs and refuses
one that does not fit, with the reason logged, instead of running, failing or retrying on it.

    PlanArguments             plan_problems: the ids of up to PLAN_BATCH problems
    ProblemArguments          sample_solutions, sample_unit_tests, extract_features,
                              select_solution: one problem id
    SandboxChunkArguments     execute_chunk: a problem id, a chunk number and solution ids
    JobRequest                submit_job: a whole job from another service (the public contract,
                              published as JSON Schema in schemas/submit_job.schema.json)
"""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from orchestrator.core.config import JobConfig
from orchestrator.core.errors import InvalidMessageError
from orchestrator.inputs.problem_files import MAX_SAMPLES, ProblemSpec, config_gaps, describe_validation_error

RowId = Annotated[int, Field(ge=1)]

PLAN_BATCH = 100
"""The most problems one plan message names. Planning a problem is a few statements; a message
and a transaction of its own cost more than that (measured in process: 3-6 ms of CPU for a problem
planned alone, under 1 ms in a batch), so a job's problems are planned in batches."""


class PlanArguments(BaseModel):
    """The plan step of a batch of problems (`orchestrator.workflow.plan`)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    problem_ids: list[RowId] = Field(min_length=1, max_length=PLAN_BATCH)


class ProblemArguments(BaseModel):
    """A step of one problem's workflow; the data it works on is in the database."""

    # Strict: an id must arrive as a JSON integer, not a string or a float that happens to convert.
    model_config = ConfigDict(extra="forbid", strict=True)

    problem_id: RowId


class SandboxChunkArguments(ProblemArguments):
    part: int = Field(ge=0)
    solution_ids: list[RowId] = Field(min_length=1, max_length=MAX_SAMPLES)


class JobRequest(BaseModel):
    """A job as any producer submits it: the keyword arguments of `coderm.orchestrator.submit_job`.

    Checked as a problem file is: every problem against the problem schema, task ids unique, and
    each problem carries what `config` needs of it (samples to replay, ground truth for the oracle).
    """

    model_config = ConfigDict(extra="forbid", title="coderm.orchestrator.submit_job")

    problems: list[ProblemSpec] = Field(
        min_length=1, description="The problems of the job, in order; task ids unique within the job."
    )
    config: JobConfig = Field(
        default_factory=JobConfig,
        description="Job options (samples per problem, backends, models, sampling, sandbox limits); "
        "anything left out takes its default.",
    )
    idempotency_key: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="Submitting again with the same key returns the first job instead of a new one; "
        "the job is found by it in the `jobs` table. Without one, the message's Celery task id is "
        "used, so a redelivered message never makes a second job.",
    )
    source: str | None = Field(
        default=None, max_length=1024, description="Where the problems came from, kept with the job."
    )

    @model_validator(mode="after")
    def _fits_its_config(self) -> Self:
        seen: dict[str, int] = {}
        for position, problem in enumerate(self.problems):
            if (first := seen.setdefault(problem.task_id, position)) != position:
                raise ValueError(
                    f"problems[{position}]: task_id {problem.task_id!r} is in problems[{first}] too"
                )
        for position, reason in config_gaps(self.problems, self.config):
            raise ValueError(f"problems[{position}]: {reason}")
        return self


def job_request(
    problems: Sequence[ProblemSpec | Mapping[str, Any]],
    config: Mapping[str, Any],
    idempotency_key: str | None = None,
    source: str | None = None,
) -> JobRequest:
    """A checked job request; a bad one raises `InvalidMessageError` with a one-line reason."""
    try:
        return JobRequest.model_validate(
            {
                "problems": list(problems),
                "config": dict(config),
                "idempotency_key": idempotency_key,
                "source": source,
            }
        )
    except ValidationError as exc:
        raise InvalidMessageError(describe_validation_error(exc)) from exc


def bind_message(
    run: Callable[..., Any], model: type[BaseModel], args: Sequence[Any], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """A message's args and kwargs checked against a task's signature and argument model.

    Returns the arguments by name, parsed (a `JobRequest`'s problems arrive as `ProblemSpec`s); raises
    `InvalidMessageError` saying what does not fit.
    """
    try:
        # Partial: which arguments are required, and their defaults, is the model's to say.
        bound = inspect.signature(run).bind_partial(*args, **kwargs)
    except TypeError as exc:  # surplus or unknown arguments
        raise InvalidMessageError(str(exc)) from exc
    try:
        parsed = model.model_validate(bound.arguments)
    except ValidationError as exc:
        raise InvalidMessageError(describe_validation_error(exc)) from exc
    return {name: getattr(parsed, name) for name in type(parsed).model_fields}


SCHEMA_FILES: dict[str, type[BaseModel]] = {"submit_job.schema.json": JobRequest}
"""The public messages, by the name of their JSON Schema file in schemas/."""


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema of each public message, generated from its model."""
    return {
        name: {"$schema": "https://json-schema.org/draft/2020-12/schema", **model.model_json_schema()}
        for name, model in SCHEMA_FILES.items()
    }


def write_json_schemas(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for name, schema in json_schemas().items():
        (folder / name).write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":  # `make schemas`
    write_json_schemas(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("schemas"))
