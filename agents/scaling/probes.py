"""Difficulty probes in the database: trained from scored problems, versioned, shared by all workers.

A problem's known pass rate is the fraction of its samples that are correct by ground truth. With
`estimate_from_vote`, problems without ground truth count too, with an estimate from the vote:
the fraction of samples whose pass count equals the problem's maximum (the samples the unit tests
cannot tell from the pick); it is noisier, so it is opt-in.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from agents.scaling.features import decode
from agents.scaling.probe import TrainedProbe, probe_from_bytes, probe_to_bytes
from orchestrator.core.errors import ConfigurationError, NotFoundError
from orchestrator.core.models import ExecutionResult, Probe, Problem, ProblemMetrics, Solution


@dataclass
class TrainingSet:
    feature_source: str
    problem_ids: list[int]
    features: np.ndarray
    pass_rates: np.ndarray
    estimated: int


def _vote_estimate(session: Session, problem_id: int) -> float | None:
    samples = session.scalar(select(Solution.id).where(Solution.problem_id == problem_id).limit(1))
    if samples is None:
        return None
    total = len(session.scalars(select(Solution.id).where(Solution.problem_id == problem_id)).all())
    passed = session.scalars(
        select(ExecutionResult.passed).where(ExecutionResult.problem_id == problem_id)
    ).all()
    if not passed:
        return None
    best = max(passed)
    return sum(1 for count in passed if count == best) / total


def training_set(
    session: Session,
    feature_source: str | None = None,
    estimate_from_vote: bool = False,
    job_id: str | None = None,
) -> TrainingSet:
    """Problems with features of one source and a known (or, opt-in, estimated) pass rate."""
    query = (
        select(Problem.id, Problem.features, Problem.feature_source, ProblemMetrics)
        .outerjoin(ProblemMetrics, ProblemMetrics.problem_id == Problem.id)
        .where(Problem.features.is_not(None))
    )
    if job_id is not None:
        query = query.where(Problem.job_id == job_id)
    rows = session.execute(query.order_by(Problem.id)).all()
    if feature_source is None:
        sources = {source for _, _, source, _ in rows if source is not None}
        if len(sources) > 1:
            raise ConfigurationError(
                f"problems carry features of several sources, choose one: {sorted(sources)}"
            )
        feature_source = next(iter(sources), None)
    ids, vectors, rates, estimated = [], [], [], 0
    for problem_id, features, source, metrics in rows:
        if source != feature_source:
            continue
        if metrics is not None and metrics.samples:
            rate: float | None = metrics.correct_samples / metrics.samples
        elif estimate_from_vote:
            rate = _vote_estimate(session, problem_id)
            estimated += rate is not None
        else:
            rate = None
        if rate is not None:
            ids.append(problem_id)
            vectors.append(decode(features or b""))
            rates.append(rate)
    if feature_source is None or not ids:
        raise ConfigurationError(
            "no problem has both features and a known pass rate: run jobs with ground truth and "
            "--scaling set (or `coderm probe features JOB`), or pass --estimate-from-vote"
        )
    return TrainingSet(feature_source, ids, np.vstack(vectors), np.asarray(rates), estimated)


def store_probe(session: Session, trained: TrainedProbe, trained_on: dict[str, object]) -> int:
    probe = Probe(
        feature_source=trained.feature_source,
        report=trained.metadata.get("held_out", {}),
        trained_on=trained_on,
        checkpoint=probe_to_bytes(trained),
    )
    session.add(probe)
    session.flush()
    return probe.version


def load_probe(
    session: Session, version: int | None, feature_source: str | None = None
) -> tuple[int, TrainedProbe]:
    """A probe by version, or the newest one (for `feature_source`, when given)."""
    query = select(Probe)
    if version is not None:
        query = query.where(Probe.version == version)
    elif feature_source is not None:
        query = query.where(Probe.feature_source == feature_source)
    probe = session.scalar(query.order_by(Probe.version.desc()).limit(1))
    if probe is None:
        wanted = (
            f" version {version}"
            if version is not None
            else f" for features '{feature_source}'"
            if feature_source is not None
            else ""
        )
        raise NotFoundError(
            f"no probe{wanted}: the greedy and threshold policies need one (`coderm probe train`)"
        )
    trained = probe_from_bytes(probe.checkpoint, f"probe version {probe.version}")
    if feature_source is not None and trained.feature_source != feature_source:
        raise ConfigurationError(
            f"probe version {probe.version} reads '{trained.feature_source}', not '{feature_source}'"
        )
    return probe.version, trained
