"""A small client of Prometheus' HTTP API, and Grafana's query variables for a time window.

Used to draw the dashboards without Grafana (`coderm dashboards render`) and by the tests that
evaluate every dashboard query against a live Prometheus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import httpx

from orchestrator.core.errors import PrometheusError

# Grafana draws about this many points across a panel; its $__interval follows from it.
_POINTS_PER_PANEL = 300


def _duration(seconds: float) -> str:
    """A PromQL duration; milliseconds, since Prometheus takes only whole numbers of a unit."""
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass(frozen=True)
class QueryWindow:
    """A dashboard's time range, and the values Grafana gives its variables for it."""

    start: float
    end: float
    scrape_interval: float

    @property
    def step(self) -> float:
        """Grafana's $__interval: the range over the points drawn, never below a scrape."""
        return max(self.scrape_interval, (self.end - self.start) / _POINTS_PER_PANEL)

    @property
    def rate_interval(self) -> float:
        """Grafana's $__rate_interval: enough for at least four scrapes in every rate window."""
        return max(self.step + self.scrape_interval, 4 * self.scrape_interval)

    def substitute(self, expr: str) -> str:
        """`expr` with $__rate_interval, $__interval and $__range replaced as Grafana does."""
        values = {
            "__rate_interval": _duration(self.rate_interval),
            "__interval": _duration(self.step),
            "__range": _duration(self.end - self.start),
        }
        return re.sub(
            r"\$(__rate_interval|__interval|__range)\b|\$\{(__rate_interval|__interval|__range)\}",
            lambda m: values[m.group(1) or m.group(2)],
            expr,
        )


class PrometheusClient:
    """Instant and range queries; every answer but `status: success` is a PrometheusError."""

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, timeout=timeout)

    def __enter__(self) -> PrometheusClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self._http.close()

    def api(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The `data` of GET /api/v1/<path>."""
        try:
            response = self._http.get(f"/api/v1/{path}", params=params)
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise PrometheusError(f"no answer from Prometheus at {self.url}: {exc}") from exc
        if body.get("status") != "success":
            query = (params or {}).get("query", path)
            raise PrometheusError(
                f"Prometheus refused {query!r}: {body.get('errorType')}: {body.get('error')}"
            )
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """An instant query: one sample per series, `{"metric": labels, "value": [time, "value"]}`."""
        params = {"query": expr} | ({"time": f"{at:.3f}"} if at is not None else {})
        return list(self.api("query", params)["result"])

    def query_range(self, expr: str, window: QueryWindow) -> list[dict[str, Any]]:
        """A range query over `window`: `{"metric": labels, "values": [[time, "value"], ...]}`.

        Grafana's variables in `expr` are not replaced here: see `QueryWindow.substitute`.
        """
        params = {
            "query": expr,
            "start": f"{window.start:.3f}",
            "end": f"{window.end:.3f}",
            "step": f"{window.step:.3f}",
        }
        return list(self.api("query_range", params)["result"])
