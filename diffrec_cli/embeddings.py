"""Item embeddings out of a trained run (MF, LightGCN, or any model with an ``item_embeddings()`` method).

The array is (n_items, d) float32 in the dataset's dense item order — the order of
``datasets/NAME/items.parquet`` and of the authors' ``item_emb.npy`` — so L-DiffRec can cluster on it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffrec_cli.atomic import atomic_path
from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError, Hint
from diffrec_cli.registry import Registry
from diffrec_cli.runs import resolve_run
from diffrec_cli.training.checkpoint import CheckpointMeta, load_checkpoint


def item_embeddings(run_or_checkpoint: str, registry: Registry, *, home: DataHome) -> tuple[np.ndarray, CheckpointMeta]:
    """The run's item embeddings and its checkpoint description."""
    loaded = load_checkpoint(resolve_run(home.runs_dir, run_or_checkpoint), registry, device="cpu")
    name = loaded.meta.model.name
    embeddings = loaded.model.item_embeddings()
    if embeddings is None:
        raise DiffrecError(f"model {name!r} has no item embeddings to export (MF and LightGCN runs have; "
                           f"a model offers them through an item_embeddings() method)")
    emb = np.ascontiguousarray(embeddings.detach().cpu().numpy(), dtype=np.float32)
    n_items = loaded.meta.dataset.n_items
    if emb.ndim != 2 or emb.shape[0] != n_items:
        raise DiffrecError(f"model {name!r} returned item embeddings of shape {emb.shape}, expected ({n_items}, d)")
    return emb, loaded.meta


def export_item_embeddings(run_or_checkpoint: str, out: str | Path, registry: Registry, *,
                           home: DataHome) -> np.ndarray:
    out = Path(out)
    if out.suffix != ".npy":
        raise DiffrecError(f"the output file must end in .npy, got {out.name!r}", hint=Hint(options=("out",)))
    emb, _ = item_embeddings(run_or_checkpoint, registry, home=home)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, emb, allow_pickle=False)
    return emb
