"""The data home: where prepared datasets and runs live.

Layout: ``HOME/datasets/NAME/{meta.json, splits.npz, users.parquet, items.parquet[, item_emb.npy]}`` and
``HOME/runs/RUN_ID/``. HOME is ``--home``, else ``$DIFFREC_HOME``, else ``$XDG_DATA_HOME/diffrec``
(``~/.local/share/diffrec``). A dataset directory is built under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from diffrec_cli import __version__
from diffrec_cli.atomic import atomic_directory
from diffrec_cli.data.sparse import SPLITS, InteractionData
from diffrec_cli.errors import DiffrecError

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DEMO_NAME = "demo"


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    if home:
        return Path(home).expanduser()
    env = os.environ.get("DIFFREC_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "diffrec"


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name or ""):
        raise DiffrecError(
            f"invalid dataset name {name!r}: use letters, digits, '.', '_' or '-' (no path separators)"
        )
    return name


class DataHome:
    def __init__(self, home: str | os.PathLike | None = None) -> None:
        self.root = resolve_home(home)

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def dataset_dir(self, name: str) -> Path:
        return self.datasets_dir / check_name(name)

    def names(self) -> list[str]:
        if not self.datasets_dir.is_dir():
            return []
        return sorted(p.name for p in self.datasets_dir.iterdir() if (p / "meta.json").is_file())

    def exists(self, name: str) -> bool:
        return (self.dataset_dir(name) / "meta.json").is_file()

    # ----- writing ------------------------------------------------------------------------------
    def save(self, data: InteractionData, *, force: bool = False) -> Path:
        target = self.dataset_dir(data.name)
        if target.exists() and not force:
            raise DiffrecError(f"dataset {data.name!r} already exists in {self.datasets_dir} (use --force to replace it)")
        for s in SPLITS:
            if data.split(s).nnz == 0:
                raise DiffrecError(f"dataset {data.name!r}: the {s} split is empty")
        arrays: dict[str, np.ndarray] = {}
        for s in SPLITS:
            m = data.split(s)
            arrays[f"{s}_indptr"] = m.indptr.astype(np.int64)
            arrays[f"{s}_indices"] = m.indices.astype(np.int32)
            arrays[f"{s}_data"] = m.data.astype(np.float32)
        if data.train_order is not None:
            arrays["train_order"] = np.asarray(data.train_order, dtype=np.int32)
        meta = {k: v for k, v in data.meta.items() if not k.startswith("_")}
        meta.update(name=data.name, format=1, library_version=__version__, fingerprint=data.fingerprint(),
                    counts=data.counts(), has_item_emb=data.item_emb is not None)
        import polars as pl  # imported here so that training-only imports stay light

        with atomic_directory(target) as tmp:
            np.savez(tmp / "splits.npz", **arrays)
            pl.DataFrame({"raw_id": data.user_ids}).write_parquet(tmp / "users.parquet")
            pl.DataFrame({"raw_id": data.item_ids}).write_parquet(tmp / "items.parquet")
            if data.item_emb is not None:
                np.save(tmp / "item_emb.npy", np.asarray(data.item_emb, dtype=np.float32))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        return target

    def remove(self, name: str) -> None:
        target = self.dataset_dir(name)
        if not target.exists():
            raise DiffrecError(f"no dataset named {name!r} in {self.datasets_dir}")
        shutil.rmtree(target)

    # ----- reading ------------------------------------------------------------------------------
    def meta(self, name: str) -> dict[str, Any]:
        path = self.dataset_dir(name) / "meta.json"
        if not path.is_file():
            known = ", ".join(self.names()) or "none yet"
            raise DiffrecError(f"unknown dataset {name!r} in {self.datasets_dir} (known: {known}; "
                               f"'diffrec data import-split' prepares one)")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise DiffrecError(f"dataset {name!r}: {path} is not valid JSON ({exc})") from None

    def load(self, name: str) -> InteractionData:
        if name == DEMO_NAME and not self.exists(name):
            from diffrec_cli.data.demo import build_demo

            self.save(build_demo())
        meta = self.meta(name)
        folder = self.dataset_dir(name)
        import polars as pl

        try:
            with np.load(folder / "splits.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            users = pl.read_parquet(folder / "users.parquet")["raw_id"].to_numpy()
            items = pl.read_parquet(folder / "items.parquet")["raw_id"].to_numpy()
        except (OSError, ValueError, KeyError, pl.exceptions.PolarsError) as exc:
            raise DiffrecError(f"dataset {name!r} in {folder} is damaged: {exc}") from None
        shape = (len(users), len(items))
        splits = {}
        for s in SPLITS:
            try:
                splits[s] = sp.csr_matrix((arrays[f"{s}_data"], arrays[f"{s}_indices"], arrays[f"{s}_indptr"]), shape=shape)
            except (KeyError, ValueError) as exc:
                raise DiffrecError(f"dataset {name!r}: split {s} is damaged ({exc})") from None
        item_emb = np.load(folder / "item_emb.npy", allow_pickle=False) if (folder / "item_emb.npy").is_file() else None
        return InteractionData(name=name, **splits, user_ids=users, item_ids=items,
                               train_order=arrays.get("train_order"), item_emb=item_emb, meta=meta)
