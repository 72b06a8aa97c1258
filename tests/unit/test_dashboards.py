"""The committed dashboards are the generator's output, and read only metrics that exist."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from prometheus_client import REGISTRY

import orchestrator.observability.metrics  # noqa: F401  (registers the families)
from orchestrator.observability.dashboard_images import legend, panel_queries, panels
from orchestrator.observability.dashboards import DASHBOARDS, dashboard_json
from orchestrator.observability.prometheus_api import QueryWindow

OPS = Path(__file__).parents[2] / "ops"


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_the_committed_json_is_what_the_generator_writes(name: str) -> None:
    committed = OPS / "grafana" / "dashboards" / f"{name}.json"
    assert committed.read_text() == dashboard_json(name), (
        f"{committed} is stale: run `coderm dashboards generate`"
    )


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_every_panel_reads_the_chosen_data_source_and_has_a_query(name: str) -> None:
    dashboard = json.loads(dashboard_json(name))
    assert [v["name"] for v in dashboard["templating"]["list"]] == ["datasource"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])


def _exported_names() -> set[str]:
    """Every sample name the metrics module exports, and the queue-depth collector's."""
    names = {"coderm_queue_messages", "coderm_broker_up", "up"}
    for family in REGISTRY.collect():
        if not family.name.startswith("coderm_"):
            continue
        names.add(family.name)
        names.update({family.name + suffix for suffix in ("_total", "_bucket", "_sum", "_count")})
    return names


def test_queries_and_rules_name_only_metrics_that_exist() -> None:
    rules = [
        rule
        for group in yaml.safe_load((OPS / "prometheus" / "rules" / "coderm.yml").read_text())["groups"]
        for rule in group["rules"]
    ]
    recorded = {rule["record"] for rule in rules if "record" in rule}
    exprs = [rule["expr"] for rule in rules] + [
        q.expr for name in DASHBOARDS for q in panel_queries(json.loads(dashboard_json(name)))
    ]
    known = _exported_names() | recorded
    used = {name for expr in exprs for name in re.findall(r"\b(?:coderm[_:][a-z0-9_:]+|up)\b", expr)}
    assert used - known == set()
    # Every family of the metrics module is shown or alerted on somewhere.
    families = {name.removesuffix("_total") for name in _exported_names() if name.startswith("coderm_")}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    assert {f for f in families if not f.endswith(("_bucket", "_sum", "_count"))} - shown == set()


def test_grafana_variables_are_replaced_as_grafana_does() -> None:
    window = QueryWindow(start=1000, end=1600, scrape_interval=15)
    # $__interval: 600 s over 300 points is 2 s, under a scrape, so 15 s; $__rate_interval: 4 scrapes.
    assert window.substitute("rate(x[$__rate_interval])") == "rate(x[60000ms])"
    assert (
        window.substitute("increase(x[${__range}]) + y[$__interval]") == "increase(x[600000ms]) + y[15000ms]"
    )
    wide = QueryWindow(start=0, end=30000, scrape_interval=15)
    assert wide.step == 100 and wide.substitute("$__rate_interval") == "115000ms"


def test_legends_fill_in_labels_like_grafana() -> None:
    assert legend("{{benchmark}} {{ method }}", {"benchmark": "humaneval", "method": "vanilla"}) == (
        "humaneval vanilla"
    )
    assert legend("", {"queue": "sandbox"}) == "{queue=sandbox}"
