"""Is a model server up, and does it serve the model we expect?

Asked once per process and server before the first request (the answer is remembered), and by
`coderm worker` before it starts consuming the policy or CodeRM queue, so that a wrong URL or a
server with the wrong model stops the worker with one line instead of failing every task.

SGLang 0.5 answers `GET /health` by generating one token: 503 while the server starts, at least a
second, and up to its `SGLANG_HEALTH_CHECK_TIMEOUT` (20 s) when busy, hence a budget of its own
(`CODERM_LLM_HEALTH_TIMEOUT_S`). Its `GET /model_info` names the model as requests must
(`served_model_name`, which `--served-model-name` sets) and where it was loaded from (`model_path`);
older servers answer only `GET /get_model_info` (deprecated in 0.5), and where that names no
`served_model_name` the path stands for it. An OpenAI-compatible server without either (vLLM,
llama-cpp-python) lists its models at `GET /v1/models`.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from agents.llm.http import ClientSettings, ServerClient, server_client
from orchestrator.core.config import AgentRole, ChatFormat, Settings
from orchestrator.core.errors import BackendError, ConfigurationError, TransientBackendError

NOT_THERE = {404, 405}
"""Statuses of a server without the endpoint asked for."""


@dataclass(frozen=True)
class ServedModel:
    """A model a server serves: the name requests use, and, on SGLang, the path it was loaded from
    (also accepted as its identity: `--model-path /models/CodeRM-8B --served-model-name coderm`)."""

    name: str
    path: str | None = None

    def describe(self) -> str:
        return repr(self.name) + (f" (from {self.path})" if self.path not in (None, self.name) else "")


async def served_models(client: ServerClient) -> list[ServedModel]:
    """The model(s) the server serves; raises `BackendError` when it is down or answers oddly."""
    timeout = client.settings.connect_timeout_s
    try:
        await client.request("GET", "/health", timeout_s=client.settings.health_timeout_s)
    except BackendError as exc:
        if exc.status_code not in NOT_THERE:  # no /health is fine; a failing one is not
            raise
    for path in ("/model_info", "/get_model_info"):
        try:
            model, _ = await client.request("GET", path, read=_sglang_model, timeout_s=timeout)
            return [model]
        except BackendError as exc:
            if exc.status_code not in NOT_THERE:
                raise
    models, _ = await client.request("GET", "/v1/models", read=_listed_models, timeout_s=timeout)
    return models


async def served_context_length(client: ServerClient) -> int | None:
    """The served model's context length in tokens (`max_model_len` in `GET /v1/models`, as SGLang
    and vLLM list it), or None when the server does not say."""
    try:
        body: Any
        body, _ = await client.request("GET", "/v1/models", timeout_s=client.settings.connect_timeout_s)
    except BackendError as exc:
        if exc.status_code in NOT_THERE:
            return None
        raise
    data = body.get("data") if isinstance(body, dict) else None
    lengths = [m.get("max_model_len") for m in data or [] if isinstance(m, dict)]
    return next((n for n in lengths if isinstance(n, int) and n > 0), None)


def _sglang_model(body: Any) -> ServedModel:
    path = body.get("model_path") if isinstance(body, dict) else None
    if not isinstance(path, str):
        raise BackendError(f"the model info has no 'model_path': {str(body)[:200]}")
    name = body.get("served_model_name")
    return ServedModel(name if isinstance(name, str) and name else path, path)


def _listed_models(body: Any) -> list[ServedModel]:
    data = body.get("data") if isinstance(body, dict) else None
    ids = [m["id"] for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
    if not ids:
        raise BackendError(f"/v1/models answered without model ids: {str(body)[:200]}")
    return [ServedModel(name) for name in ids]


def model_matches(served: str, expected: str) -> bool:
    """Same name, or the same last path part: a server started with `--model-path /models/CodeRM-8B`
    serves `KAKA22/CodeRM-8B`."""
    return served == expected or PurePosixPath(served).name == PurePosixPath(expected).name


def choose_model(url: str, role: AgentRole, served: list[ServedModel], expected: str | None) -> str:
    """The name of the served model an agent uses: the expected one (by its name or its path), or the
    only one when none is expected."""
    if expected is None:
        if len(served) == 1:
            return served[0].name
        raise ConfigurationError(
            f"the {role} server {url} serves several models ({', '.join(m.name for m in served)}); "
            f"choose one with --{role}-model"
        )
    for model in served:
        if any(model_matches(known, expected) for known in (model.name, model.path) if known):
            return model.name
    raise ConfigurationError(
        f"the {role} server {url} serves {', '.join(m.describe() for m in served)}, not the configured "
        f"{expected!r}; point CODERM_{role.upper()}_URL at the right server or fix --{role}-model"
    )


async def check_server(client: ServerClient, role: AgentRole, expected: str | None) -> str:
    """The model the agent gets from this server, or a one-line error saying why there is none.

    Raises `TransientBackendError` when the server is down for now, `ConfigurationError` when it
    answers but cannot be what the agent wants.
    """
    try:
        served = await served_models(client)
    except BackendError as exc:
        message = f"the {role} server {client.base_url} (CODERM_{role.upper()}_URL) is not usable: {exc}"
        # Down for now (connection refused, 503 while loading) is worth a later retry of the task.
        if isinstance(exc, TransientBackendError):
            raise TransientBackendError(message, exc.status_code) from exc
        raise ConfigurationError(message) from exc
    return choose_model(client.base_url, role, served, expected)


def require_server_url(role: AgentRole, backend: str, settings: Settings) -> str:
    """The URL of the agent's server, which its backend cannot do without."""
    url = settings.server_url(role)
    if url is None:
        raise ConfigurationError(
            f"the {role} agent uses the {backend} backend, but CODERM_{role.upper()}_URL names no server"
        )
    return url


def check_servers(settings: Settings, expected: dict[AgentRole, str | None]) -> dict[AgentRole, str]:
    """Check the configured server of each agent in `expected`; returns the model each serves."""

    async def check_all() -> dict[AgentRole, str]:
        found: dict[AgentRole, str] = {}
        for role, model in expected.items():
            url = settings.server_url(role)
            if url is None:
                continue
            client = ServerClient(url, ClientSettings.from_settings(settings))
            try:
                found[role] = await check_server(client, role, model)
            finally:
                await client.aclose()
        return found

    # A loop of its own, gone when this returns: `coderm worker` forks its pool afterwards, and the
    # children must not inherit a client bound to the parent's loop.
    return asyncio.run(check_all())


class ServerBackend:
    """What the `sglang` and `openai` backends share: the agent's server, checked before first use."""

    def __init__(
        self, role: AgentRole, url: str, model: str | None, chat_format: ChatFormat, settings: Settings
    ) -> None:
        self.role = role
        self.url = url
        self.expected_model = model
        self.model = model or ""  # what the server serves, once asked
        self.chat_format = chat_format
        self.client_settings = ClientSettings.from_settings(settings)

    async def checked_client(self) -> ServerClient:
        """The process' client of the server, which has been checked once in this process."""
        client = server_client(self.url, self.client_settings)
        self.model = await client.once(
            ("model", self.role, self.expected_model),
            lambda: check_server(client, self.role, self.expected_model),
        )
        return client
