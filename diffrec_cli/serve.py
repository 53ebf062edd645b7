"""Using a trained model: load it with its dataset, evaluate it, recommend for users."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import polars as pl
import torch

from diffrec_cli.data.sparse import InteractionData, dense_rows
from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError
from diffrec_cli.registry import Registry
from diffrec_cli.runs import STATUS_FILE, read_run, resolve_run
from diffrec_cli.training.checkpoint import CheckpointMeta, load_checkpoint
from diffrec_cli.training.device import pick_device
from diffrec_cli.training.evaluate import evaluate


@dataclass
class Served:
    model: torch.nn.Module
    data: InteractionData
    meta: CheckpointMeta
    inputs: Any  # the (reweighted) training matrix the model reads as input
    run_status: str | None = None  # the run's status (runs.read_run) when served from a run folder

    @property
    def ks(self) -> list[int]:
        return self.meta.ks


def load_served(run_or_checkpoint: str, registry: Registry, *, home: DataHome, device: str = "cpu") -> Served:
    path = resolve_run(home.runs_dir, run_or_checkpoint)
    loaded = load_checkpoint(path, registry, device=pick_device(device))
    info = loaded.meta.dataset
    data = home.load(info.name)
    if data.fingerprint() != info.fingerprint:
        raise DiffrecError(f"dataset {info.name!r} has changed since this model was trained "
                           f"(fingerprint {data.fingerprint()} != {info.fingerprint})")
    status = read_run(path).status if (path / STATUS_FILE).is_file() else None
    return Served(loaded.model, data, loaded.meta, loaded.model.inputs(data), status)


def evaluate_served(served: Served, splits: Iterable[str] = ("valid", "test")) -> dict[str, dict[str, float]]:
    device = next(served.model.parameters()).device
    return evaluate(served.model.scores, served.data, splits=tuple(splits), ks=served.ks, device=device,
                    input_matrix=served.inputs)


@torch.no_grad()
def recommend_for_users(model: torch.nn.Module, data: InteractionData, raw_users: Iterable[Any], k: int = 10,
                        inputs: Any = None, batch_size: int = 1024) -> pl.DataFrame:
    """Top-k unseen items per user, as raw ids. Scores come from the user's training row (the model's
    input in evaluation too); items seen in any split are never recommended."""
    if k <= 0:
        raise DiffrecError(f"k must be positive, got {k}")
    raw_users = list(raw_users)
    rows = np.array([data.user_index(u) for u in raw_users], dtype=np.int64)
    inputs = data.train if inputs is None else inputs
    device = next(model.parameters()).device
    k = min(k, data.n_items)
    out_user, out_rank, out_item, out_score = [], [], [], []
    for lo in range(0, len(rows), batch_size):
        chunk = rows[lo:lo + batch_size]
        x = dense_rows(inputs, chunk, device)
        scores = model.scores(torch.from_numpy(chunk).to(device), x).float()
        seen = (dense_rows(data.train, chunk, device) + dense_rows(data.valid, chunk, device)
                + dense_rows(data.test, chunk, device)) != 0
        scores = scores.masked_fill(seen, -torch.inf)
        top = torch.topk(scores, k, dim=1)
        for j, user_row in enumerate(chunk):
            valid = torch.isfinite(top.values[j])
            items = top.indices[j][valid].cpu().numpy()
            out_user += [raw_users[lo + j]] * len(items)
            out_rank += list(range(1, len(items) + 1))
            out_item += data.item_ids[items].tolist()
            out_score += top.values[j][valid].cpu().tolist()
    return pl.DataFrame({"user": [str(u) for u in out_user], "rank": out_rank, "item": [str(i) for i in out_item],
                         "score": out_score})
