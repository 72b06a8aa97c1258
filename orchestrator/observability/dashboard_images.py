"""Pictures of the dashboards without Grafana: each panel's queries, asked of Prometheus, drawn with
matplotlib on the panel's place in Grafana's 24-column grid.

Time series panels are drawn from range queries, bar gauges and stats from instant queries at the
end of the window, as Grafana does. Reads the dashboards' JSON, so it draws what Grafana would load.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.observability.prometheus_api import PrometheusClient, QueryWindow

_UNIT_SUFFIX = {"s": " s", "ops": "/s"}


@dataclass(frozen=True)
class PanelQuery:
    """One target of one panel, as the dashboard JSON has it."""

    dashboard: str
    panel: str
    kind: str
    expr: str
    legend: str

    @property
    def is_range(self) -> bool:
        return self.kind == "timeseries"


def panels(dashboard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The dashboard's panels other than rows, those of collapsed rows included, in order."""
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


def panel_queries(dashboard: dict[str, Any]) -> list[PanelQuery]:
    return [
        PanelQuery(
            dashboard["title"], panel["title"], panel["type"], target["expr"], target.get("legendFormat", "")
        )
        for panel in panels(dashboard)
        for target in panel.get("targets", [])
    ]


def legend(template: str, labels: dict[str, str]) -> str:
    """Grafana's legend format: `{{name}}` becomes the series' label `name`."""
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), template).strip()
    return text or "{" + ", ".join(f"{k}={v}" for k, v in sorted(labels.items())) + "}"


def render_dashboards(
    prometheus: PrometheusClient, dashboards_dir: Path, out: Path, window: QueryWindow
) -> list[Path]:
    """One PNG per dashboard JSON in `dashboards_dir`, named after it."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(dashboards_dir.glob("*.json")):
        image = out / f"{path.stem}.png"
        render_dashboard(prometheus, json.loads(path.read_text(encoding="utf-8")), image, window)
        written.append(image)
    return written


def render_dashboard(
    prometheus: PrometheusClient, dashboard: dict[str, Any], image: Path, window: QueryWindow
) -> None:
    # The object-oriented API, not pyplot: no global figure state, no display needed.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in dashboard["panels"])
    figure = Figure(figsize=(16, 0.9 + rows * 0.4))
    FigureCanvasAgg(figure)
    # Grafana's grid, one grid row per 0.4 inch; a panel leaves its first row to its title and its
    # first column to its axis labels, as the gaps between Grafana's panels do.
    grid = figure.add_gridspec(rows, 24, left=0.07, right=0.99, top=1 - 0.8 / (0.9 + rows * 0.4), bottom=0.02)
    grid.update(hspace=0, wspace=0)
    figure.suptitle(
        f"{dashboard['title']}   {datetime.fromtimestamp(window.start):%Y-%m-%d %H:%M:%S}"
        f" – {datetime.fromtimestamp(window.end):%H:%M:%S}",
        fontsize=14,
    )
    for panel in dashboard["panels"]:
        place = panel["gridPos"]
        top, left = place["y"], place["x"]
        if panel["type"] == "row":
            axes = figure.add_subplot(grid[top : top + place["h"], :])
            axes.axis("off")
            axes.text(0, 0, panel["title"], fontsize=13, fontweight="bold", va="bottom")
            continue
        axes = figure.add_subplot(grid[top + 1 : top + place["h"], left + 1 : left + place["w"]])
        axes.set_title(panel["title"], fontsize=10, loc="left")
        unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        if panel["type"] == "timeseries":
            _draw_series(axes, prometheus, panel, window, unit)
        else:
            _draw_values(axes, prometheus, panel, window, unit)
    figure.savefig(image, dpi=80)


def _draw_series(
    axes: Any, prometheus: PrometheusClient, panel: dict[str, Any], window: QueryWindow, unit: str
) -> None:
    from matplotlib.dates import DateFormatter
    from matplotlib.ticker import PercentFormatter

    drawn = 0
    for target in panel["targets"]:
        for series in prometheus.query_range(window.substitute(target["expr"]), window):
            times = [datetime.fromtimestamp(float(t)) for t, _ in series["values"]]
            values = [float(v) for _, v in series["values"]]
            finite = sum(1 for v in values if not math.isnan(v))
            if not finite:
                continue
            # Points where there are few, as Grafana's "show points: auto": a lone value is no line.
            axes.plot(
                times,
                values,
                marker="o" if finite < 5 else None,
                markersize=3,
                label=legend(target.get("legendFormat", ""), series["metric"]),
                linewidth=1.2,
            )
            drawn += 1
    axes.set_xlim(datetime.fromtimestamp(window.start), datetime.fromtimestamp(window.end))
    axes.xaxis.set_major_formatter(DateFormatter("%H:%M:%S"))
    axes.tick_params(labelsize=8)
    axes.grid(alpha=0.3)
    if unit == "percentunit":
        axes.yaxis.set_major_formatter(PercentFormatter(1.0))
    elif unit in _UNIT_SUFFIX:
        axes.set_ylabel(_UNIT_SUFFIX[unit].strip(), fontsize=8)
    if drawn:
        axes.legend(fontsize=7, loc="upper left", ncols=2 if drawn > 6 else 1)
    else:
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", color="grey")


def _draw_values(
    axes: Any, prometheus: PrometheusClient, panel: dict[str, Any], window: QueryWindow, unit: str
) -> None:
    names, values = [], []
    for target in panel["targets"]:
        for series in prometheus.query(window.substitute(target["expr"]), at=window.end):
            names.append(legend(target.get("legendFormat", ""), series["metric"]))
            values.append(float(series["value"][1]))
    if not values:
        axes.axis("off")
        axes.text(0.5, 0.5, "no data", transform=axes.transAxes, ha="center", color="grey")
        return
    shown = [_format(v, unit) for v in values]
    if panel["type"] == "stat":
        axes.axis("off")
        for index, (name, text) in enumerate(zip(names, shown, strict=True)):
            x = (index + 0.5) / len(names)
            axes.text(x, 0.45, text, transform=axes.transAxes, ha="center", fontsize=20, color="tab:green")
            axes.text(x, 0.15, name, transform=axes.transAxes, ha="center", fontsize=8)
        return
    finite = [0.0 if math.isnan(v) else v for v in values]
    bars = axes.barh(names, finite, color="tab:blue")
    axes.bar_label(bars, labels=shown, fontsize=8, padding=3)
    axes.invert_yaxis()
    axes.tick_params(labelsize=8)
    axes.set_xlim(0, max(finite + [1e-9]) * 1.25)
    if unit == "percentunit":
        from matplotlib.ticker import PercentFormatter

        axes.xaxis.set_major_formatter(PercentFormatter(1.0))


def _format(value: float, unit: str) -> str:
    if math.isnan(value):
        return "NaN"
    if unit == "percentunit":
        return f"{100 * value:.1f}%"
    return f"{value:.3g}{_UNIT_SUFFIX.get(unit, '')}"
