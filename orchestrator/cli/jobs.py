"""What the job commands (`run`, `submit`, `eval`) share: options, job creation, waiting, output."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any, get_args

import click
from celery import Celery
from pydantic import ValidationError
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agents.chat_format import resolve_chat_format
from agents.llm import SERVER_BACKENDS
from agents.llm.servers import require_server_url
from orchestrator.cli.metrics import start_embedded_metrics
from orchestrator.cli.output import console, stdout
from orchestrator.core.config import (
    AgentConfig,
    BackendName,
    ChatFormat,
    JobConfig,
    SamplingParams,
    SandboxLimits,
    ScalingConfig,
    Settings,
)
from orchestrator.core.db import ensure_schema_current, upgrade_schema
from orchestrator.inputs.benchmarks import BUILTIN, Source, resolve_source
from orchestrator.inputs.problem_files import check_problems_fit_config, describe_validation_error
from orchestrator.inputs.replay_files import attach_replay_files
from orchestrator.results.reports import ProblemSummary, follow_job
from orchestrator.runtime.celery_app import create_app, ensure_broker_reachable
from orchestrator.runtime.embedded import embedded_worker
from sandbox.cli import memory_option, time_limit_option

# Messages are never wrapped, so an error stays on one line for people and for scripts that grep it.
SOURCE_HELP = (
    f"FILE is a problem file (JSON Lines, see the README) or a built-in benchmark: {', '.join(BUILTIN)}."
)

_BACKENDS = click.Choice(list(get_args(BackendName)))
_CHAT_FORMATS = click.Choice(list(get_args(ChatFormat)))


def job_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape a job, shared by `run`, `submit` and `eval`."""
    options = [
        click.option(
            "-n",
            "--n-solutions",
            type=click.IntRange(min=1),
            default=100,
            show_default=True,
            envvar="CODERM_N_SOLUTIONS",
            show_envvar=True,
            help="Solutions the policy samples per problem.",
        ),
        click.option(
            "-m",
            "--n-tests",
            type=click.IntRange(min=1),
            default=100,
            show_default=True,
            envvar="CODERM_N_TESTS",
            show_envvar=True,
            help="Unit tests CodeRM samples per problem.",
        ),
        click.option(
            "--backend",
            type=_BACKENDS,
            default="auto",
            show_default=True,
            envvar="CODERM_BACKEND",
            show_envvar=True,
            help="Backend of both agents: 'auto' replays samples the file carries, else uses the "
            "agent's server (CODERM_POLICY_URL / CODERM_CODERM_URL) with 'sglang', else runs the local "
            "model; 'sglang' is SGLang's /generate, 'openai' any OpenAI-compatible server.",
        ),
        click.option(
            "--policy-backend",
            type=_BACKENDS,
            envvar="CODERM_POLICY_BACKEND",
            show_envvar=True,
            help="Backend of the policy agent (overrides --backend).",
        ),
        click.option(
            "--coderm-backend",
            type=_BACKENDS,
            envvar="CODERM_CODERM_BACKEND",
            show_envvar=True,
            help="Backend of the CodeRM agent (overrides --backend).",
        ),
        click.option(
            "--model",
            envvar="CODERM_MODEL",
            show_envvar=True,
            help="Model of both agents. Local: 'smollm2' (bundled SmolLM2-135M-Instruct, the "
            "default), a model folder or a .gguf file. Server: the model it must serve (default: "
            "whatever it serves).",
        ),
        click.option(
            "--policy-model",
            envvar="CODERM_POLICY_MODEL",
            show_envvar=True,
            help="Model of the policy agent.",
        ),
        click.option(
            "--coderm-model",
            envvar="CODERM_CODERM_MODEL",
            show_envvar=True,
            help="Model of the CodeRM agent.",
        ),
        click.option(
            "--chat-format",
            type=_CHAT_FORMATS,
            default="auto",
            show_default=True,
            envvar="CODERM_CHAT_FORMAT",
            show_envvar=True,
            help="How a prompt becomes model input, both agents: 'llama3.1' / 'llama3' templates as "
            "text, 'chat' the server's or tokenizer's own template, 'raw' none; 'auto' is llama3.1 "
            "for sglang and chat for openai and local.",
        ),
        click.option(
            "--policy-chat-format",
            type=_CHAT_FORMATS,
            envvar="CODERM_POLICY_CHAT_FORMAT",
            show_envvar=True,
            help="Chat format of the policy agent (overrides --chat-format).",
        ),
        click.option(
            "--coderm-chat-format",
            type=_CHAT_FORMATS,
            envvar="CODERM_CODERM_CHAT_FORMAT",
            show_envvar=True,
            help="Chat format of the CodeRM agent (overrides --chat-format).",
        ),
        click.option(
            "--temperature",
            type=click.FloatRange(0, 2),
            default=0.8,
            show_default=True,
            envvar="CODERM_TEMPERATURE",
            show_envvar=True,
            help="Sampling temperature (the paper's 0.8).",
        ),
        click.option(
            "--top-p",
            type=click.FloatRange(0, 1, min_open=True),
            default=0.95,
            show_default=True,
            envvar="CODERM_TOP_P",
            show_envvar=True,
            help="Nucleus sampling (the paper's 0.95).",
        ),
        click.option(
            "--max-new-tokens",
            type=click.IntRange(min=1),
            default=2048,
            show_default=True,
            envvar="CODERM_MAX_NEW_TOKENS",
            show_envvar=True,
            help="Longest completion (the paper's 2048).",
        ),
        click.option(
            "--stop",
            multiple=True,
            envvar="CODERM_STOP",
            show_envvar=True,
            help="A string that ends a completion; repeat for several (the paper uses none). "
            "From the environment: separated by spaces.",
        ),
        click.option(
            "--batch-size",
            type=click.IntRange(min=1),
            default=8,
            show_default=True,
            envvar="CODERM_BATCH_SIZE",
            show_envvar=True,
            help="Sequences the local backend generates together.",
        ),
        time_limit_option,
        memory_option,
        click.option(
            "--scaling",
            type=click.Choice(["fixed", "greedy", "threshold", "oracle"]),
            default="fixed",
            show_default=True,
            envvar="CODERM_SCALING",
            show_envvar=True,
            help="How many unit tests each problem gets: --n-tests each (fixed); a job budget spread by "
            "the probe's predicted difficulty (greedy) or the true one (oracle, needs ground truth); or per "
            "problem while the marginal gain stays above --tau (threshold).",
        ),
        click.option(
            "--budget-avg",
            type=click.FloatRange(min=0, min_open=True),
            envvar="CODERM_BUDGET_AVG",
            show_envvar=True,
            help="greedy/oracle: unit tests per problem on average (default: --n-tests).",
        ),
        click.option(
            "--min-tests",
            type=click.IntRange(min=0),
            default=1,
            show_default=True,
            envvar="CODERM_MIN_TESTS",
            show_envvar=True,
            help="Fewest unit tests a scaled problem gets.",
        ),
        click.option(
            "--max-tests",
            type=click.IntRange(min=1),
            default=100,
            show_default=True,
            envvar="CODERM_MAX_TESTS",
            show_envvar=True,
            help="Most unit tests a scaled problem gets.",
        ),
        click.option(
            "--tau",
            type=click.FloatRange(0, 1, min_open=True),
            default=0.01,
            show_default=True,
            envvar="CODERM_TAU",
            show_envvar=True,
            help="threshold: add tests while lambda (1 - lambda)^b is at least this.",
        ),
        click.option(
            "--probe",
            "probe_version",
            type=click.IntRange(min=1),
            envvar="CODERM_PROBE",
            show_envvar=True,
            help="Probe version for greedy/threshold (`coderm probe list`; default: the newest for the "
            "features).",
        ),
        click.option(
            "--feature-backend",
            type=_BACKENDS,
            envvar="CODERM_FEATURE_BACKEND",
            show_envvar=True,
            help="Where the probe's features come from (default: the policy's backend; the local "
            "SmolLM2 when the policy is replayed).",
        ),
        click.option(
            "--feature-model",
            envvar="CODERM_FEATURE_MODEL",
            show_envvar=True,
            help="Model of --feature-backend.",
        ),
        click.option(
            "--chunk-size",
            type=click.IntRange(min=1),
            default=25,
            show_default=True,
            envvar="CODERM_CHUNK_SIZE",
            show_envvar=True,
            help="Distinct solutions per sandbox task; copies of a solution go with it, so each code "
            "runs once.",
        ),
        click.option(
            "--seed",
            type=int,
            default=0,
            show_default=True,
            envvar="CODERM_SEED",
            show_envvar=True,
            help="Seeds sampling and the voter's tie-break.",
        ),
        click.option(
            "--replay-solutions",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="CODERM_REPLAY_SOLUTIONS",
            show_envvar=True,
            help="JSON Lines of solutions by task id, as CodeRM released them: {task_id, solutions: "
            "[{solution, plus_status}]} or {task_id, solutions: [code]}. The replay backend uses them.",
        ),
        click.option(
            "--replay-tests",
            type=click.Path(dir_okay=False, path_type=Path),
            envvar="CODERM_REPLAY_TESTS",
            show_envvar=True,
            help="JSON Lines of unit tests by task id, as CodeRM released them: {task_id, unit_tests: "
            "[code]}. The replay backend uses them.",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def job_config(options: dict[str, Any]) -> JobConfig:
    sampling = SamplingParams(
        temperature=options["temperature"],
        top_p=options["top_p"],
        max_new_tokens=options["max_new_tokens"],
        stop=list(options["stop"]),
    )

    def agent(name: str) -> AgentConfig:
        config = AgentConfig(
            backend=options[f"{name}_backend"] or options["backend"],
            model=options[f"{name}_model"] or options["model"],
            chat_format=options[f"{name}_chat_format"] or options["chat_format"],
            sampling=sampling,
            batch_size=options["batch_size"],
        )
        resolve_chat_format(config.backend, config.chat_format)  # refuses what cannot work, now
        return config

    try:
        scaling = ScalingConfig(
            policy=options["scaling"],
            budget_avg=options["budget_avg"],
            min_tests=options["min_tests"],
            max_tests=options["max_tests"],
            tau=options["tau"],
            probe=options["probe_version"],
            feature_backend=options["feature_backend"],
            feature_model=options["feature_model"],
        )
    except ValidationError as exc:
        raise click.BadParameter(describe_validation_error(exc)) from exc
    return JobConfig(
        n_solutions=options["n_solutions"],
        n_tests=options["n_tests"],
        policy=agent("policy"),
        coderm=agent("coderm"),
        sandbox=SandboxLimits(time_limit_s=options["time_limit"], memory_mb=options["memory_mb"]),
        scaling=scaling,
        chunk_size=options["chunk_size"],
        seed=options["seed"],
    )


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
    settings: Settings, app: Celery, resolved: Source, config: JobConfig, idempotency_key: str | None = None
) -> str:
    """Submit a checked job (`check_job`) through the one submit path; returns its id."""
    from orchestrator.workflow.submit import submit  # imports prometheus_client: see cli/main.py

    return submit(
        app,
        settings.effective_database_url,
        resolved.problems.problems,
        config,
        source=str(resolved.problems.path),
        idempotency_key=idempotency_key,
        benchmark=resolved.benchmark,
    )


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
