"""LLM backends behind one interface (DESIGN §4): `local` (torch) and `replay` (stored samples)."""

from __future__ import annotations

from agents.llm.base import Backend, Sample
from orchestrator.config import AgentConfig
from orchestrator.errors import BackendError

__all__ = ["Backend", "Sample", "backend_for"]


def backend_for(agent: AgentConfig, replay_samples: list[str] | None) -> Backend:
    """The backend an agent samples from for one problem.

    `auto` replays the problem's stored samples when it carries them, and runs the local model
    otherwise.
    """
    name = agent.backend
    if name == "auto":
        name = "replay" if replay_samples is not None else "local"
    if name == "replay":
        if replay_samples is None:
            raise BackendError(
                "the replay backend needs samples in the problem file, and this problem has none"
            )
        from agents.llm.replay import ReplayBackend

        return ReplayBackend(replay_samples)
    from agents.llm.local import LocalBackend

    return LocalBackend(agent.model, batch_size=agent.batch_size)
