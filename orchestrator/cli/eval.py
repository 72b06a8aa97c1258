"""`coderm eval`: run a benchmark (or re-score replayed generations) and print the paper's figures."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.table import Table

from agents.scaling.allocation import JOB_LEVEL_POLICIES
from agents.scaling.budget import total_budget
from agents.scoring import JobMetrics, ProblemScore, rescore
from agents.selection import SelectionStrategy
from orchestrator.cli.jobs import (
    SOURCE_HELP,
    check_job,
    concurrency_option,
    job_config,
    job_options,
    load_source,
    prepare_app,
    raise_if_failed,
    run_to_completion,
)
from orchestrator.cli.metrics import metrics_options
from orchestrator.cli.output import console, stdout, write_json_lines
from orchestrator.core.config import JobConfig, Settings
from orchestrator.core.db import session_scope
from orchestrator.reporting.evaluation import TestBudget, scored_problems, test_budget
from orchestrator.reporting.extraction import extraction_disagreements
from orchestrator.reporting.reports import problem_summaries


@click.command("eval", epilog=SOURCE_HELP)
@click.argument("source", metavar="FILE")
@job_options
@click.option(
    "--test-pool",
    type=click.IntRange(min=1),
    envvar="CODERM_TEST_POOL",
    show_envvar=True,
    help="Unit-test slots sampled per problem, from which each vote draws --n-tests slots, as the "
    "reference draws ut_num of its 100 (default: --n-tests; for problems that carry replayed tests, "
    "at least all of them). An invalid or duplicate sample fills a slot with an empty test.",
)
@click.option(
    "--repeats",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    envvar="CODERM_REPEATS",
    show_envvar=True,
    help="Votes on fresh random draws of --n-tests test slots (seeded by --seed), averaged, as the "
    "paper's calculate_result does. Re-scoring only: nothing runs again.",
)
@click.option(
    "--json-out",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Write one JSON line for the job (problems, vanilla, best_of_n, oracle, individual, combined; "
    "percentages), then one per scored problem.",
)
@concurrency_option
@metrics_options
def eval_command(
    source: str,
    test_pool: int | None,
    repeats: int,
    json_out: Path | None,
    concurrency: int,
    metrics_port: int | None,
    metrics_address: str,
    **options: Any,
) -> None:
    """Run the problems of FILE, then score the picks and the unit tests against ground truth.

    Scoring needs ground truth: HumanEval's tests (the humaneval benchmark, and humaneval+ without
    EvalPlus's data, labelled 'humaneval+ prompts, base tests'), EvalPlus's base and plus tests
    (humaneval+ and mbpp+ with CODERM_EVALPLUS_DIR), a problem's `ground_truth` program, or labels on
    replayed solutions (`plus_status`). Accuracies are averaged over problems; test quality pools its
    counts over problems (see agents/scoring.py).

    Exits with status 1, after the figures, when any problem failed (one line says which and why).
    """
    settings = Settings()
    config = job_config(options)
    if config.prune:
        raise click.UsageError(
            "eval scores the unit tests against ground truth, which needs every pair run: "
            "it takes no --prune (CODERM_PRUNE)"
        )
    resolved = load_source(source, options)
    stored_tests = max((len(p.unit_tests or []) for p in resolved.problems.problems), default=0)
    pool = test_pool or max(config.n_tests, stored_tests)
    app = prepare_app(settings)
    # The full matrix always: the test-quality figures count every pair (no early exit).
    pooled = config.model_copy(update={"n_tests": pool, "prune": False})
    check_job(settings, resolved, pooled)
    job_id = run_to_completion(settings, app, resolved, pooled, concurrency, metrics_port, metrics_address)
    with session_scope(settings.effective_database_url) as session:
        problems = scored_problems(session, job_id)
        budget = test_budget(session, job_id)
        summaries = problem_summaries(session, job_id)
        disagreements = extraction_disagreements(session, job_id)
    if config.scaling.policy != "fixed":
        print_test_budget(budget, config)
    if budget.without_methods:
        console.print(
            f"{budget.without_methods} of the job's unit tests define no test method: they pass every "
            "solution, as in the paper's harness, so they cannot change a pick (flagged, not scored apart)"
        )
    if not problems:
        console.print(f"job {job_id}: no problem has ground truth, so there is nothing to score")
        raise_if_failed(summaries)
        return
    # A scaled job votes with every test slot it was allocated; a fixed one draws --n-tests of its pool.
    tests: int | list[int] = (
        config.n_tests if config.scaling.policy == "fixed" else [p.test_slots for p in problems]
    )
    metrics, scores = rescore(problems, config.n_solutions, tests, repeats, config.seed, config.selection)
    name = resolved.benchmark or resolved.problems.path.name
    print_metrics(
        metrics,
        title=f"{name}: N={config.n_solutions} solutions, M={config.n_tests} test slots"
        + (f" of {pool}" if config.scaling.policy == "fixed" and pool != config.n_tests else "")
        + f", {config.selection} "
        "selection" + (f", mean of {repeats} draws" if repeats > 1 else ""),
    )
    # Every strategy on the same stored matrices and draws: nothing runs again.
    by_strategy = metrics.best_of_n_by_strategy
    print_best_of_n_by_strategy(by_strategy, config.selection)
    console.print(disagreements.summary(config.extraction))
    console.print(f"job {job_id}; `coderm results {job_id}` shows each problem's pick")
    if json_out is not None:
        header = {
            "job_id": job_id,
            "benchmark": name,
            "n_solutions": config.n_solutions,
            "n_tests": config.n_tests,
            "repeats": repeats,
            "selection": config.selection,
            "best_of_n_by_selection": {s: round(100 * value, 2) for s, value in by_strategy.items()},
            "unit_tests_without_methods": budget.without_methods,
            "extraction": config.extraction,
            "extraction_disagreements": disagreements.to_json(),
            **metrics.to_json(),
        }
        lines = [header] + [_problem_json(p.task_id, s) for p, s in zip(problems, scores, strict=True)]
        console.print(f"wrote {write_json_lines(json_out, lines)} lines to {json_out}")
    raise_if_failed(summaries)


def _problem_json(task_id: str, score: ProblemScore) -> dict[str, object]:
    return {
        "task_id": task_id,
        "samples": score.samples,
        "correct_samples": score.correct_samples,
        "vanilla": round(100 * score.vanilla, 2),
        "vanilla_valid": round(100 * score.vanilla_valid, 2),
        "best_of_n": round(100 * score.best_of_n, 2),
        "oracle": score.oracle,
        "individual": vars(score.individual),
        "combined": vars(score.combined),
    }


def print_test_budget(budget: TestBudget, config: JobConfig) -> None:
    """What a scaled job sampled, in test slots, beside what fixed allocations would have."""
    policy, average = config.scaling.policy, config.scaling.budget_avg or config.n_tests
    equal = (
        f"the same total as fixed at {average:g} each ({total_budget(budget.problems, average)})"
        if policy in JOB_LEVEL_POLICIES
        else "decided per problem by --tau"
    )
    console.print(
        f"{policy} allocation: {budget.sampled} unit tests sampled for {budget.problems} problems "
        f"({budget.sampled / max(budget.problems, 1):.1f} test slots each on average; {equal}), against "
        f"{budget.fixed} with fixed --n-tests; "
        f"{budget.completion_tokens} completion tokens, about {budget.saved_tokens} fewer than fixed"
    )


def print_best_of_n_by_strategy(by_strategy: dict[SelectionStrategy, float], chosen: str) -> None:
    table = Table(title="best-of-N by selection strategy (same matrices and draws)")
    for strategy in by_strategy:
        table.add_column(f"{strategy} (the job's)" if strategy == chosen else strategy, justify="right")
    table.add_row(*(f"{100 * value:.2f}" for value in by_strategy.values()))
    stdout.print(table)


def print_metrics(metrics: JobMetrics, title: str) -> None:
    """The paper's table: accuracies, then the quality of the tests."""
    figures = metrics.to_json()
    accuracy = Table(title=title)
    for column in ("problems", "vanilla", "vanilla (valid: the paper's)", "best-of-N", "oracle"):
        accuracy.add_column(column, justify="right")
    accuracy.add_row(
        str(metrics.problems),
        f"{figures['vanilla']:.2f}",
        f"{figures['vanilla_valid']:.2f}",
        f"{figures['best_of_n']:.2f}",
        f"{figures['oracle']:.2f}",
    )
    stdout.print(accuracy)
    quality = Table(title="unit-test quality (%): FAR and FRR as the paper defines them")
    for column in ("tests", "Acc", "F1", "FAR", "FRR", "false positive rate", "false negative rate"):
        quality.add_column(column, justify="left" if column == "tests" else "right")
    for name in ("individual", "combined"):
        q = figures[name]
        assert isinstance(q, dict)
        quality.add_row(
            name,
            *(
                f"{q[k]:.2f}"
                for k in ("acc", "f1", "far", "frr", "false_positive_rate", "false_negative_rate")
            ),
        )
    stdout.print(quality)
