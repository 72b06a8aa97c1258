"""The Grafana dashboards, built with grafana-foundation-sdk and written as JSON to ops/grafana.

    Throughput  problems per minute, samples and tokens per second, sandbox executions by outcome,
                stage / LLM / sandbox latencies, queue depth, tasks in progress, workers
    Accuracy    best-of-N vs vanilla per benchmark, the last finished job, unit-test quality
                (FAR / FRR as the paper prints them, and the textbook rates), allocated tests vs
                difficulty

`coderm dashboards generate` writes them; the JSON in the repository is its output, and a test keeps
it so. Queries use Grafana's `$__rate_interval` (rates) and `$__range` (totals over the time picked),
and the recording rules of ops/prometheus/rules/coderm.yml (`coderm:...`) where an alert uses the same
figure. Every panel reads the data source chosen in the `datasource` variable.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from grafana_foundation_sdk.builders.bargauge import Panel as BarGaugePanel
from grafana_foundation_sdk.builders.common import StackingConfig
from grafana_foundation_sdk.builders.dashboard import Dashboard, DatasourceVariable, Row
from grafana_foundation_sdk.builders.prometheus import Dataquery
from grafana_foundation_sdk.builders.stat import Panel as StatPanel
from grafana_foundation_sdk.builders.timeseries import Panel as TimeseriesPanel
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import StackingMode, VizOrientation
from grafana_foundation_sdk.models.dashboard import DataSourceRef

PanelKind = Literal["timeseries", "bargauge", "stat"]
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class PanelSpec:
    """One panel: a time series (range queries) or a bar gauge / stat (instant queries)."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: PanelKind = "timeseries"
    stacked: bool = False
    min_max: tuple[float, float] | None = None


def _rate(family: str, by: str, selector: str = "") -> str:
    return f"sum by ({by}) (rate({family}{selector}[$__rate_interval]))"


def _quantile(q: float, family: str, by: str, selector: str = "") -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({family}_bucket{selector}[$__rate_interval])))"


THROUGHPUT: list[tuple[str, list[PanelSpec]]] = [
    (
        "Work",
        [
            PanelSpec(
                "Problems per minute",
                "Problems whose workflow began (submitted), and those finished.",
                tuple(
                    Query(f"sum(rate(coderm_problems_{what}_total[$__rate_interval])) * 60", what)
                    for what in ("submitted", "completed", "failed")
                ),
            ),
            PanelSpec(
                "Solutions and unit tests sampled per second",
                "Samples returned by the LLMs: policy = solutions, coderm = unit tests; 'valid' = code "
                "could be extracted.",
                (
                    Query(_rate("coderm_llm_samples_total", "agent"), "{{agent}} all"),
                    Query(_rate("coderm_llm_samples_total", "agent", '{valid="true"}'), "{{agent}} valid"),
                ),
                unit="ops",
            ),
            PanelSpec(
                "LLM tokens per second by agent",
                "Completion and prompt tokens, as the backends report them.",
                (
                    Query(_rate("coderm_llm_completion_tokens_total", "agent"), "{{agent}} completion"),
                    Query(_rate("coderm_llm_prompt_tokens_total", "agent"), "{{agent}} prompt"),
                ),
                unit="ops",
            ),
            PanelSpec(
                "Sandbox executions per second by outcome",
                "Solution x unit-test pairs judged, stacked by outcome; ground-truth runs apart.",
                (
                    Query(
                        _rate("coderm_sandbox_executions_total", "outcome", '{kind="unit_test"}'),
                        "{{outcome}}",
                    ),
                    Query(
                        'sum(rate(coderm_sandbox_executions_total{kind="ground_truth"}[$__rate_interval]))',
                        "ground truth",
                    ),
                ),
                unit="ops",
                stacked=True,
            ),
        ],
    ),
    (
        "Latency",
        [
            PanelSpec(
                "Stage duration p50 / p95",
                "Wall time of each step of a problem (a sandbox chunk is one step).",
                tuple(
                    Query(_quantile(q, "coderm_stage_duration_seconds", "stage"), f"{{{{stage}}}} p{p}")
                    for q, p in ((0.5, 50), (0.95, 95))
                ),
                unit="s",
            ),
            PanelSpec(
                "LLM request duration p50 / p95 by agent",
                "Wall time of one request, all its samples together.",
                tuple(
                    Query(_quantile(q, "coderm_llm_request_duration_seconds", "agent"), f"{{{{agent}}}} p{p}")
                    for q, p in ((0.5, 50), (0.95, 95))
                ),
                unit="s",
            ),
            PanelSpec(
                "Sandbox pair duration p95 by outcome",
                "Wall time of one solution against one unit-test class.",
                (
                    Query(
                        _quantile(
                            0.95, "coderm_sandbox_execution_duration_seconds", "outcome", '{kind="unit_test"}'
                        ),
                        "{{outcome}}",
                    ),
                ),
                unit="s",
            ),
            PanelSpec(
                "LLM request errors per second",
                "Requests that raised, by agent, backend and model.",
                (
                    Query(
                        _rate("coderm_llm_request_errors_total", "agent, backend, model"),
                        "{{agent}} {{backend}}",
                    ),
                ),
                unit="ops",
            ),
        ],
    ),
    (
        "Queues and workers",
        [
            PanelSpec(
                "Queue depth",
                "Messages waiting in each queue, as the broker reports them.",
                (Query("max by (queue) (coderm_queue_messages)", "{{queue}}"),),
            ),
            PanelSpec(
                "Tasks in progress",
                "Tasks running now, by queue, over all pool processes of all workers.",
                (Query("sum by (queue) (coderm_tasks_in_progress)", "{{queue}}"),),
            ),
            PanelSpec(
                "Workers per queue",
                "Worker hosts whose endpoint answers, by the queues they consume.",
                (Query("sum by (queue) (coderm_worker_up)", "{{queue}}"),),
                kind="stat",
            ),
            PanelSpec(
                "Worker endpoints and broker",
                "Scrape targets of the coderm-workers job that answer (up) and that do not (down); "
                "broker: 1 when it answered the queue-depth questions of every worker that asks.",
                (
                    Query('sum(up{job="coderm-workers"})', "up"),
                    Query('sum(1 - up{job="coderm-workers"})', "down"),
                    Query("min(coderm_broker_up)", "broker"),
                ),
                kind="stat",
            ),
        ],
    ),
]

ACCURACY: list[tuple[str, list[PanelSpec]]] = [
    (
        "Accuracy",
        [
            PanelSpec(
                "Best-of-N vs vanilla accuracy (rolling 1 h)",
                "Best-of-N: expected correctness of the voter's pick; vanilla: share of correct samples. "
                "Means over the problems scored against ground truth in the last hour.",
                (
                    Query("coderm:best_of_n_accuracy:ratio1h", "{{benchmark}} best-of-N"),
                    Query("coderm:vanilla_accuracy:ratio1h", "{{benchmark}} vanilla"),
                ),
                unit="percentunit",
                min_max=(0, 1),
            ),
            PanelSpec(
                "Best-of-N by selection strategy (rolling 1 h)",
                "Expected correctness of each strategy's pick on the same pass matrices: paper (the "
                "paper's vote), codet (CodeT's dual agreement), majority (largest identical-pattern "
                "group), whichever the jobs chose.",
                (Query("coderm:best_of_n_accuracy_by_strategy:ratio1h", "{{benchmark}} {{strategy}}"),),
                unit="percentunit",
                min_max=(0, 1),
            ),
            PanelSpec(
                "Last finished job",
                "Accuracy of the most recently finished scored job of each benchmark.",
                (Query("coderm:job_accuracy_ratio:latest", "{{benchmark}} {{method}}"),),
                unit="percentunit",
                kind="bargauge",
                min_max=(0, 1),
            ),
            PanelSpec(
                "Problems scored",
                "Problems scored against ground truth in the time range, by benchmark, those with any "
                "(Prometheus' increase() extrapolates to the range's edges, so the count is an estimate).",
                (
                    Query(
                        "sum by (benchmark) (increase(coderm_problems_evaluated_total[$__range])) > 0",
                        "{{benchmark}}",
                    ),
                ),
                kind="stat",
            ),
        ],
    ),
    (
        "Unit-test quality",
        [
            PanelSpec(
                "FAR and FRR as the paper prints them (rolling 1 h)",
                "FAR = FP/(FP+TP), FRR = FN/(FN+TN) (paper App. D); individual: every solution x test, "
                "combined: passing the most tests of the problem.",
                (
                    Query("coderm:unit_test_far:ratio1h", "{{benchmark}} {{scope}} FAR"),
                    Query("coderm:unit_test_frr:ratio1h", "{{benchmark}} {{scope}} FRR"),
                ),
                unit="percentunit",
                min_max=(0, 1),
            ),
            PanelSpec(
                "False positive and negative rates, textbook (rolling 1 h)",
                "FP/(FP+TN) and FN/(FN+TP), for comparison with the paper's FAR and FRR.",
                (
                    Query("coderm:unit_test_false_positive_rate:ratio1h", "{{benchmark}} {{scope}} FPR"),
                    Query("coderm:unit_test_false_negative_rate:ratio1h", "{{benchmark}} {{scope}} FNR"),
                ),
                unit="percentunit",
                min_max=(0, 1),
            ),
        ],
    ),
    (
        "Dynamic scaling",
        [
            PanelSpec(
                "Unit tests allocated per problem p50 / p95",
                "Tests allocated to each problem when it is planned.",
                tuple(
                    Query(_quantile(q, "coderm_unit_tests_allocated", "benchmark"), f"{{{{benchmark}}}} p{p}")
                    for q, p in ((0.5, 50), (0.95, 95))
                ),
            ),
            PanelSpec(
                "Unit tests saved by scaling",
                "Test slots that fixed --n-tests would have sampled for the problems voted in the time "
                "range, minus those their allocations sampled (negative: scaling spent more), over all "
                "benchmarks; and the slots sampled.",
                (
                    Query(
                        "sum(increase(coderm_unit_test_slots_fixed_total[$__range]))"
                        " - sum(increase(coderm_unit_test_slots_sampled_total[$__range]))",
                        "saved",
                    ),
                    Query("sum(increase(coderm_unit_test_slots_sampled_total[$__range]))", "sampled"),
                ),
                kind="stat",
            ),
            PanelSpec(
                "Allocated tests vs difficulty",
                "Mean tests allocated to the problems scored in the time range, by the band of their pass "
                "rate (share of the policy's samples that are correct: low = hard).",
                (
                    Query(
                        "sum by (pass_rate) (increase(coderm_evaluated_unit_tests_allocated_total[$__range]))"
                        " / (sum by (pass_rate) (increase(coderm_problems_evaluated_total[$__range])) > 0)",
                        "pass rate {{pass_rate}}",
                    ),
                ),
                kind="bargauge",
            ),
            PanelSpec(
                "Problems scored by difficulty",
                "Share of the problems scored in the time range that fall in each pass-rate band.",
                (
                    Query(
                        "sum by (pass_rate) (increase(coderm_problems_evaluated_total[$__range]))"
                        " / scalar(sum(increase(coderm_problems_evaluated_total[$__range])))",
                        "pass rate {{pass_rate}}",
                    ),
                ),
                unit="percentunit",
                kind="bargauge",
                min_max=(0, 1),
            ),
        ],
    ),
]

DASHBOARDS: dict[str, tuple[str, str, list[tuple[str, list[PanelSpec]]]]] = {
    "throughput": ("coderm-throughput", "coderm / Throughput", THROUGHPUT),
    "accuracy": ("coderm-accuracy", "coderm / Accuracy", ACCURACY),
}


def _panel(spec: PanelSpec, panel_id: int) -> Any:
    builder: Any
    if spec.kind == "timeseries":
        builder = TimeseriesPanel().fill_opacity(10).line_width(1)
        if spec.stacked:
            builder = builder.stacking(StackingConfig().mode(StackingMode.NORMAL))
    elif spec.kind == "bargauge":
        builder = BarGaugePanel().orientation(VizOrientation.HORIZONTAL)
    else:
        builder = StatPanel()
    builder = builder.id(panel_id).title(spec.title).description(spec.description).unit(spec.unit)
    builder = builder.datasource(DATASOURCE).height(8).span(24 // 3 if spec.kind == "stat" else 12)
    if spec.min_max is not None:
        builder = builder.min(spec.min_max[0]).max(spec.min_max[1])
    for index, query in enumerate(spec.queries):
        target = Dataquery().expr(query.expr).legend_format(query.legend).ref_id(chr(ord("A") + index))
        builder = builder.with_target(target if spec.kind == "timeseries" else target.instant())
    return builder


def build_dashboard(name: str) -> dict[str, Any]:
    """The dashboard `name` (a key of DASHBOARDS) as Grafana's JSON model."""
    uid, title, rows = DASHBOARDS[name]
    dashboard = (
        Dashboard(title)
        .uid(uid)
        .tags(["coderm"])
        .refresh("30s")
        .time("now-3h", "now")
        .with_variable(DatasourceVariable("datasource").label("Data source").type("prometheus"))
    )
    panel_id = 0
    for row_title, panels in rows:
        panel_id += 1
        dashboard = dashboard.with_row(Row(row_title).id(panel_id))
        for spec in panels:
            panel_id += 1
            dashboard = dashboard.with_panel(_panel(spec, panel_id))
    encoded: dict[str, Any] = json.loads(json.dumps(dashboard.build(), cls=JSONEncoder))
    return encoded


def dashboard_json(name: str) -> str:
    """The file content: stable key order, so the committed file changes only with the dashboard."""
    return json.dumps(build_dashboard(name), indent=2, sort_keys=True) + "\n"


def write_dashboards(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in DASHBOARDS:
        path = folder / f"{name}.json"
        path.write_text(dashboard_json(name), encoding="utf-8")
        written.append(path)
    return written
