"""LLM backends behind one interface (DESIGN §4).

    local    torch + transformers in this process        agents/llm/local.py
    sglang   SGLang's native /generate                   agents/llm/sglang.py
    openai   any OpenAI-compatible server                agents/llm/openai.py
    replay   samples that already exist                  agents/llm/replay.py

The server backends share an HTTP client (agents/llm/http.py) and a server check
(agents/llm/servers.py).
"""

from __future__ import annotations

from agents.chat_format import resolve_chat_format
from agents.llm.base import Backend, Sample
from orchestrator.core.config import DEFAULT_LOCAL_MODEL, AgentConfig, AgentRole, Settings
from orchestrator.core.errors import BackendError

__all__ = ["SERVER_BACKENDS", "Backend", "Sample", "backend_for"]

SERVER_BACKENDS = ("sglang", "openai")


def backend_for(
    role: AgentRole, agent: AgentConfig, replay_samples: list[str] | None, settings: Settings
) -> Backend:
    """The backend agent `role` samples from for one problem.

    `auto` replays the problem's stored samples when it carries them, else uses the agent's SGLang
    server when one is configured, else runs the local model.
    """
    url = settings.server_url(role)
    name = agent.backend
    if name == "auto":
        name = "replay" if replay_samples is not None else "sglang" if url else "local"
    if name == "replay":
        if replay_samples is None:
            raise BackendError(
                "the replay backend needs samples in the problem file, and this problem has none"
            )
        from agents.llm.replay import ReplayBackend

        return ReplayBackend(replay_samples)
    chat_format = resolve_chat_format(name, agent.chat_format)
    if name in SERVER_BACKENDS:
        from agents.llm.servers import require_server_url

        url = require_server_url(role, name, settings)
        if name == "sglang":
            from agents.llm.sglang import SGLangBackend

            # `auto` is settled against the served model's name once the server is asked.
            return SGLangBackend(role, url, agent.model, agent.chat_format, settings)
        from agents.llm.openai import OpenAIBackend

        return OpenAIBackend(role, url, agent.model, chat_format, settings)
    from agents.llm.local import LocalBackend

    return LocalBackend(
        agent.model or DEFAULT_LOCAL_MODEL,
        batch_size=agent.batch_size,
        device=settings.local_device,
        chat_format=chat_format,
    )
