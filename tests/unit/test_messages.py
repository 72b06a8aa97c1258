"""Task messages are checked against their schemas before any task runs."""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import jsonschema
import pytest

from orchestrator.core.errors import InvalidMessageError
from orchestrator.runtime.messages import (
    JobRequest,
    ProblemArguments,
    SandboxChunkArguments,
    bind_message,
    job_request,
    json_schemas,
)

SCHEMAS = Path(__file__).parents[2] / "schemas"


def plan(problem_id: int) -> None:
    """Stands for a per-problem task's `run`."""


def chunk(problem_id: int, part: int, solution_ids: list[int]) -> None:
    """Stands for the sandbox task's `run`."""


def submit(
    problems: list, config: dict, idempotency_key: str | None = None, source: str | None = None
) -> None:
    """Stands for submit_job's `run`."""


PROBLEM = {"task_id": "add", "question": "Write add(a, b).", "solutions": ["def add(a, b): return a + b"]}


def test_given_a_well_formed_message_expect_its_arguments_by_name() -> None:
    assert bind_message(plan, ProblemArguments, [7], {}) == {"problem_id": 7}
    assert bind_message(plan, ProblemArguments, [], {"problem_id": 7}) == {"problem_id": 7}
    assert bind_message(chunk, SandboxChunkArguments, [7, 0, [1, 2]], {}) == {
        "problem_id": 7,
        "part": 0,
        "solution_ids": [1, 2],
    }


@pytest.mark.parametrize(
    ("args", "kwargs", "reason"),
    [
        (["7"], {}, "'problem_id' Input should be a valid integer"),
        ([7.5], {}, "'problem_id' Input should be a valid integer"),
        ([True], {}, "'problem_id' Input should be a valid integer"),
        ([0], {}, "'problem_id' Input should be greater than or equal to 1"),
        ([None], {}, "'problem_id' Input should be a valid integer"),
        ([], {}, "'problem_id' Field required"),
        ([7, 8], {}, "too many positional arguments"),
        ([7], {"extra": 1}, "got an unexpected keyword argument 'extra'"),
    ],
)
def test_given_a_malformed_problem_message_expect_the_reason(args: list, kwargs: dict, reason: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        bind_message(plan, ProblemArguments, args, kwargs)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        ([7, 0, []], "'solution_ids' List should have at least 1 item after validation, not 0"),
        ([7, 0, [1, "2"]], "'solution_ids.1' Input should be a valid integer"),
        ([7, -1, [1]], "'part' Input should be greater than or equal to 0"),
        ([7, 0, "1,2"], "'solution_ids' Input should be a valid list"),
    ],
)
def test_given_a_malformed_chunk_message_expect_the_reason(args: list, reason: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        bind_message(chunk, SandboxChunkArguments, args, {})
    assert str(caught.value) == reason


def test_a_job_request_parses_problems_and_fills_in_the_config() -> None:
    arguments = bind_message(submit, JobRequest, [], {"problems": [PROBLEM], "config": {"n_solutions": 3}})
    assert arguments["problems"][0].task_id == "add"
    assert arguments["config"].n_solutions == 3 and arguments["config"].n_tests == 100
    assert arguments["idempotency_key"] is None
    # What the message leaves out, the model fills in.
    assert bind_message(submit, JobRequest, [[PROBLEM]], {})["config"].n_solutions == 100


@pytest.mark.parametrize(
    ("problems", "config", "reason"),
    [
        ([], {}, "'problems' List should have at least 1 item after validation, not 0"),
        ([{"task_id": "a"}], {}, "'problems.0.question' Field required"),
        ([{**PROBLEM, "questoin": "x"}], {}, "'problems.0.questoin' Extra inputs are not permitted"),
        ([PROBLEM, PROBLEM], {}, "problems[1]: task_id 'add' is in problems[0] too"),
        ([PROBLEM], {"n_solution": 5}, "'config.n_solution' Extra inputs are not permitted"),
        ([PROBLEM], {"n_solutions": -1}, "'config.n_solutions' Input should be greater than or equal to 1"),
        (
            [PROBLEM],
            {"coderm": {"backend": "replay"}},
            "problems[0]: the coderm agent uses the replay backend, but task 'add' has no 'unit_tests'",
        ),
        (
            [PROBLEM],
            {"scaling": {"policy": "oracle", "budget_avg": 4}},
            "problems[0]: the oracle allocation needs true pass rates, but task 'add' has no ground truth "
            "(HumanEval tests, 'ground_truth', or labelled solutions)",
        ),
    ],
)
def test_given_a_bad_job_request_expect_one_line_saying_what_is_wrong(
    problems: list, config: dict, reason: str
) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        job_request(problems, config)
    assert str(caught.value) == reason


def test_every_coderm_task_declares_the_model_of_its_arguments(tmp_path: Path) -> None:
    from orchestrator.core.config import Settings
    from orchestrator.runtime.celery_app import create_app

    app = create_app(Settings(home=tmp_path))
    tasks = {name: task for name, task in app.tasks.items() if name.startswith("coderm.")}
    assert {
        "coderm.orchestrator.submit_job",
        "coderm.orchestrator.plan_problems",
        "coderm.sandbox.execute_chunk",
    } <= set(tasks)
    for name, task in tasks.items():
        parameters = list(inspect.signature(task.run).parameters)
        assert list(task.arguments_model.model_fields) == parameters, name


def test_the_committed_json_schemas_are_the_generated_ones() -> None:
    for name, schema in json_schemas().items():
        committed = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
        assert committed == schema, f"schemas/{name} is out of date: run `make schemas`"


def test_the_json_schema_accepts_a_job_and_refuses_a_malformed_one() -> None:
    schema = json.loads((SCHEMAS / "submit_job.schema.json").read_text(encoding="utf-8"))
    validator = jsonschema.Draft202012Validator(schema)
    validator.validate({"problems": [PROBLEM], "config": {"n_solutions": 4}, "idempotency_key": "k"})
    for bad in (
        {"problems": []},
        {"problems": [{"task_id": "a"}]},
        {"problems": [PROBLEM], "config": {"n_solution": 4}},
        {"problems": [PROBLEM], "priority": 1},
    ):
        assert not validator.is_valid(bad), bad
