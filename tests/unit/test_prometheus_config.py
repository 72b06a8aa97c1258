"""promtool accepts the Prometheus configuration and rules, and the alerts fire when they should."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

PROMETHEUS = Path(__file__).parents[2] / "ops" / "prometheus"
GRAFANA = Path(__file__).parents[2] / "ops" / "grafana"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: apt-get install prometheus (.ci/run and `make test` do)"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS)


@pytest.mark.parametrize(
    "args",
    [
        ("check", "config", "prometheus.yml"),
        ("check", "rules", "rules/coderm.yml"),
        ("test", "rules", "tests/coderm_test.yml"),
    ],
    ids=" ".join,
)
def test_promtool_accepts(args: tuple[str, ...]) -> None:
    result = promtool(*args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_promtool_test_that_fires_it() -> None:
    rules = yaml.safe_load((PROMETHEUS / "rules" / "coderm.yml").read_text())["groups"]
    alerts = {rule["alert"] for group in rules for rule in group["rules"] if "alert" in rule}
    tests = yaml.safe_load((PROMETHEUS / "tests" / "coderm_test.yml").read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test["alert_rule_test"] if case["exp_alerts"]}
    assert alerts == fired


def test_grafana_provisioning_points_at_the_dashboards_and_prometheus() -> None:
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "coderm.yml").read_text())
    assert [d["type"] for d in datasources["datasources"]] == ["prometheus"]
    scrape = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())["global"]["scrape_interval"]
    # Grafana's $__rate_interval is built from the data source's idea of the scrape interval.
    assert datasources["datasources"][0]["jsonData"]["timeInterval"] == scrape
    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "coderm.yml").read_text())
    assert [p["type"] for p in providers["providers"]] == ["file"]
