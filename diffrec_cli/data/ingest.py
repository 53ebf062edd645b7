"""Importers that turn files on disk into an :class:`InteractionData`."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from diffrec_cli.data.sparse import InteractionData, csr_from_pairs
from diffrec_cli.errors import DiffrecError

SPLIT_FILES = {"train": "train_list.npy", "valid": "valid_list.npy", "test": "test_list.npy"}


def _load_pairs(path: Path) -> np.ndarray:
    if not path.is_file():
        raise DiffrecError(f"missing file {path}")
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError/OSError/EOFError/UnpicklingError for bad files
        raise DiffrecError(f"{path} is not a readable .npy array ({type(exc).__name__}: {exc})") from None
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise DiffrecError(f"{path}: expected shape (n, 2) of [user, item] rows, got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise DiffrecError(f"{path}: expected integer ids, got dtype {arr.dtype}")
    if len(arr) == 0:
        raise DiffrecError(f"{path}: the split is empty")
    if (arr < 0).any():
        row = int(np.argwhere(arr < 0)[0][0])
        raise DiffrecError(f"{path}: negative id in row {row}: {arr[row].tolist()}")
    return arr.astype(np.int64)


def import_split_folder(folder: str | Path, name: str) -> InteractionData:
    """The authors' split format: ``train_list.npy``/``valid_list.npy``/``test_list.npy`` of
    [user, item] rows with dense ids (train rows in chronological order per user), optional ``item_emb.npy``.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DiffrecError(f"{folder} is not a folder")
    pairs = {split: _load_pairs(folder / fname) for split, fname in SPLIT_FILES.items()}
    n_users = int(max(p[:, 0].max() for p in pairs.values())) + 1
    n_items = int(max(p[:, 1].max() for p in pairs.values())) + 1
    shape = (n_users, n_items)
    train = pairs["train"]
    # A repeated (user, item) pair keeps its first occurrence only, so drop repeats before ranking:
    # otherwise a dropped duplicate leaves a gap and later positions run past the user's history length.
    _, first = np.unique(train[:, 0] * n_items + train[:, 1], return_index=True)
    train = train[np.sort(first)]
    # Rows within a user are chronological; a stable sort by user keeps that order, so the rank within
    # each user's block is the interaction's chronological position.
    order = np.argsort(train[:, 0], kind="stable")
    users_sorted = train[order, 0]
    block_start = np.searchsorted(users_sorted, users_sorted, side="left")
    position = np.empty(len(train), dtype=np.int64)
    position[order] = np.arange(len(train)) - block_start
    train_pos = csr_from_pairs(train[:, 0], train[:, 1], shape, values=position.astype(np.float32) + 1.0)
    train_order = (train_pos.data - 1.0).astype(np.int32)
    splits = {
        "train": csr_from_pairs(train[:, 0], train[:, 1], shape),
        "valid": csr_from_pairs(pairs["valid"][:, 0], pairs["valid"][:, 1], shape),
        "test": csr_from_pairs(pairs["test"][:, 0], pairs["test"][:, 1], shape),
    }
    item_emb = None
    emb_path = folder / "item_emb.npy"
    if emb_path.is_file():
        try:
            item_emb = np.load(emb_path, allow_pickle=False)
        except Exception as exc:
            raise DiffrecError(f"{emb_path} is not a readable .npy array ({exc})") from None
        if item_emb.ndim != 2 or item_emb.shape[0] != n_items:
            raise DiffrecError(f"{emb_path}: expected shape ({n_items}, d), got {item_emb.shape}")
    dropped = {s: int(len(pairs[s]) - splits[s].nnz) for s in splits}
    meta = {"source": {"format": "split-folder", "path": str(folder.resolve())},
            "duplicates_dropped": dropped}
    return InteractionData(name=name, **splits, user_ids=np.arange(n_users), item_ids=np.arange(n_items),
                           train_order=train_order, item_emb=item_emb, meta=meta)
