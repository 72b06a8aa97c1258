"""The difficulty probe learns a pass rate that its features encode, and round-trips a checkpoint."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")

from agents.scaling.probe import evaluate, read_probe_file, split_indices, train_probe, write_probe_file  # noqa: E402
from orchestrator.core.errors import ConfigurationError  # noqa: E402


def synthetic(count: int, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Features in which a hidden direction encodes the logit of the pass rate, plus noise."""
    rng = np.random.default_rng(seed)
    pass_rates = rng.uniform(0.02, 0.98, count)
    direction = rng.normal(size=dim)
    direction /= np.linalg.norm(direction)
    logits = np.log(pass_rates / (1 - pass_rates))
    features = rng.normal(scale=0.3, size=(count, dim)) + np.outer(logits, direction)
    return features, pass_rates


def test_the_probe_learns_a_synthetic_signal_to_low_error() -> None:
    features, pass_rates = synthetic(400)
    _, report = train_probe(features, pass_rates, feature_source="synthetic", epochs=400)
    assert report.problems == 80
    # Chance (predicting 0.5 for uniform pass rates) has MAE 0.25 and Brier 0.08.
    assert report.mae < 0.08 and report.brier < 0.01 and report.spearman > 0.95


def test_without_signal_the_probe_does_no_better_than_chance() -> None:
    rng = np.random.default_rng(1)
    features, pass_rates = rng.normal(size=(300, 16)), rng.uniform(0, 1, 300)
    _, report = train_probe(features, pass_rates, feature_source="noise", epochs=200)
    assert abs(report.spearman) < 0.3


def test_a_checkpoint_file_predicts_the_same(tmp_path: Path) -> None:
    features, pass_rates = synthetic(60)
    trained, _ = train_probe(features, pass_rates, feature_source="smollm2/last-layer/last-token", epochs=50)
    write_probe_file(trained, tmp_path / "probe.pt")
    loaded = read_probe_file(tmp_path / "probe.pt")
    assert loaded.feature_source == "smollm2/last-layer/last-token"
    assert loaded.metadata["held_out"]["problems"] == 12
    np.testing.assert_allclose(loaded.predict(features), trained.predict(features))
    with pytest.raises(ConfigurationError, match="expects 32 features"):
        loaded.predict(features[:, :8])


def test_a_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigurationError, match="not a probe checkpoint"):
        read_probe_file(junk)


def test_evaluation_figures_by_hand() -> None:
    report = evaluate(np.array([0.1, 0.5, 0.9]), np.array([0.0, 0.5, 1.0]))
    assert report.mae == pytest.approx(0.2 / 3) and report.brier == pytest.approx(0.02 / 3)
    assert report.spearman == pytest.approx(1.0)


def test_the_split_is_seeded_and_holds_something_out() -> None:
    train, test = split_indices(10, 0.2, seed=3)
    assert len(test) == 2 and len(train) == 8 and set(train) | set(test) == set(range(10))
    assert (split_indices(10, 0.2, seed=3)[1] == test).all()
