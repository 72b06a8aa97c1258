"""The HTTP client under the server backends: one event loop per process, one pool per server.

The `Backend` interface is synchronous, because Celery tasks call it; keeping an SGLang server busy
takes many requests in flight at once, which is what an async client does cheaply. So each process
runs one event loop in a daemon thread, and `run_sync` hands it coroutines from any thread (the
embedded worker's thread pool, a threads-pool Celery worker, a prefork child). Every task of the
process shares the loop and one connection pool per server, so the bound on requests in flight
holds for the whole process and connections are reused across tasks.

Requests are retried with exponential backoff and jitter after a connection error, a timeout, 429
and 5xx; any other 4xx is the caller's mistake and is raised at once. Errors leave as
`BackendError` / `TransientBackendError`.
"""

from __future__ import annotations

import asyncio
import math
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from orchestrator.core.config import Settings
from orchestrator.core.errors import BackendError, TransientBackendError

T = TypeVar("T")

BACKOFF_CAP_S = 60.0
# httpcore scans the connections of a pool (and, for idle ones, the pool again) each time it places
# a request, which costs more CPU than the request itself once a pool holds hundreds of connections;
# many small pools keep that scan short (measured: tests/benchmarks/bench_sglang_client.py).
CONNECTIONS_PER_POOL = 8
# uvicorn, under SGLang's and vLLM's HTTP servers, closes a connection after 5 s idle; letting go
# of ours a little earlier keeps requests off connections the server is closing.
KEEPALIVE_EXPIRY_S = 4.0


@dataclass(frozen=True)
class ClientSettings:
    """How one process talks to one server; the defaults are `Settings`' (see the README's table)."""

    max_in_flight: int
    connect_timeout_s: float
    health_timeout_s: float
    timeout_s: float
    retries: int
    backoff_s: float
    api_key: str | None = field(repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> ClientSettings:
        return cls(
            max_in_flight=settings.llm_max_in_flight,
            connect_timeout_s=settings.llm_connect_timeout_s,
            health_timeout_s=settings.llm_health_timeout_s,
            timeout_s=settings.llm_timeout_s,
            retries=settings.llm_retries,
            backoff_s=settings.llm_backoff_s,
            api_key=settings.llm_api_key.get_secret_value() if settings.llm_api_key else None,
        )


def compute_backoff(
    attempt: int,
    base_s: float,
    retry_after_s: float | None = None,
    cap_s: float = BACKOFF_CAP_S,
    jitter: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before retrying after failed attempt number `attempt` (0 for the first).

    The server's own Retry-After wins (capped). Otherwise base * 2^attempt, capped, of which a
    random half is kept, so that many clients failing together do not come back together.
    """
    if retry_after_s is not None:
        return min(max(retry_after_s, 0.0), cap_s)
    delay = min(cap_s, base_s * 2**attempt)
    return delay / 2 + delay / 2 * jitter()


class ServerClient:
    """Connections to one server, with at most `max_in_flight` requests outstanding.

    The connections are spread over small pools (`CONNECTIONS_PER_POOL`), and each request goes to
    the pool with the fewest requests in flight, so no pool ever has to queue one.
    """

    def __init__(self, base_url: str, settings: ClientSettings) -> None:
        self.base_url = base_url.rstrip("/")
        self.settings = settings
        headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
        pools = math.ceil(settings.max_in_flight / CONNECTIONS_PER_POOL)
        size = math.ceil(settings.max_in_flight / pools)
        tls = httpx.create_ssl_context()  # one for all pools: each would take ~30 ms to build its own
        self._pools = [
            httpx.AsyncClient(
                base_url=self.base_url,
                headers=headers,
                verify=tls,
                timeout=httpx.Timeout(settings.timeout_s, connect=settings.connect_timeout_s),
                limits=httpx.Limits(
                    max_connections=size, max_keepalive_connections=size, keepalive_expiry=KEEPALIVE_EXPIRY_S
                ),
            )
            for _ in range(pools)
        ]
        self._busy = [0] * pools
        # A pool would also queue requests, but behind its own timeout; the semaphore queues them
        # without one, and is released while a failed request waits for its retry.
        self._slots = asyncio.Semaphore(settings.max_in_flight)
        self._done: dict[Hashable, Any] = {}
        self._once_lock = asyncio.Lock()

    async def request(
        self,
        method: str,
        path: str,
        payload: Any = None,
        read: Callable[[Any], T] | None = None,
        timeout_s: float | None = None,
    ) -> tuple[T, float]:
        """Send a request, retrying what is worth retrying; returns (read(json body), seconds).

        `read` turns the body into the caller's result and may raise `TransientBackendError` to
        have the request retried (an answer the server marks as aborted, say). The seconds are those
        of the attempt that succeeded.
        """
        attempt = 0
        while True:
            try:
                body, seconds = await self._attempt(method, path, payload, timeout_s)
                return (read(body) if read else body), seconds
            except TransientBackendError as exc:
                if attempt >= self.settings.retries:
                    raise TransientBackendError(
                        f"{exc} (gave up after {attempt + 1} attempts)", exc.status_code
                    ) from exc
                await asyncio.sleep(compute_backoff(attempt, self.settings.backoff_s, exc.retry_after_s))
                attempt += 1

    async def _attempt(
        self, method: str, path: str, payload: Any, timeout_s: float | None
    ) -> tuple[Any, float]:
        where = f"{method} {self.base_url}{path}"
        timeout: Any = httpx.USE_CLIENT_DEFAULT
        if timeout_s is not None:
            timeout = httpx.Timeout(timeout_s, connect=min(timeout_s, self.settings.connect_timeout_s))
        async with self._slots:
            pool = min(range(len(self._pools)), key=self._busy.__getitem__)
            self._busy[pool] += 1
            began = time.perf_counter()
            try:
                response = await self._pools[pool].request(method, path, json=payload, timeout=timeout)
            except httpx.TimeoutException as exc:
                raise TransientBackendError(f"{where}: timed out ({type(exc).__name__})") from exc
            except httpx.TransportError as exc:
                raise TransientBackendError(f"{where}: {type(exc).__name__}: {exc}") from exc
            finally:
                self._busy[pool] -= 1
            seconds = time.perf_counter() - began
        if response.status_code >= 400:
            raise _status_error(where, response)
        if not response.content:  # SGLang's /health answers 200 with an empty body
            return None, seconds
        try:
            return response.json(), seconds
        except ValueError as exc:
            # A cut-off body or a proxy's error page: the server (or what stands before it) is having
            # a bad moment, so ask again.
            raise TransientBackendError(f"{where}: the answer is not JSON: {response.text[:200]!r}") from exc

    async def once(self, key: Hashable, make: Callable[[], Awaitable[T]]) -> T:
        """`make()`'s result, computed once per client and key; a failure is not remembered."""
        async with self._once_lock:
            if key not in self._done:
                self._done[key] = await make()
            result: T = self._done[key]
            return result

    async def aclose(self) -> None:
        for pool in self._pools:
            await pool.aclose()


def _status_error(where: str, response: httpx.Response) -> BackendError:
    status = response.status_code
    message = f"{where}: HTTP {status}: {_error_message(response)}"
    if status == 429 or status >= 500:
        return TransientBackendError(message, status, _retry_after(response))
    return BackendError(message, status)


def _error_message(response: httpx.Response) -> str:
    """The server's own words: SGLang `{"error": {"message"}}`, OpenAI-style, FastAPI `{"detail"}`."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:300] or response.reason_phrase
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and "message" in error:
            return str(error["message"])[:300]
        for key in ("message", "detail", "error"):
            if key in body:
                return str(body[key])[:300]
    return str(body)[:300]


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return float(response.headers["Retry-After"])
    except (KeyError, ValueError):
        return None  # absent, or an HTTP date, which model servers do not send


class _Loop:
    """The process' event loop, running in a daemon thread, and its clients."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = asyncio.new_event_loop()
        self.clients: dict[tuple[str, ClientSettings], ServerClient] = {}
        threading.Thread(target=self.loop.run_forever, name="coderm-llm-http", daemon=True).start()


_current: _Loop | None = None
_lock = threading.Lock()


def _process_loop() -> _Loop:
    global _current
    with _lock:
        # A forked child inherits the parent's objects but not its threads: it needs its own loop.
        if _current is None or _current.pid != os.getpid():
            _current = _Loop()
        return _current


async def gather_or_cancel(coroutines: list[Coroutine[Any, Any, T]]) -> list[T]:
    """Run all at once; at the first failure, cancel the rest (their answers would be thrown away)."""
    tasks = [asyncio.ensure_future(coroutine) for coroutine in coroutines]
    try:
        return await asyncio.gather(*tasks)
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def run_sync(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run `coroutine` on the process' loop and wait for it; call from any thread but the loop's."""
    future = asyncio.run_coroutine_threadsafe(coroutine, _process_loop().loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()  # e.g. a task time limit interrupted the caller: stop the requests too
        raise


def server_client(base_url: str, settings: ClientSettings) -> ServerClient:
    """The process' client of the server at `base_url`, created on first use."""
    process = _process_loop()
    key = (base_url.rstrip("/"), settings)
    with _lock:
        if key not in process.clients:
            process.clients[key] = ServerClient(base_url, settings)
        return process.clients[key]
