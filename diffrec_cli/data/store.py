"""The data home: where prepared datasets and runs live.

Layout: ``HOME/datasets/NAME/{meta.json, splits.npz, interactions.parquet, users.parquet, items.parquet
[, item_emb.npy]}`` (prepared datasets), ``HOME/logs/NAME/{meta.json, log.parquet, users.parquet,
items.parquet}`` (imported raw logs, the input of ``diffrec data prepare``) and ``HOME/runs/RUN_ID/``.
Datasets and logs share one namespace: a name is either. HOME is ``--home``, else ``$DIFFREC_HOME``, else
the platform's user-data folder (``home.py``; ``~/.local/share/diffrec`` on Linux). A dataset directory is
built under a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from diffrec_cli import __version__
from diffrec_cli.atomic import atomic_directory
from diffrec_cli.data.sparse import SPLITS, InteractionData
from diffrec_cli.errors import DiffrecError, Hint
from diffrec_cli.home import HomeFolders

NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
DEMO_NAME = "demo"


def is_name(text: str) -> bool:
    """Whether ``text`` can name a dataset or log (letters, digits, '.', '_', '-'; no path separators)."""
    return bool(NAME_PATTERN.match(text or ""))


def check_name(name: str) -> str:
    """``name``, or an error when it cannot name a dataset or log."""
    if not is_name(name):
        raise DiffrecError(
            f"invalid dataset name {name!r}: use letters, digits, '.', '_' or '-' (no path separators)"
        )
    return name


class DataHome(HomeFolders):
    """The data home's datasets, logs and runs (the folders and names: ``home.HomeFolders``)."""

    # Datasets and logs: each a folder NAME/ holding meta.json once complete.
    def dataset_dir(self, name: str) -> Path:
        return self.datasets_dir / check_name(name)

    def log_dir(self, name: str) -> Path:
        return self.logs_dir / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.dataset_dir(name) / "meta.json").is_file()

    def log_exists(self, name: str) -> bool:
        return (self.log_dir(name) / "meta.json").is_file()

    def claim(self, name: str, kind: str, *, force: bool = False) -> None:
        """Refuse ``name`` for a new ``kind`` ("dataset" or "log") when taken (by the same kind: unless forced)."""
        taken = {"dataset": self.exists(name), "log": self.log_exists(name)}
        other = "log" if kind == "dataset" else "dataset"
        if taken[other]:
            what = "a raw log" if other == "log" else "a prepared dataset"
            raise DiffrecError(f"{name!r} is already {what} in {self.root}",
                               hint=Hint(step="remove", subject=name, purpose="reuse the name"))
        if taken[kind] and not force:
            where = self.datasets_dir if kind == "dataset" else self.logs_dir
            raise DiffrecError(f"{kind} {name!r} already exists in {where}",
                               hint=Hint(options=("force",), purpose="replace it"))

    # ----- writing ------------------------------------------------------------------------------
    def save(self, data: InteractionData, *, force: bool = False) -> Path:
        target = self.dataset_dir(data.name)
        self.claim(data.name, "dataset", force=force)
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

        interactions = data.interactions if data.interactions is not None else _interactions_table(data)
        with atomic_directory(target) as tmp:
            np.savez(tmp / "splits.npz", **arrays)
            interactions.write_parquet(tmp / "interactions.parquet")
            pl.DataFrame({"raw_id": data.user_ids}).write_parquet(tmp / "users.parquet")
            pl.DataFrame({"raw_id": data.item_ids}).write_parquet(tmp / "items.parquet")
            if data.item_emb is not None:
                np.save(tmp / "item_emb.npy", np.asarray(data.item_emb, dtype=np.float32))
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        return target

    def save_log(self, log: Any, name: str, *, force: bool = False) -> Path:
        """Store an imported :class:`~diffrec_cli.data.ingest.RawLog` under ``logs/NAME``."""
        target = self.log_dir(name)
        self.claim(name, "log", force=force)
        meta = {k: v for k, v in log.meta.items() if not k.startswith("_")}
        meta.update(name=name, kind="log", format=1, library_version=__version__)
        import polars as pl

        with atomic_directory(target) as tmp:
            log.frame.write_parquet(tmp / "log.parquet")
            pl.DataFrame({"raw_id": log.user_ids}).write_parquet(tmp / "users.parquet")
            pl.DataFrame({"raw_id": log.item_ids}).write_parquet(tmp / "items.parquet")
            (tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
        return target

    def remove(self, name: str) -> str:
        """Delete the dataset or raw log ``name``; returns which kind it was."""
        for kind, target in (("dataset", self.dataset_dir(name)), ("log", self.log_dir(name))):
            if target.exists():
                shutil.rmtree(target)
                return kind
        raise self._not_stored(name)

    def remove_all(self, names: list[str]) -> list[tuple[str, str]]:
        """Delete every named dataset or raw log, or none when one of the names is unknown.

        Returns ``(name, kind)`` per deletion, in the order given; a name given twice is deleted once.
        """
        for name in names:
            if not self.exists(name) and not self.log_exists(name):
                raise self._not_stored(name)
        return [(name, self.remove(name)) for name in dict.fromkeys(names)]

    def _not_stored(self, name: str) -> DiffrecError:
        return DiffrecError(f"no dataset named {name!r} in {self.datasets_dir} (nor a raw log in {self.logs_dir})")

    # ----- reading ------------------------------------------------------------------------------
    def meta(self, name: str) -> dict[str, Any]:
        path = self.dataset_dir(name) / "meta.json"
        if not path.is_file():
            if self.log_exists(name):
                raise DiffrecError(f"{name!r} is a raw log, not a prepared dataset",
                                   hint=Hint(step="prepare", subject=name, purpose="make a dataset of it"))
            known = ", ".join(self.names()) or "none yet"
            raise DiffrecError(f"unknown dataset {name!r} in {self.datasets_dir} (known: {known})",
                               hint=Hint(step="import", purpose="import a log, then prepare it"))
        return _read_meta(path, f"dataset {name!r}")

    def log_meta(self, name: str) -> dict[str, Any]:
        path = self.log_dir(name) / "meta.json"
        if not path.is_file():
            known = ", ".join(self.log_names()) or "none yet"
            raise DiffrecError(f"unknown log {name!r} in {self.logs_dir} (known: {known})",
                               hint=Hint(step="import", purpose="import one"))
        return _read_meta(path, f"log {name!r}")

    def describe(self, name: str) -> tuple[str, dict[str, Any]]:
        """``("dataset", meta)`` or ``("log", meta)``: what ``name`` is and its stored description.

        A name that is neither gets the unknown-dataset error.
        """
        if not self.exists(name) and self.log_exists(name):
            return "log", self.log_meta(name)
        return "dataset", self.meta(name)

    def load_log(self, name: str) -> Any:
        """The raw log ``name`` as a :class:`~diffrec_cli.data.ingest.RawLog`."""
        import polars as pl

        from diffrec_cli.data.ingest import RawLog

        meta = self.log_meta(name)
        folder = self.log_dir(name)
        try:
            frame = pl.read_parquet(folder / "log.parquet")
            users = pl.read_parquet(folder / "users.parquet")["raw_id"]
            items = pl.read_parquet(folder / "items.parquet")["raw_id"]
        except (OSError, pl.exceptions.PolarsError) as exc:
            raise DiffrecError(f"log {name!r} in {folder} is damaged: {exc}") from None
        return RawLog(frame=frame, user_ids=users, item_ids=items, meta=meta)

    def interactions(self, name: str) -> Any:
        """The stored interactions of dataset ``name`` (user, item, split, rating, time, ...) as a polars LazyFrame."""
        import polars as pl

        self.meta(name)
        path = self.dataset_dir(name) / "interactions.parquet"
        if not path.is_file():
            raise DiffrecError(f"dataset {name!r} has no interactions.parquet (prepared by an older version)")
        return pl.scan_parquet(path)

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


def _read_meta(path: Path, what: str) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DiffrecError(f"{what}: {path} is not valid JSON ({exc})") from None


def _interactions_table(data: InteractionData) -> Any:
    """The long table of a dataset that came without one (split folders): user, item, split, position."""
    import polars as pl

    parts = []
    for s in SPLITS:
        m = data.split(s)
        users = np.repeat(np.arange(m.shape[0], dtype=np.int32), np.diff(m.indptr))
        ordered = s == "train" and data.train_order is not None
        position = (pl.Series(np.asarray(data.train_order, dtype=np.int32)) if ordered
                    else pl.repeat(None, m.nnz, dtype=pl.Int32, eager=True))
        parts.append(pl.DataFrame({"user": users, "item": m.indices.astype(np.int32),
                                   "split": pl.repeat(s, m.nnz, dtype=pl.String, eager=True),
                                   "rating": pl.repeat(None, m.nnz, dtype=pl.Float32, eager=True),
                                   "time": pl.repeat(None, m.nnz, dtype=pl.Int64, eager=True),
                                   "position": position}))
    return pl.concat(parts)
