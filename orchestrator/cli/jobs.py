"""What the job commands (`run`, `submit`, `eval`) share: options, job creation, waiting, output."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import click
from celery import Celery
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agents.chat_format import resolve_chat_format
from agents.llm import SERVER_BACKENDS
from agents.llm.servers import require_server_url
from orchestrator.cli.metrics import start_embedded_metrics
from orchestrator.cli.options import ModelOptions
from orchestrator.cli.output import console, stdout
from orchestrator.core.config import JobConfig, Settings
from orchestrator.core.db import ensure_schema_current, upgrade_schema
from orchestrator.core.errors import ProblemsFailedError
from orchestrator.inputs.benchmarks import BUILTIN, HUMANEVAL_PLUS_BASE_TESTS, Source, resolve_source
from orchestrator.inputs.problem_files import check_problems_fit_config
from orchestrator.inputs.replay_files import attach_replay_files
from orchestrator.reporting.reports import ProblemSummary, follow_job
from orchestrator.runtime.celery_app import create_app, ensure_broker_reachable
from orchestrator.runtime.embedded import embedded_worker

# Messages are never wrapped, so an error stays on one line for people and for scripts that grep it.
SOURCE_HELP = (
    f"FILE is a problem file (JSON Lines, see the README) or a built-in benchmark: {', '.join(BUILTIN)}. "
    "humaneval+ and mbpp+ are scored with EvalPlus's base and plus tests where CODERM_EVALPLUS_DIR names "
    "a folder holding EvalPlus's HumanEvalPlus.jsonl[.gz] and MbppPlus.jsonl[.gz]; without it, "
    f"humaneval+ is scored with HumanEval's base tests and labelled '{HUMANEVAL_PLUS_BASE_TESTS}', and "
    "mbpp+ is not scored."
)

JOB_OPTIONS = ModelOptions(JobConfig)
"""The options of JobConfig's marked fields (orchestrator/core/config.py)."""

# Not config: load_source joins these files' samples to the problems before the job is submitted.
_replay_solutions_option = click.option(
    "--replay-solutions",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CODERM_REPLAY_SOLUTIONS",
    show_envvar=True,
    help="JSON Lines of solutions by task id, as CodeRM released them: {task_id, solutions: "
    "[{solution, plus_status}]} or {task_id, solutions: [code]}. The replay backend uses them.",
)
_replay_tests_option = click.option(
    "--replay-tests",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="CODERM_REPLAY_TESTS",
    show_envvar=True,
    help="JSON Lines of unit tests by task id, as CodeRM released them: {task_id, unit_tests: "
    "[code]}. The replay backend uses them.",
)


def job_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape a job, shared by `run`, `submit` and `eval`: JobConfig's, then the
    replay files."""
    return JOB_OPTIONS(_replay_solutions_option(_replay_tests_option(command)))


def job_config(options: Mapping[str, Any]) -> JobConfig:
    """The job's config from the parsed job options; refuses, now, a chat format an agent's backend
    cannot use."""
    config = JOB_OPTIONS.build(options)
    for agent in (config.policy, config.coderm):
        resolve_chat_format(agent.backend, agent.chat_format)
    return config


concurrency_option = click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    envvar="CODERM_CONCURRENCY",
    show_envvar=True,
    help="Tasks the embedded worker runs at once.",
)


def load_source(source: str, options: dict[str, Any]) -> Source:
    """The problems of a file or built-in benchmark, with the replay files of the job options joined
    to them, all checked; notes about them are printed."""
    resolved = resolve_source(source)
    problems = attach_replay_files(resolved.problems, options["replay_solutions"], options["replay_tests"])
    for note in problems.notes:
        console.print(f"note: {note}")
    return dataclasses.replace(resolved, problems=problems)


def check_job(settings: Settings, resolved: Source, config: JobConfig) -> None:
    """Check, before anything is written or started, the loaded problems against `config`, the
    model servers (embedded: this process is the worker), and the database's schema."""
    check_problems_fit_config(resolved.problems, config)
    if settings.embedded:
        _require_server_urls(config, settings)
    if settings.database_url is None:
        upgrade_schema(settings.effective_database_url)  # the embedded file migrates itself
    else:
        ensure_schema_current(settings.effective_database_url)


def submit_checked(
    settings: Settings,
    app: Celery,
    resolved: Source,
    config: JobConfig,
    idempotency_key: str | None = None,
    strict: bool = False,
) -> str:
    """Submit a checked job (`check_job`) through the one submit path; returns its id. A repeated
    submission (its idempotency key used before) is said so on stderr."""
    from orchestrator.workflow.submit import submit  # imports prometheus_client: see cli/main.py

    submitted = submit(
        app,
        settings.effective_database_url,
        resolved.problems.problems,
        config,
        source=str(resolved.problems.path),
        idempotency_key=idempotency_key,
        benchmark=resolved.benchmark,
        strict=strict,
    )
    if submitted.repeated:
        console.print(
            f"note: idempotency key {idempotency_key!r} names job {submitted.job_id}, submitted before: "
            "nothing was sent again"
        )
    if submitted.differs:
        console.print(
            f"warning: {resolved.problems.path} or the job options differ from that first submission; "
            "its job stands as first submitted (--strict refuses instead)"
        )
    return submitted.job_id


def _require_server_urls(config: JobConfig, settings: Settings) -> None:
    for role, agent in (("policy", config.policy), ("coderm", config.coderm)):
        if agent.backend in SERVER_BACKENDS:
            require_server_url(role, agent.backend, settings)  # type: ignore[arg-type]


def prepare_app(settings: Settings) -> Celery:
    """The Celery app; with a broker configured, checked to be reachable before any job is written."""
    app = create_app(settings)
    if not settings.embedded:
        ensure_broker_reachable(app)
    return app


def run_to_completion(
    settings: Settings,
    app: Celery,
    resolved: Source,
    config: JobConfig,
    concurrency: int,
    metrics_port: int | None = None,
    metrics_address: str = "0.0.0.0",
) -> str:
    """Submit a checked job and wait for it: in this process, or on the configured workers; returns
    its id.

    With `metrics_port`, the embedded run serves its Prometheus metrics while it works.
    """
    if settings.embedded:
        server = start_embedded_metrics(metrics_port, metrics_address, app) if metrics_port else None
        try:
            with embedded_worker(app, concurrency=concurrency):
                job_id = submit_checked(settings, app, resolved, config)
                wait_with_progress(settings, job_id)
        finally:
            if server is not None:
                server.close()
    else:
        if metrics_port:
            console.print("note: with a broker the workers serve the metrics (coderm worker --metrics-port)")
        job_id = submit_checked(settings, app, resolved, config)
        wait_with_progress(settings, job_id)
    return job_id


def wait_with_progress(settings: Settings, job_id: str, poll_s: float = 0.5) -> None:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("problems", total=None, detail="")
        for progress in follow_job(settings.effective_database_url, job_id, poll_s):
            running = progress.by_status.get("running", 0)
            bar.update(
                task,
                total=progress.total,
                completed=progress.finished,
                detail=f"{running} running, {progress.solutions} solutions, {progress.unit_tests} tests",
            )


def raise_if_failed(summaries: list[ProblemSummary]) -> None:
    """Fail the command (`ProblemsFailedError`, exit status 1) when any problem failed, with one line:
    how many, and why, the most common reason first."""
    failed = [s for s in summaries if s.status == "failed"]
    if not failed:
        return
    by_reason: dict[str, list[str]] = {}
    for summary in failed:
        reason = " ".join((summary.error or "no reason recorded").split())
        by_reason.setdefault(reason, []).append(summary.task_id)
    reasons = sorted(by_reason.items(), key=lambda item: -len(item[1]))
    raise ProblemsFailedError(
        f"{len(failed)} of {len(summaries)} problems failed: "
        + "; ".join(f"{_some(task_ids)}: {reason}" for reason, task_ids in reasons)
    )


def _some(task_ids: list[str], shown: int = 3) -> str:
    more = len(task_ids) - shown
    return ", ".join(task_ids[:shown]) + (f" and {more} more" if more > 0 else "")


def print_selection_table(summaries: list[ProblemSummary], job_id: str) -> None:
    scored = any(s.selected_correct is not None for s in summaries)
    scaled = any(s.predicted_pass_rate is not None for s in summaries)
    table = Table(title=f"job {job_id}")
    columns = [
        "task",
        "status",
        "valid solutions",
        "valid tests",
        *(["lambda"] if scaled else []),
        "selected",
    ]
    for name in [*columns, "passes", *(["correct"] if scored else []), "seconds"]:
        table.add_column(
            name, justify="left" if name in ("task", "status") else "right", no_wrap=name == "task"
        )
    for s in summaries:
        cells = [
            s.task_id,
            s.status if not s.error else f"{s.status}: {s.error[:60]}",
            f"{s.valid_solutions}/{s.solutions}",
            f"{s.valid_unit_tests}/{s.unit_tests}",
            *(
                [f"{s.predicted_pass_rate:.2f}" if s.predicted_pass_rate is not None else "-"]
                if scaled
                else []
            ),
            "-" if s.selected_index is None else f"#{s.selected_index}",
            "-" if s.pass_count is None else f"{s.pass_count}/{s.tests_used}",
        ]
        if scored:
            cells.append("-" if s.selected_correct is None else ("yes" if s.selected_correct else "no"))
        table.add_row(*cells, f"{s.timings.get('total', 0):.1f}")
    stdout.print(table)
    pruned = sum(s.pruned for s in summaries)
    if pruned:
        ran = sum(s.executions for s in summaries)
        stdout.print(
            f"early exit: {ran} of {ran + pruned} solution x test pairs run; {pruned} could not change "
            "a pick and were not run (stored as N)"
        )
