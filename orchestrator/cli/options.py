"""Click options from pydantic fields, so that a config model is the one definition of its options.

A field marked `CliOption` (orchestrator/core/config.py) becomes one click option whose default,
range (from ge/gt/le/lt), choices (from a Literal) and help (the description) are the field's own,
settable from the environment as CODERM_ and the long name; a yes/no field becomes a pair of flags
(`--prune/--no-prune`), which leave an optional field unset (None) when neither is given. Nested
models are walked, so an option knows the path of the field it sets; an option found at several
paths sets them all (one `--temperature` for both agents), and a `per_agent` field also gets one
option per agent (`--policy-backend`) that overrides the shared one for that agent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import NoneType, UnionType
from typing import Any, Generic, Literal, TypeVar, Union, get_args, get_origin

import annotated_types
import click
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo

from orchestrator.core.config import CliOption

Model = TypeVar("Model", bound=BaseModel)
Command = TypeVar("Command", bound=Callable[..., Any])
FieldPath = tuple[str, ...]
"""Where a field is, from the model down: ("policy", "sampling", "temperature")."""
MarkedField = tuple[CliOption, FieldInfo, FieldPath]


@dataclass(frozen=True)
class FieldOption:
    """One command-line option and the fields it sets."""

    names: tuple[str, ...]
    """e.g. ("-n", "--n-solutions")"""
    settings: dict[str, Any]
    """click.Option's keyword arguments: type, default, envvar, help, ..."""
    paths: tuple[FieldPath, ...]

    @property
    def name(self) -> str:
        """The name click gives the option's value, e.g. n_solutions (prune for --prune/--no-prune)."""
        return self.names[-1].split("/")[0].removeprefix("--").replace("-", "_")


class ModelOptions(Generic[Model]):
    """The options of a model's marked fields: a decorator that adds them to a command, and `build`,
    which makes the model of the values click parsed."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model
        self.options = list(_field_options(model))

    def __call__(self, command: Command) -> Command:
        # click lists the options of a command in the reverse of the order its decorators ran.
        for option in reversed(self.options):
            command = click.option(*option.names, **option.settings)(command)
        return command

    def build(self, values: Mapping[str, Any]) -> Model:
        """The model of the parsed `values` (other commands' options among them are ignored).

        An option left unset (None) leaves its fields at the model's defaults; the options come in
        field order, so a per-agent option is applied after the shared one it overrides. Values that
        each option allows but the model refuses together (min_tests above max_tests) are a bad
        parameter, like an out-of-range one.
        """
        fields: dict[str, Any] = {}
        for option in self.options:
            value = values[option.name]
            if value is None:
                continue
            for *parents, name in option.paths:
                target = fields
                for parent in parents:
                    target = target.setdefault(parent, {})
                target[name] = list(value) if option.settings.get("multiple") else value
        try:
            return self.model.model_validate(fields)
        except ValidationError as exc:
            raise click.BadParameter(self._describe(exc)) from exc

    def _describe(self, exc: ValidationError) -> str:
        """The model's complaints on one line, each named by its option where it has one (a whole
        model's, like min_tests above max_tests, names the options in its message)."""
        flags: dict[FieldPath, str] = {}
        for option in self.options:
            for path in option.paths:
                flags.setdefault(path, option.names[-1])  # the shared option before the per-agent one
        complaints = []
        for error in exc.errors():
            message = error["msg"].removeprefix("Value error, ")
            flag = flags.get(tuple(str(part) for part in error["loc"]))
            complaints.append(f"{flag}: {message}" if flag else message)
        return "; ".join(dict.fromkeys(complaints))  # --stop's complaint comes once, not per agent


def _field_options(model: type[BaseModel]) -> Iterator[FieldOption]:
    """One option per marker, with every path its field was found at, in field order; a per-agent
    option right after the shared one."""
    found: dict[str, tuple[CliOption, FieldInfo, list[FieldPath]]] = {}
    for marker, field, path in _marked_fields(model, ()):
        _, first_field, paths = found.setdefault(marker.long, (marker, field, []))
        if first_field is not field:  # one option, two meanings: a typo in a marker
            raise ValueError(f"{marker.long} marks both {'.'.join(paths[0])} and {'.'.join(path)}")
        paths.append(path)
    for marker, field, paths in found.values():
        names = _declarations(marker.long, marker.short, field)
        help_text = field.description or ""
        if marker.per_agent:
            help_text = f"{_label(paths[0])} of both agents: {help_text}"
        default = field.get_default(call_default_factory=True)
        yield FieldOption(names, _click_settings(field, marker.long, help_text, default), tuple(paths))
        if marker.per_agent:
            for path in paths:
                agent = path[-2]  # the field that holds this agent's config: policy or coderm
                long = f"--{agent}-{marker.long.removeprefix('--')}"
                help_text = f"{_label(path)} of the {agent} agent (overrides {marker.long})."
                yield FieldOption(
                    _declarations(long, None, field), _click_settings(field, long, help_text, None), (path,)
                )


def _declarations(long: str, short: str | None, field: FieldInfo) -> tuple[str, ...]:
    """click's names of an option: a yes/no field is a pair of flags, --prune/--no-prune."""
    if _without_none(field.annotation) is bool:
        if short is not None:
            raise ValueError(f"{long} is a pair of flags: it takes no one-letter alias")
        return (f"{long}/--no-{long.removeprefix('--')}",)
    return (long,) if short is None else (short, long)


def _marked_fields(model: type[BaseModel], prefix: FieldPath) -> Iterator[MarkedField]:
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        marker = next((item for item in field.metadata if isinstance(item, CliOption)), None)
        if marker is not None:
            yield marker, field, path
        elif isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _marked_fields(field.annotation, path)


def _label(path: FieldPath) -> str:
    """The field's name as words: chat_format is "Chat format"."""
    return path[-1].replace("_", " ").capitalize()


def _click_settings(field: FieldInfo, long: str, help_text: str, default: Any) -> dict[str, Any]:
    value_type = _without_none(field.annotation)
    settings: dict[str, Any] = {
        "default": default,
        "show_default": True,
        "envvar": "CODERM_" + long.removeprefix("--").replace("-", "_").upper(),
        "show_envvar": True,
        "help": help_text,
    }
    if get_origin(value_type) is list:
        (value_type,) = get_args(value_type)
        settings["multiple"] = True
        settings["help"] += " Repeat for several; from the environment, separated by spaces."
    settings["type"] = _click_type(value_type, field.metadata)
    return settings


def _without_none(annotation: Any) -> Any:
    """`int` of `int | None`: an option left unset is None anyway."""
    if get_origin(annotation) in (Union, UnionType):
        (value_type,) = (arg for arg in get_args(annotation) if arg is not NoneType)
        return value_type
    return annotation


def _click_type(value_type: Any, constraints: list[Any]) -> click.ParamType:
    if value_type is bool:  # a pair of flags; from the environment: 1/0, true/false, yes/no, on/off
        return click.BOOL
    if get_origin(value_type) is Literal:
        return click.Choice([str(value) for value in get_args(value_type)])
    if value_type is str:
        return click.STRING
    if value_type in (int, float):
        bounds = _bounds(constraints)
        if value_type is int:
            return click.IntRange(**bounds) if bounds else click.INT
        return click.FloatRange(**bounds) if bounds else click.FLOAT
    raise TypeError(f"no command-line option for a field of type {value_type}")


def _bounds(constraints: list[Any]) -> dict[str, Any]:
    """click.IntRange's or FloatRange's arguments from pydantic's ge/gt/le/lt."""
    bounds: dict[str, Any] = {}
    for constraint in constraints:
        if isinstance(constraint, annotated_types.Ge):
            bounds["min"] = constraint.ge
        elif isinstance(constraint, annotated_types.Gt):
            bounds.update(min=constraint.gt, min_open=True)
        elif isinstance(constraint, annotated_types.Le):
            bounds["max"] = constraint.le
        elif isinstance(constraint, annotated_types.Lt):
            bounds.update(max=constraint.lt, max_open=True)
    return bounds
