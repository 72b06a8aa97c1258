"""Is a model server up, and does it serve the model we expect?

Asked once per process and server before the first request (the answer is remembered), and by
`coderm worker` before it starts consuming the policy or CodeRM queue, so that a wrong URL or a
server with the wrong model stops the worker with one line instead of failing every task.

SGLang answers `GET /health` (200 once it can serve) and `GET /get_model_info` (`model_path`);
an OpenAI-compatible server without `/get_model_info` (vLLM) lists its models at `GET /v1/models`.
"""

from __future__ import annotations

import asyncio
from pathlib import PurePosixPath
from typing import Any

from agents.llm.http import ClientSettings, ServerClient, server_client
from orchestrator.core.config import AgentRole, ChatFormat, Settings
from orchestrator.core.errors import BackendError, ConfigurationError, TransientBackendError

_NOT_THERE = {404, 405}


async def served_models(client: ServerClient) -> list[str]:
    """The model(s) the server serves; raises `BackendError` when it is down or answers oddly."""
    timeout = client.settings.connect_timeout_s
    try:
        await client.request("GET", "/health", timeout_s=timeout)
    except BackendError as exc:
        if exc.status_code not in _NOT_THERE:  # no /health is fine; a failing one is not
            raise
    try:
        info, _ = await client.request("GET", "/get_model_info", read=_model_path, timeout_s=timeout)
        return [info]
    except BackendError as exc:
        if exc.status_code not in _NOT_THERE:
            raise
    models, _ = await client.request("GET", "/v1/models", read=_model_ids, timeout_s=timeout)
    return models


def _model_path(body: Any) -> str:
    if not isinstance(body, dict) or not isinstance(body.get("model_path"), str):
        raise BackendError(f"/get_model_info answered without a 'model_path': {str(body)[:200]}")
    return body["model_path"]


def _model_ids(body: Any) -> list[str]:
    data = body.get("data") if isinstance(body, dict) else None
    ids = [m["id"] for m in data or [] if isinstance(m, dict) and isinstance(m.get("id"), str)]
    if not ids:
        raise BackendError(f"/v1/models answered without model ids: {str(body)[:200]}")
    return ids


def model_matches(served: str, expected: str) -> bool:
    """Same name, or the same last path part: a server started with `--model-path /models/CodeRM-8B`
    serves `KAKA22/CodeRM-8B`."""
    return served == expected or PurePosixPath(served).name == PurePosixPath(expected).name


def choose_model(url: str, role: AgentRole, served: list[str], expected: str | None) -> str:
    """The served model an agent uses: the expected one, or the only one when none is expected."""
    if expected is None:
        if len(served) == 1:
            return served[0]
        raise ConfigurationError(
            f"the {role} server {url} serves several models ({', '.join(served)}); choose one with "
            f"--{role}-model"
        )
    for name in served:
        if model_matches(name, expected):
            return name
    raise ConfigurationError(
        f"the {role} server {url} serves {', '.join(repr(s) for s in served)}, not the configured "
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
