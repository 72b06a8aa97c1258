"""What the two LLM agents share: sample from a backend, extract code, store every sample."""

from __future__ import annotations

import dataclasses
import time
import zlib
from collections.abc import Callable
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from agents.extract import Extraction, restore_closing_fence
from agents.llm import Sample, backend_for
from orchestrator.core.config import AgentConfig, AgentRole, Settings
from orchestrator.core.models import Solution, UnitTest
from orchestrator.observability.metrics import observe_llm_request, observe_llm_samples


def sample_and_extract(
    role: AgentRole,
    agent: AgentConfig,
    settings: Settings,
    replay_samples: list[str] | None,
    prompt: str,
    n: int,
    seed: int,
    extract: Callable[[str], Extraction],
    check_code: Callable[[str], Extraction],
) -> tuple[str, str, list[tuple[Sample, Extraction]]]:
    """Sample `n` completions and extract code from each; returns (backend, model, samples).

    A completion cut at a stop string that closed its code block gets it back (stored so too), as
    the model wrote it: see `restore_closing_fence`.

    `role` names the agent (policy or coderm) in the LLM metrics, which are recorded here for every
    backend: requests (one per backend call), errors, tokens, latency, and samples by whether code
    could be extracted.
    """
    backend = backend_for(role, agent, replay_samples, settings)
    began = time.perf_counter()
    try:
        samples = backend.sample(prompt, n, agent.sampling, seed)
    except Exception:
        observe_llm_request(
            role, backend.name, backend.model, seconds=time.perf_counter() - began, failed=True
        )
        raise
    observe_llm_request(
        role,
        backend.name,
        backend.model,
        seconds=time.perf_counter() - began,
        prompt_tokens=sum(s.prompt_tokens or 0 for s in samples),
        completion_tokens=sum(s.completion_tokens or 0 for s in samples),
    )
    stop = agent.sampling.stop
    samples = [
        dataclasses.replace(s, text=restore_closing_fence(s.text, s.finish_reason, stop)) for s in samples
    ]
    extracted = [(s, check_code(s.text) if s.is_code else extract(s.text)) for s in samples]
    valid = sum(1 for _, extraction in extracted if extraction.valid)
    observe_llm_samples(role, backend.name, backend.model, valid, len(extracted) - valid)
    return backend.name, backend.model, extracted


def problem_seed(job_seed: int, task_id: str) -> int:
    """A seed per problem that does not change when the problem moves within its file."""
    return job_seed * 1_000_003 + zlib.crc32(task_id.encode("utf-8"))


def store_samples(
    session: Session,
    model: type[Solution] | type[UnitTest],
    problem_id: int,
    backend: str,
    model_name: str,
    extracted: list[tuple[Sample, Extraction]],
) -> bool:
    """Store all samples at once; False when a concurrent run of the same task stored them first."""
    try:
        # A Core INSERT of many rows: the ORM's unit of work would cost more than the database.
        session.execute(
            insert(cast(Table, model.__table__)),
            _sample_rows(model, problem_id, backend, model_name, extracted),
        )
    except IntegrityError:  # the unique (problem_id, index) caught a duplicate run
        session.rollback()
        return False
    return True


def _sample_rows(
    model: type[Solution] | type[UnitTest],
    problem_id: int,
    backend: str,
    model_name: str,
    extracted: list[tuple[Sample, Extraction]],
) -> list[dict[str, Any]]:
    return [
        dict(
            problem_id=problem_id,
            index=index,
            raw=sample.text,
            code=extraction.code,
            valid=extraction.valid,
            invalid_reason=extraction.invalid_reason,
            code_hash=extraction.code_hash,
            finish_reason=sample.finish_reason,
            prompt_tokens=sample.prompt_tokens,
            completion_tokens=sample.completion_tokens,
            latency_s=sample.latency_s,
            queue_s=sample.queue_s,
            backend=backend,
            model=model_name,
            **(
                {"test_methods": extraction.test_methods}
                if model is UnitTest
                else {"extracted_code": extraction.extracted_code}
            ),
        )
        for index, (sample, extraction) in enumerate(extracted)
    ]
