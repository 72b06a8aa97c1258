"""The difficulty probe: predicts lambda, a problem's expected pass rate, from the policy model's
hidden state of its prompt (DESIGN §2).

A 2-layer MLP with a sigmoid output, trained with soft-label cross-entropy against known pass rates
(the fraction of sampled solutions that are correct). Features are standardised with the training
set's mean and deviation, which travel in the checkpoint. A checkpoint says which model, chat format and
position its features come from, so a probe is never applied to features of another kind; the
database keeps them versioned (agents/scaling/probes.py), and they can be exported as files.
"""

from __future__ import annotations

import io
import math
import pickle
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.core.errors import ConfigurationError

CHECKPOINT_FORMAT = 1


@dataclass(frozen=True)
class ProbeReport:
    """Error of a probe on problems it did not train on."""

    problems: int
    mae: float
    brier: float
    spearman: float

    def to_json(self) -> dict[str, float | int]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


@dataclass
class TrainedProbe:
    state_dict: dict[str, Any]
    input_dim: int
    hidden_dim: int
    feature_mean: list[float]
    feature_std: list[float]
    feature_source: str
    metadata: dict[str, Any] = field(default_factory=dict)

    def _module(self) -> Any:
        model = build_mlp(self.input_dim, self.hidden_dim)
        model.load_state_dict(self.state_dict)
        model.eval()
        return model

    def predict(self, features: np.ndarray) -> np.ndarray:
        """Predicted pass rates, one per row of `features`."""
        import torch

        if features.shape[1] != self.input_dim:
            raise ConfigurationError(
                f"the probe expects {self.input_dim} features ({self.feature_source}), "
                f"got {features.shape[1]}"
            )
        standard = (features - np.asarray(self.feature_mean)) / np.asarray(self.feature_std)
        with torch.inference_mode():
            logits = self._module()(torch.as_tensor(standard, dtype=torch.float32)).squeeze(-1)
            return torch.sigmoid(logits).numpy().astype(np.float64)


def build_mlp(input_dim: int, hidden_dim: int) -> Any:
    """Two layers; the sigmoid is applied to the output logit (in the loss, and in `predict`)."""
    import torch

    return torch.nn.Sequential(
        torch.nn.Linear(input_dim, hidden_dim), torch.nn.ReLU(), torch.nn.Linear(hidden_dim, 1)
    )


def evaluate(predicted: np.ndarray, actual: np.ndarray) -> ProbeReport:
    from scipy.stats import spearmanr

    spearman = float(spearmanr(predicted, actual).statistic) if len(actual) > 1 else float("nan")
    return ProbeReport(
        problems=len(actual),
        mae=float(np.mean(np.abs(predicted - actual))),
        brier=float(np.mean((predicted - actual) ** 2)),
        spearman=0.0 if math.isnan(spearman) else spearman,
    )


def split_indices(count: int, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded train / held-out split; at least one problem on each side when there are two."""
    order = np.random.default_rng(seed).permutation(count)
    held_out = min(max(1, round(count * holdout)), count - 1) if count > 1 else 0
    return order[held_out:], order[:held_out]


def train_probe(
    features: np.ndarray,
    pass_rates: np.ndarray,
    feature_source: str,
    hidden_dim: int = 256,
    epochs: int = 300,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    holdout: float = 0.2,
    seed: int = 0,
) -> tuple[TrainedProbe, ProbeReport]:
    """Train on a seeded split; report the error on the held-out problems."""
    import torch

    if len(pass_rates) < 2:
        raise ConfigurationError(
            f"a probe needs at least 2 problems with a known pass rate, found {len(pass_rates)}"
        )
    train, test = split_indices(len(pass_rates), holdout, seed)
    mean = features[train].mean(axis=0)
    std = features[train].std(axis=0) + 1e-6
    torch.manual_seed(seed)
    model = build_mlp(features.shape[1], hidden_dim)
    optimiser = torch.optim.Adam(model.parameters(), lr=learning_rate, weight_decay=weight_decay)
    inputs = torch.as_tensor((features[train] - mean) / std, dtype=torch.float32)
    targets = torch.as_tensor(pass_rates[train], dtype=torch.float32)
    # Soft labels: binary cross-entropy against the pass rate itself, not a thresholded class.
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = loss_fn(model(inputs).squeeze(-1), targets)
        loss.backward()
        optimiser.step()
    trained = TrainedProbe(
        state_dict={k: v.detach().clone() for k, v in model.state_dict().items()},
        input_dim=features.shape[1],
        hidden_dim=hidden_dim,
        feature_mean=mean.tolist(),
        feature_std=std.tolist(),
        feature_source=feature_source,
        metadata={"train_problems": len(train), "epochs": epochs, "seed": seed},
    )
    report = (
        evaluate(trained.predict(features[test]), pass_rates[test])
        if len(test)
        else evaluate(trained.predict(features[train]), pass_rates[train])
    )
    trained.metadata["held_out"] = report.to_json()
    return trained, report


def probe_to_bytes(trained: TrainedProbe) -> bytes:
    """A checkpoint: the weights, the feature standardisation and where the features come from."""
    import torch

    buffer = io.BytesIO()
    torch.save({"format": CHECKPOINT_FORMAT, **asdict(trained)}, buffer)
    return buffer.getvalue()


def probe_from_bytes(data: bytes, where: str = "checkpoint") -> TrainedProbe:
    import torch

    try:
        stored = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise ConfigurationError(f"{where}: not a probe checkpoint ({exc})") from exc
    if not isinstance(stored, dict) or stored.pop("format", None) != CHECKPOINT_FORMAT:
        raise ConfigurationError(f"{where}: not a coderm probe checkpoint of format {CHECKPOINT_FORMAT}")
    return TrainedProbe(**stored)


def write_probe_file(trained: TrainedProbe, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(probe_to_bytes(trained))


def read_probe_file(path: Path) -> TrainedProbe:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigurationError(f"{path}: cannot read the probe checkpoint ({exc})") from exc
    return probe_from_bytes(data, str(path))
