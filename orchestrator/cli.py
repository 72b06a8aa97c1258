"""The `coderm` command line.

    coderm run FILE         run a job to completion in this process (embedded) and print the results
    coderm submit FILE      enqueue a job on the configured broker and print its id
    coderm status JOB       how far a job has come
    coderm results JOB      a job's selections, as a table or JSON Lines
    coderm worker -Q QUEUES a Celery worker for some of the five queues
    coderm db upgrade       migrate the database to the newest schema

Every job option can also be set from the environment (`CODERM_N_SOLUTIONS`, ...); `--help` on each
command lists them.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import OperationalError

from orchestrator.config import AgentConfig, JobConfig, SamplingParams, SandboxLimits, Settings
from orchestrator.db import session_scope, upgrade_schema
from orchestrator.errors import CodermError, ConfigurationError
from orchestrator.reports import ProblemSummary, job_progress, problem_summaries
from sandbox.cli import sandbox_cli

# Messages are never wrapped, so an error stays on one line for people and for scripts that grep it.
console = Console(stderr=True, soft_wrap=True)
stdout = Console(soft_wrap=True)

_BACKENDS = click.Choice(["auto", "local", "replay"])


def _job_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """The options that shape a job, shared by `run` and `submit`."""
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
            help="Backend of both agents: 'auto' replays samples the file carries and runs the "
            "local model otherwise.",
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
            default="smollm2",
            show_default=True,
            envvar="CODERM_MODEL",
            show_envvar=True,
            help="Model of both agents: 'smollm2' (bundled SmolLM2-135M-Instruct), a local "
            "model folder or a .gguf file.",
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
            "--batch-size",
            type=click.IntRange(min=1),
            default=8,
            show_default=True,
            envvar="CODERM_BATCH_SIZE",
            show_envvar=True,
            help="Sequences the local backend generates together.",
        ),
        click.option(
            "--time-limit",
            type=click.FloatRange(0, 600, min_open=True),
            default=1.0,
            show_default=True,
            envvar="CODERM_TIME_LIMIT",
            show_envvar=True,
            help="Seconds one solution may take on one unit-test class (the paper's 1 s).",
        ),
        click.option(
            "--memory-mb",
            type=click.IntRange(16, 65536),
            default=1024,
            show_default=True,
            envvar="CODERM_MEMORY_MB",
            show_envvar=True,
            help="Address space of one execution, in MiB.",
        ),
        click.option(
            "--chunk-size",
            type=click.IntRange(min=1),
            default=25,
            show_default=True,
            envvar="CODERM_CHUNK_SIZE",
            show_envvar=True,
            help="Solutions per sandbox task.",
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
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _job_config(options: dict[str, Any]) -> JobConfig:
    sampling = SamplingParams(
        temperature=options["temperature"], top_p=options["top_p"], max_new_tokens=options["max_new_tokens"]
    )

    def agent(name: str) -> AgentConfig:
        return AgentConfig(
            backend=options[f"{name}_backend"] or options["backend"],
            model=options[f"{name}_model"] or options["model"],
            sampling=sampling,
            batch_size=options["batch_size"],
        )

    return JobConfig(
        n_solutions=options["n_solutions"],
        n_tests=options["n_tests"],
        policy=agent("policy"),
        coderm=agent("coderm"),
        sandbox=SandboxLimits(time_limit_s=options["time_limit"], memory_mb=options["memory_mb"]),
        chunk_size=options["chunk_size"],
        seed=options["seed"],
    )


@click.group(
    help="Best-of-N code generation verified by model-written unit tests (CodeRM, arXiv 2501.01054).\n\n"
    "\b\n" + "\n".join(__doc__.splitlines()[2:9]) + "\n\nEvery option can also be set from the environment; "
    "each command's --help names the variable."
)
@click.version_option(package_name="coderm")
def cli() -> None:
    pass


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_job_options
@click.option(
    "--json-out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write one JSON line per problem: task id, selected solution, its pass count, "
    "tests used, timings.",
)
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    envvar="CODERM_CONCURRENCY",
    show_envvar=True,
    help="Tasks the embedded worker runs at once.",
)
def run(file: Path, json_out: Path | None, concurrency: int, **options: Any) -> None:
    """Run the problems of FILE to completion and print a result table.

    Without CODERM_BROKER_URL everything happens in this process: an SQLite database under
    CODERM_HOME (~/.coderm), an in-memory broker and a worker thread running the same tasks as the
    distributed workers. With it, the job goes to the broker and this command waits for the workers.
    """
    from orchestrator.celery_app import create_app
    from orchestrator.embedded import embedded_worker

    settings = Settings()
    job_id = _create_job(settings, file, _job_config(options), idempotency_key=None)
    app = create_app(settings)
    if settings.embedded:
        with embedded_worker(app, concurrency=concurrency):
            _enqueue(app, settings, job_id)
            _wait_with_progress(settings, job_id)
    else:
        _enqueue(app, settings, job_id)
        _wait_with_progress(settings, job_id)
    with session_scope(settings.effective_database_url) as session:
        summaries = problem_summaries(session, job_id)
    _print_table(summaries, job_id)
    if json_out is not None:
        _write_json_lines(json_out, summaries)
        console.print(f"wrote {len(summaries)} lines to {json_out}")


@cli.command()
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@_job_options
@click.option(
    "--idempotency-key",
    envvar="CODERM_IDEMPOTENCY_KEY",
    show_envvar=True,
    help="Submitting again with the same key returns the first job instead of a new one.",
)
def submit(file: Path, idempotency_key: str | None, **options: Any) -> None:
    """Enqueue the problems of FILE on the broker and print the job id.

    Needs CODERM_DATABASE_URL, CODERM_BROKER_URL and CODERM_RESULT_BACKEND; `coderm worker`
    processes do the work.
    """
    from orchestrator.celery_app import create_app

    settings = Settings()
    if settings.embedded:
        raise ConfigurationError(
            "submit needs a broker: set CODERM_BROKER_URL (and CODERM_RESULT_BACKEND, CODERM_DATABASE_URL), "
            "or use `coderm run` to work inside this process"
        )
    app = create_app(settings)
    job_id = _create_job(settings, file, _job_config(options), idempotency_key)
    _enqueue(app, settings, job_id)
    stdout.print(job_id, highlight=False)


@cli.command()
@click.argument("job_id", metavar="JOB")
def status(job_id: str) -> None:
    """Show how far job JOB has come."""
    settings = Settings()
    with session_scope(settings.effective_database_url) as session:
        progress = job_progress(session, job_id)
    table = Table(title=f"job {progress.job_id}: {progress.status}")
    table.add_column("problems")
    table.add_column("count", justify="right")
    for name, count in sorted(progress.by_status.items()):
        table.add_row(name, str(count))
    table.add_row("total", str(progress.total))
    stdout.print(table)
    stdout.print(f"{progress.solutions} solutions and {progress.unit_tests} unit tests sampled")


@cli.command()
@click.argument("job_id", metavar="JOB")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["table", "jsonl"]),
    default="table",
    show_default=True,
    help="A table for people, or one JSON object per problem for programs.",
)
def results(job_id: str, output_format: str) -> None:
    """Show the selected solution of every problem of job JOB."""
    settings = Settings()
    with session_scope(settings.effective_database_url) as session:
        summaries = problem_summaries(session, job_id)
    if output_format == "jsonl":
        for summary in summaries:
            click.echo(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        _print_table(summaries, job_id)


@cli.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option(
    "-Q",
    "--queues",
    default=",".join(["orchestrator", "policy", "coderm", "sandbox", "voter"]),
    show_default=True,
    envvar="CODERM_QUEUES",
    show_envvar=True,
    help="Comma-separated queues to consume.",
)
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    envvar="CODERM_WORKER_CONCURRENCY",
    show_envvar=True,
    help="Worker processes (default: one per CPU).",
)
@click.option(
    "-P",
    "--pool",
    type=click.Choice(["prefork", "threads", "solo"]),
    default="prefork",
    show_default=True,
    help="Celery execution pool.",
)
@click.option("-l", "--loglevel", default="INFO", show_default=True, help="Logging level.")
@click.option("-n", "--hostname", help="Node name, e.g. sandbox@%h (Celery's default: celery@%h).")
@click.pass_context
def worker(
    ctx: click.Context, queues: str, concurrency: int | None, pool: str, loglevel: str, hostname: str | None
) -> None:
    """Run a Celery worker on some of the queues: orchestrator, policy, coderm, sandbox, voter.

    Further arguments are handed to `celery worker` unchanged (e.g. --max-tasks-per-child 100).
    """
    from orchestrator.celery_app import QUEUES, create_app

    unknown = set(queues.split(",")) - set(QUEUES)
    if unknown:
        raise click.BadParameter(f"unknown queue(s) {sorted(unknown)}; choose from {', '.join(QUEUES)}")
    settings = Settings()
    if settings.embedded:
        raise ConfigurationError("a worker needs a broker: set CODERM_BROKER_URL and CODERM_RESULT_BACKEND")
    app = create_app(settings)
    argv = ["worker", "-Q", queues, "-P", pool, "-l", loglevel]
    if concurrency:
        argv += ["-c", str(concurrency)]
    if hostname:
        argv += ["-n", hostname]
    app.worker_main(argv + list(ctx.args))


@cli.group()
def db() -> None:
    """Database schema commands."""


@db.command()
def upgrade() -> None:
    """Migrate the database (CODERM_DATABASE_URL, or the embedded SQLite file) to the newest schema."""
    settings = Settings()
    upgrade_schema(settings.effective_database_url)
    console.print("database is at the newest schema")


cli.add_command(sandbox_cli)


def _create_job(settings: Settings, file: Path, config: JobConfig, idempotency_key: str | None) -> str:
    from orchestrator.jobs import check_problems_fit_config, create_job
    from orchestrator.problem_files import read_problem_file

    problem_file = read_problem_file(file)
    check_problems_fit_config(problem_file, config)
    for note in problem_file.notes:
        console.print(f"note: {note}")
    if settings.database_url is None:
        upgrade_schema(settings.effective_database_url)  # the embedded file migrates itself
    return create_job(
        settings.effective_database_url, problem_file.problems, config, str(file), idempotency_key
    )


def _enqueue(app: Any, settings: Settings, job_id: str) -> None:
    from orchestrator.jobs import enqueue_job

    enqueue_job(app, settings.effective_database_url, job_id)


def _wait_with_progress(settings: Settings, job_id: str, poll_s: float = 0.5) -> None:
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("problems", total=None, detail="")
        while True:
            with session_scope(settings.effective_database_url) as session:
                progress = job_progress(session, job_id)
            running = progress.by_status.get("running", 0)
            bar.update(
                task,
                total=progress.total,
                completed=progress.finished,
                detail=f"{running} running, {progress.solutions} solutions, {progress.unit_tests} tests",
            )
            if progress.finished >= progress.total:
                return
            time.sleep(poll_s)


def _print_table(summaries: list[ProblemSummary], job_id: str) -> None:
    table = Table(title=f"job {job_id}")
    for name, justify in (
        ("task", "left"),
        ("status", "left"),
        ("valid solutions", "right"),
        ("valid tests", "right"),
        ("selected", "right"),
        ("passes", "right"),
        ("seconds", "right"),
    ):
        table.add_column(name, justify=justify, no_wrap=name == "task")  # type: ignore[arg-type]
    for s in summaries:
        table.add_row(
            s.task_id,
            s.status if not s.error else f"{s.status}: {s.error[:60]}",
            f"{s.valid_solutions}/{s.solutions}",
            f"{s.valid_unit_tests}/{s.unit_tests}",
            "-" if s.selected_index is None else f"#{s.selected_index}",
            "-" if s.pass_count is None else f"{s.pass_count}/{s.tests_used}",
            f"{s.timings.get('total', 0):.1f}",
        )
    stdout.print(table)


def _write_json_lines(path: Path, summaries: list[ProblemSummary]) -> None:
    """Write all lines or none: a temporary file in the same folder, renamed into place."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as stream:
            for summary in summaries:
                stream.write(json.dumps(summary.to_json(), ensure_ascii=False) + "\n")
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def main() -> None:
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        console.print("aborted")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CodermError as exc:
        console.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    except OperationalError as exc:
        console.print(f"[red]error:[/red] database unreachable: {exc.orig}", highlight=False)
        sys.exit(2)
