"""The job options of `run`, `submit` and `eval` are JobConfig's fields: the same defaults, bounds,
choices and help, an environment variable each, and the README's table lists them all."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import click
import pytest

from orchestrator.cli.jobs import JOB_OPTIONS, job_config, job_options
from orchestrator.cli.options import FieldOption, FieldPath
from orchestrator.core.config import JobConfig, SandboxLimits
from orchestrator.core.errors import ConfigurationError
from sandbox.cli import limit_options

README = Path(__file__).parents[2] / "README.md"


@click.command()
@job_options
def job_command(**options: Any) -> None:
    """Stands for `run`, `submit` and `eval`, which take the same job options."""


@pytest.fixture(autouse=True)
def no_coderm_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    # click reads CODERM_* variables for the options; the caller's own must not leak in.
    for name in [name for name in os.environ if name.startswith("CODERM_")]:
        monkeypatch.delenv(name)


def parse(*args: str) -> dict[str, Any]:
    with job_command.make_context("run", list(args)) as context:
        return dict(context.params)


def schema_of(path: FieldPath) -> dict[str, Any]:
    """The JSON Schema of the field at `path`: pydantic's own account of its default and bounds, to
    check the options against something other than the code that made them."""
    schema = JobConfig.model_json_schema()
    node: dict[str, Any] = schema
    for name in path:
        node = node["properties"][name]
        if "$ref" in node:
            node = schema["$defs"][node["$ref"].rsplit("/", 1)[-1]]
    # An optional field is anyOf [its type, null]; the option is its type, unset meaning None.
    for branch in node.get("anyOf", []):
        if branch.get("type") != "null":
            node = {**node, **branch}
    return node


def default_at(path: FieldPath) -> object:
    value: Any = JobConfig()
    for name in path:
        value = getattr(value, name)
    return value


def click_option(option: FieldOption) -> click.Option:
    return click.Option(list(option.names), **option.settings)


@pytest.mark.parametrize("option", JOB_OPTIONS.options, ids=lambda option: option.names[-1])
def test_each_job_option_has_its_fields_default_bounds_choices_and_help(option: FieldOption) -> None:
    made = click_option(option)
    assert made.envvar == "CODERM_" + option.name.upper()
    for path in option.paths:
        schema = schema_of(path)
        overrides_one_agent = option.names[-1] == f"--{path[0]}-{path[-1].replace('_', '-')}"
        if overrides_one_agent:
            assert made.default is None  # unset: the agent takes --backend (or its kin)
            assert f"(overrides --{path[-1].replace('_', '-')})" in (made.help or "")
        else:
            assert made.default == default_at(path)
            assert schema["description"] in (made.help or "")
        if isinstance(made.type, click.Choice):
            assert list(made.type.choices) == schema["enum"]
        elif isinstance(made.type, click.IntRange | click.FloatRange):
            assert (made.type.min, made.type.min_open) in (
                (schema.get("minimum"), False),
                (schema.get("exclusiveMinimum"), True),
            )
            assert (made.type.max, made.type.max_open) in (
                (schema.get("maximum"), False),
                (schema.get("exclusiveMaximum"), True),
            )
        else:
            assert not {"minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum", "enum"} & set(schema)


def test_the_job_options_keep_their_names_and_order() -> None:
    names = ["/".join(param.opts + param.secondary_opts) for param in job_command.params]
    assert names == [
        "-n/--n-solutions",
        "-m/--n-tests",
        "--backend",
        "--policy-backend",
        "--coderm-backend",
        "--model",
        "--policy-model",
        "--coderm-model",
        "--chat-format",
        "--policy-chat-format",
        "--coderm-chat-format",
        "--temperature",
        "--top-p",
        "--max-new-tokens",
        "--stop",
        "--batch-size",
        "--time-limit",
        "--memory-mb",
        "--scaling",
        "--budget-avg",
        "--min-tests",
        "--max-tests",
        "--tau",
        "--probe",
        "--feature-backend",
        "--feature-model",
        "--chunk-size",
        "--prune/--no-prune",
        "--selection",
        "--extraction",
        "--seed",
        "--replay-solutions",
        "--replay-tests",
    ]


def readme_job_option_rows() -> list[list[str]]:
    text = README.read_text(encoding="utf-8")
    table = text.split("\n| flag | variable | default | meaning |\n| --- | --- | --- | --- |\n", 1)[1]
    lines = table.split("\n\n", 1)[0].splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]


def test_the_readme_lists_every_job_option_with_its_variable_and_default() -> None:
    rows = readme_job_option_rows()
    for param in job_command.params:
        assert isinstance(param, click.Option)
        flag = param.opts[-1]
        row = next((row for row in rows if re.search(rf"`[^`]*{flag}\b(?!-)", row[0])), None)
        assert row is not None, f"README.md's job options table has no row for {flag}"
        assert f"`{param.envvar}`" in row[1], f"README.md gives {flag} another variable: {row[1]}"
        if isinstance(param.default, int | float | str):  # not unset, None or no --stop
            assert str(param.default) in row[2], f"README.md gives {flag} another default: {row[2]}"


def test_given_no_option_expect_the_default_job() -> None:
    assert job_config(parse()) == JobConfig()


def test_given_a_backend_for_both_and_one_for_coderm_expect_each_agent_its_own() -> None:
    config = job_config(
        parse("--backend", "sglang", "--coderm-backend", "openai", "--model", "m", "--policy-model", "p")
    )
    assert (config.policy.backend, config.policy.model) == ("sglang", "p")
    assert (config.coderm.backend, config.coderm.model) == ("openai", "m")


def test_sampling_options_set_both_agents() -> None:
    config = job_config(parse("--temperature", "0.2", "--stop", "a", "--stop", "b", "--batch-size", "3"))
    for agent in (config.policy, config.coderm):
        assert agent.sampling.temperature == 0.2 and agent.sampling.stop == ["a", "b"]
        assert agent.batch_size == 3


def test_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CODERM_N_SOLUTIONS", "7")
    monkeypatch.setenv("CODERM_STOP", "x y")
    monkeypatch.setenv("CODERM_PROBE", "2")
    config = job_config(parse())
    assert config.n_solutions == 7 and config.policy.sampling.stop == ["x", "y"] and config.scaling.probe == 2


@pytest.mark.parametrize(
    ("args", "environment", "prune"),
    [
        ([], None, None),
        (["--prune"], None, True),
        (["--no-prune"], None, False),
        ([], "no", False),
        ([], "1", True),
        (["--prune"], "false", True),  # the flag wins over the environment
    ],
)
def test_prune_is_a_pair_of_flags_unset_by_default(
    args: list[str], environment: str | None, prune: bool | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if environment is not None:
        monkeypatch.setenv("CODERM_PRUNE", environment)
    assert job_config(parse(*args)).prune is prune


@pytest.mark.parametrize(
    ("prune", "has_ground_truth", "prunes"),
    [(None, False, True), (None, True, False), (True, True, True), (False, False, False)],
)
def test_unset_prune_means_early_exit_only_without_ground_truth(
    prune: bool | None, has_ground_truth: bool, prunes: bool
) -> None:
    assert JobConfig(prune=prune).prunes(has_ground_truth) is prunes


def test_the_prune_flags_say_so_in_the_help() -> None:
    (option,) = [param for param in job_command.params if param.name == "prune"]
    assert isinstance(option, click.Option)
    assert option.opts == ["--prune"] and option.secondary_opts == ["--no-prune"]
    assert option.default is None and option.envvar == "CODERM_PRUNE"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-n", "10001"], "--n-solutions"),  # JobConfig's upper bound, not only click's lower one
        (["--top-p", "0"], "--top-p"),
        (["--scaling", "random"], "--scaling"),
        (["--min-tests", "5", "--max-tests", "3"], "--min-tests"),
        (["--scaling", "greedy", "--budget-avg", "500"], "--budget-avg"),
        (["--stop", "s"] * 17, "--stop: List should have at most 16 items"),
    ],
)
def test_values_outside_the_config_are_refused_naming_the_option(args: list[str], message: str) -> None:
    with pytest.raises(click.BadParameter) as refused:
        job_config(parse(*args))
    assert message in refused.value.format_message()


def test_a_chat_format_the_backend_cannot_use_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="cannot use the server's chat template"):
        job_config(parse("--backend", "sglang", "--chat-format", "chat"))


def test_the_sandbox_commands_limits_are_sandbox_limits_fields() -> None:
    assert [option.names for option in limit_options.options] == [("--time-limit",), ("--memory-mb",)]
    assert limit_options.build({"time_limit": 2.5, "memory_mb": 512}) == SandboxLimits(
        time_limit_s=2.5, memory_mb=512
    )
