"""Comparing trained runs user by user: per-user metric vectors from checkpoints, then paired tests.

``diffrec compare`` is this module plus printing. Runs must share a dataset (same name and fingerprint),
so their per-user vectors cover the same users in the same order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError
from diffrec_cli.registry import Registry
from diffrec_cli.serve import load_served
from diffrec_cli.stats import PairedComparison, compare_all
from diffrec_cli.training.evaluate import METRICS, evaluate_per_user


def parse_metric(metric: str) -> tuple[str, int]:
    """``recall@20`` → ("recall", 20); a one-line error naming the accepted forms otherwise."""
    name, _, cutoff = metric.partition("@")
    if name not in METRICS or not cutoff.isdigit() or int(cutoff) < 1:
        raise DiffrecError(f"the metric must look like recall@20 ({', '.join(METRICS)} at a cutoff), "
                          f"got {metric!r}")
    return name, int(cutoff)


@dataclass
class RunVector:
    run: str  # run id as given (resolved checkpoint folder's run)
    model: str
    users: np.ndarray
    values: np.ndarray


@dataclass
class Comparison:
    metric: str
    split: str
    dataset: str
    runs: list[RunVector]
    pairs: list[PairedComparison] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "split": self.split, "dataset": self.dataset,
                "users": int(len(self.runs[0].users)),
                "runs": [{"run": r.run, "model": r.model, "mean": float(r.values.mean())} for r in self.runs],
                "pairs": [p.to_dict() for p in self.pairs]}


def run_vector(run: str, registry: Registry, home: DataHome, metric: str, split: str,
               device: str = "cpu") -> tuple[RunVector, str]:
    """One run's per-user ``metric`` on ``split``, and its dataset's identity (name and fingerprint)."""
    name, cutoff = parse_metric(metric)
    served = load_served(run, registry, home=home, device=device)
    model_device = next(served.model.parameters()).device
    users, values = evaluate_per_user(served.model.scores, served.data, split=split, ks=(cutoff,),
                                      device=model_device, input_matrix=served.inputs)
    meta = served.meta
    identity = f"{meta.dataset.name}/{meta.dataset.fingerprint}"
    return RunVector(meta.run_id or run, meta.model.name, users, values[f"{name}@{cutoff}"]), identity


def compare_runs(runs: list[str], registry: Registry, home: DataHome, *, metric: str = "recall@20",
                 split: str = "test", device: str = "cpu") -> Comparison:
    if split not in ("valid", "test"):
        raise DiffrecError(f"the split must be valid or test, got {split!r}")
    if len(runs) < 2:
        raise DiffrecError("compare needs at least two runs")
    if len(set(runs)) != len(runs):
        raise DiffrecError("a run is given twice")
    parse_metric(metric)
    vectors, identities = [], []
    for run in runs:
        vector, identity = run_vector(run, registry, home, metric, split, device)
        vectors.append(vector)
        identities.append(identity)
    if len(set(identities)) > 1:
        raise DiffrecError(f"runs were trained on different datasets ({', '.join(sorted(set(identities)))}); "
                           "paired tests need the same users")
    labels = [v.run for v in vectors]
    if len(set(labels)) != len(labels):
        raise DiffrecError("two arguments name the same run")
    comparison = Comparison(metric, split, identities[0].split("/")[0], vectors)
    comparison.pairs = compare_all({v.run: v.values for v in vectors})
    return comparison
