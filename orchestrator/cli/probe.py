"""`coderm probe`: the difficulty probe of dynamic scaling (agents/scaling/).

coderm probe features JOB      store the policy model's hidden states for a job's problems
coderm probe train             learn a probe from problems with features and a known pass rate
coderm probe eval V --job JOB  score probe version V on a job
coderm probe list              the stored probes
coderm probe compare JOB       fixed vs greedy vs oracle allocations on a job's stored matrices
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import numpy as np
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import select

from agents.prompts import render_policy_prompt
from agents.scaling.budget import equal_budget_allocations
from agents.scaling.features import decode, encode, feature_source, features_backend
from agents.scaling.probe import ProbeReport, evaluate, train_probe, write_probe_file
from agents.scaling.probes import load_probe, store_probe, training_set
from agents.scoring import rescore
from orchestrator.cli.output import console, stdout, write_json_lines
from orchestrator.core.config import JobConfig, Settings
from orchestrator.core.db import session_scope
from orchestrator.core.errors import ConfigurationError
from orchestrator.core.models import Probe, Problem
from orchestrator.reporting.evaluation import scored_problems
from orchestrator.reporting.reports import get_job


@click.group("probe")
def probe_cli() -> None:
    """The difficulty probe: predicts a problem's pass rate from the policy model's hidden state."""


@probe_cli.command("features")
@click.argument("job_id", metavar="JOB")
def features_command(job_id: str) -> None:
    """Extract and store the features of JOB's problems that have none (here, with the job's model)."""
    settings = Settings()
    url = settings.effective_database_url
    with session_scope(url) as session:
        job = get_job(session, job_id)
        config = JobConfig.model_validate(job.config)
        missing = [
            (p.id, render_policy_prompt(p.question, p.policy_prompt, config.prompts))
            for p in session.scalars(
                select(Problem)
                .where(Problem.job_id == job_id, Problem.features.is_(None))
                .order_by(Problem.position)
            )
        ]
    backend = features_backend(config, settings)
    source = None
    with Progress(console=console) as bar:
        task = bar.add_task("features", total=len(missing))
        for problem_id, prompt in missing:
            vector = backend.prompt_features(prompt)
            source = feature_source(backend, config)  # known once the backend has answered
            with session_scope(url) as session:
                problem = session.get_one(Problem, problem_id)
                problem.features, problem.feature_source = encode(vector), source
            bar.advance(task)
    console.print(f"{len(missing)} problems of job {job_id} got features" + (f": {source}" if source else ""))


def _print_report(report: ProbeReport, title: str) -> None:
    table = Table(title=title)
    for column in ("problems", "MAE", "Brier", "Spearman"):
        table.add_column(column, justify="right")
    table.add_row(str(report.problems), f"{report.mae:.4f}", f"{report.brier:.4f}", f"{report.spearman:.3f}")
    stdout.print(table)


@probe_cli.command("train")
@click.option("--job", "job_ids", multiple=True, help="Train on these jobs only (repeatable; default: all).")
@click.option(
    "--feature-source",
    help="Which features, when problems carry several kinds (`coderm probe list` shows them).",
)
@click.option(
    "--estimate-from-vote",
    is_flag=True,
    help="Also use problems without ground truth, with their pass rate estimated from the vote.",
)
@click.option(
    "--holdout", type=click.FloatRange(0, 0.9), default=0.2, show_default=True, help="Share held out."
)
@click.option("--epochs", type=click.IntRange(min=1), default=300, show_default=True)
@click.option(
    "--hidden", type=click.IntRange(min=1), default=256, show_default=True, help="Hidden layer width."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the checkpoint here."
)
def train_command(
    job_ids: tuple[str, ...],
    feature_source: str | None,
    estimate_from_vote: bool,
    holdout: float,
    epochs: int,
    hidden: int,
    seed: int,
    out: Path | None,
) -> None:
    """Learn a probe from problems with features and a known pass rate; store it as a new version."""
    url = Settings().effective_database_url
    with session_scope(url) as session:
        sets = [training_set(session, feature_source, estimate_from_vote, job) for job in job_ids or [None]]
    sources = {s.feature_source for s in sets}
    if len(sources) > 1:
        raise ConfigurationError(f"the jobs have features of several sources: {sorted(sources)}")
    features = np.vstack([s.features for s in sets])
    rates = np.concatenate([s.pass_rates for s in sets])
    trained, report = train_probe(
        features, rates, sources.pop(), hidden_dim=hidden, epochs=epochs, holdout=holdout, seed=seed
    )
    trained_on = {
        "problems": len(rates),
        "estimated_from_vote": sum(s.estimated for s in sets),
        "jobs": list(job_ids),
        "holdout": holdout,
    }
    with session_scope(url) as session:
        version = store_probe(session, trained, trained_on)
    _print_report(report, f"probe version {version}, held-out problems")
    console.print(f"trained on {len(rates) - report.problems} problems ({trained.feature_source})")
    if out is not None:
        write_probe_file(trained, out)
        console.print(f"wrote {out}")


@probe_cli.command("eval")
@click.argument("version", type=int)
@click.option("--job", "job_id", required=True, help="The job to score the probe on.")
def eval_command(version: int, job_id: str) -> None:
    """Score probe VERSION on JOB's problems whose pass rate is known."""
    url = Settings().effective_database_url
    with session_scope(url) as session:
        _, probe = load_probe(session, version)
        data = training_set(session, probe.feature_source, job_id=job_id)
    _print_report(
        evaluate(probe.predict(data.features), data.pass_rates), f"probe version {version} on job {job_id}"
    )


@probe_cli.command("list")
def list_command() -> None:
    """The stored probes, newest first."""
    with session_scope(Settings().effective_database_url) as session:
        probes = session.execute(
            select(
                Probe.version, Probe.created_at, Probe.feature_source, Probe.report, Probe.trained_on
            ).order_by(Probe.version.desc())
        ).all()
    if not probes:
        console.print("no probes yet: `coderm probe train` makes one")
    # One line each, with the long feature source last: readable, and easy for scripts to cut.
    for version, created, source, report, trained_on in probes:
        stdout.print(
            f"v{version}  {created:%Y-%m-%d %H:%M}  {trained_on.get('problems', '?')} problems  "
            f"held-out MAE {report.get('mae', float('nan')):.4f}  "
            f"Spearman {report.get('spearman', float('nan')):.3f}  {source}",
            highlight=False,
        )


def _budgets(text: str) -> list[int]:
    try:
        budgets = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of whole numbers") from exc
    if not budgets or budgets[0] < 1:
        raise click.BadParameter("budgets are whole numbers of tests per problem, at least 1")
    return budgets


@probe_cli.command("compare")
@click.argument("job_id", metavar="JOB")
@click.option(
    "--probe", "version", type=int, help="Probe version for greedy (default: the newest for the features)."
)
@click.option(
    "--budgets",
    default="1,2,4,8,16,32,64",
    show_default=True,
    help="Unit-test slots per problem (fixed), hence the total every policy gets.",
)
@click.option(
    "--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="Test draws per point."
)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--png", type=click.Path(dir_okay=False, path_type=Path), help="Plot best-of-N against budget here."
)
@click.option("--json-out", type=click.Path(dir_okay=False, path_type=Path), help="The table as JSON Lines.")
def compare_command(
    job_id: str,
    version: int | None,
    budgets: str,
    repeats: int,
    seed: int,
    png: Path | None,
    json_out: Path | None,
) -> None:
    """Replay fixed, greedy and oracle allocations on JOB's stored matrices: the paper's Fig. 6.

    JOB must be finished, with ground truth and, for greedy, features. Nothing is executed again:
    each allocation votes on random draws of each problem's test slots, every policy with the same
    total number of slots at each point (fixed: the budget per problem, capped at the slots a problem
    has; greedy and oracle: that total spread by predicted or true difficulty).
    """
    url = Settings().effective_database_url
    with session_scope(url) as session:
        job = get_job(session, job_id)
        n_solutions = JobConfig.model_validate(job.config).n_solutions
        problems = scored_problems(session, job_id)
        if not problems:
            raise ConfigurationError(f"job {job_id} has no scored problems: it needs ground truth")
        stored = {p.task_id: p for p in session.scalars(select(Problem).where(Problem.job_id == job_id))}
        features = [stored[p.task_id].features for p in problems]
        probe = None
        if all(f is not None for f in features):
            probe_version, probe = load_probe(session, version, stored[problems[0].task_id].feature_source)
    true_rates = [sum(p.sample_correct) / max(len(p.sample_correct), 1) for p in problems]
    predicted = (
        [float(r) for r in probe.predict(np.vstack([decode(f or b"") for f in features]))] if probe else None
    )
    slots = [p.test_slots for p in problems]
    rows = []
    for budget in _budgets(budgets):
        allocations = equal_budget_allocations(budget, slots, true_rates, predicted)
        point: dict[str, Any] = {
            "budget": budget,
            "slots": sum(allocations["fixed"]),
            "fixed": None,
            "greedy": None,
            "oracle": None,
        }
        for name, allocation in allocations.items():
            metrics, _ = rescore(problems, n_solutions, allocation, repeats, seed)
            point[name] = round(100 * metrics.best_of_n, 2)
        rows.append(point)
    table = Table(
        title=f"best-of-N (%) at equal budgets of test slots, job {job_id}, {len(problems)} problems"
    )
    for column in (
        "slots per problem",
        "slots in all (each policy)",
        "fixed",
        "greedy" + (f" (probe v{probe_version})" if probe else ""),
        "oracle",
    ):
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(
            *(
                ("-" if row[k] is None else f"{row[k]}")
                for k in ("budget", "slots", "fixed", "greedy", "oracle")
            )
        )
    stdout.print(table)
    if probe is None:
        console.print("no greedy column: the job's problems have no features (`coderm probe features JOB`)")
    if json_out is not None:
        console.print(f"wrote {write_json_lines(json_out, rows)} lines to {json_out}")
    if png is not None:
        _plot(rows, png, f"{len(problems)} problems, {repeats} draws per point")
        console.print(f"wrote {png}")


def _plot(rows: list[dict[str, Any]], path: Path, subtitle: str) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ConfigurationError("--png needs matplotlib: pip install 'coderm[dashboards]'") from exc
    figure, axes = plt.subplots(figsize=(6, 4), dpi=120)
    budgets = [row["budget"] for row in rows]
    for name, style in (("fixed", "o-"), ("greedy", "s-"), ("oracle", "^--")):
        values = [row[name] for row in rows]
        if all(v is not None for v in values):
            axes.plot(budgets, values, style, label=name)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("unit-test slots per problem (the same total for every policy)")
    axes.set_ylabel("best-of-N accuracy (%)")
    axes.set_title(f"Dynamic unit-test scaling\n{subtitle}", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path)
    plt.close(figure)
