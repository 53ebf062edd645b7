"""The data home: where prepared datasets and runs live.

Layout: ``HOME/datasets/NAME/{meta.json, splits.npz, interactions.parquet, users.parquet, items.parquet
[, item_emb.npy]}`` (prepared datasets), ``HOME/logs/NAME/{meta.json, log.parquet, users.parquet,
items.parquet}`` (imported raw logs, the input of ``diffrec data prepare``) and ``HOME/runs/RUN_ID/``.
Datasets and logs share one namespace: a name is either. HOME is ``--home``, else ``$DIFFREC_HOME``, else
the platform's user-data folder (``home.py``; ``~/.local/share/diffrec`` on Linux). A dataset directory is
built under a temporary name and renamed into place.

Writers take the home's lock and build each folder under a hidden temporary name before renaming it in
(``data/guard.py``, ``atomic.atomic_directory``); readers skip hidden entries. Everything read back is
checked (``data/validate.py``): a damaged file is a one-line error, never a crash.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from diffrec_cli import __version__
from diffrec_cli.atomic import atomic_directory
from diffrec_cli.data.guard import sweep, writers_lock
from diffrec_cli.data.sparse import SPLITS, InteractionData
from diffrec_cli.data.validate import check_csr, check_dataset_meta, check_item_emb, check_log_meta, read_npy
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


# What a name held when an operation began (see DataHome.version); ANY: not checked.
Version = tuple | None
ANY: Any = object()


class DataHome(HomeFolders):
    """The data home's datasets, logs and runs (the folders and names: ``home.HomeFolders``).

    ``on_wait(holder)`` is called once when a write has waited a while for another process's lock.
    """

    def __init__(self, home: str | os.PathLike | None = None,
                 on_wait: Callable[[str], None] | None = None) -> None:
        super().__init__(home)
        self.on_wait = on_wait

    # Datasets and logs: each a folder NAME/ holding meta.json once complete.
    def dataset_dir(self, name: str) -> Path:
        return self.datasets_dir / check_name(name)

    def log_dir(self, name: str) -> Path:
        return self.logs_dir / check_name(name)

    def exists(self, name: str) -> bool:
        return (self.dataset_dir(name) / "meta.json").is_file()

    def log_exists(self, name: str) -> bool:
        return (self.log_dir(name) / "meta.json").is_file()

    def version(self, name: str) -> Version:
        """What ``name`` holds now, as a value that changes whenever it is written or removed (None: nothing)."""
        for kind, folder in (("dataset", self.dataset_dir(name)), ("log", self.log_dir(name))):
            try:
                stat = (folder / "meta.json").stat()
            except OSError:
                continue
            return kind, stat.st_ino, stat.st_mtime_ns, stat.st_size
        return None

    def claim(self, name: str, kind: str, *, force: bool = False) -> Version:
        """Refuse ``name`` for a new ``kind`` ("dataset" or "log") when taken (by the same kind: unless forced).

        Returns what the name holds (:meth:`version`): give it to ``save``/``save_log`` as ``expect``, so that
        a result another process stored meanwhile is never replaced unseen.
        """
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
        return self.version(name)

    @contextmanager
    def writing(self):
        """Hold the home's writers' lock (waiting for another writer), after tidying what killed writers left."""
        with writers_lock(self.root, self.on_wait):
            sweep(self.datasets_dir)
            sweep(self.logs_dir)
            yield

    def tidy(self) -> None:
        """Sweep what killed writers left, if there is anything and no other writer holds the lock (never
        waits): for commands that write the home elsewhere (a training writes ``runs/``)."""
        folders = [f for f in (self.datasets_dir, self.logs_dir) if f.is_dir()]
        if not any(p.name.startswith(".") for f in folders for p in f.iterdir()):
            return
        try:
            with writers_lock(self.root, timeout=0):
                sweep(self.datasets_dir)
                sweep(self.logs_dir)
        except DiffrecError:  # another writer holds the lock: it sweeps
            pass

    def _claim_unchanged(self, name: str, kind: str, force: bool, expect: Any) -> None:
        """Under the lock: ``claim`` again, and refuse when another process changed ``name`` since ``expect``."""
        now = self.claim(name, kind, force=force)
        if expect is not ANY and now != expect:
            raise DiffrecError(f"{kind} {name!r} was written by another process while this one was working; "
                               f"nothing was saved (run the command again to replace it)")

    # ----- writing ------------------------------------------------------------------------------
    def save(self, data: InteractionData, *, force: bool = False, expect: Any = ANY) -> Path:
        """Store a prepared dataset (checked whole before anything is written); see :meth:`claim` for ``expect``."""
        target = self.dataset_dir(data.name)
        self.claim(data.name, "dataset", force=force)
        arrays, meta, item_emb = _dataset_files(data)
        import polars as pl  # imported here so that training-only imports stay light

        interactions = data.interactions if data.interactions is not None else _interactions_table(data)
        with self.writing():
            self._claim_unchanged(data.name, "dataset", force, expect)
            with atomic_directory(target) as tmp:
                np.savez(tmp / "splits.npz", **arrays)
                interactions.write_parquet(tmp / "interactions.parquet")
                pl.DataFrame({"raw_id": data.user_ids}).write_parquet(tmp / "users.parquet")
                pl.DataFrame({"raw_id": data.item_ids}).write_parquet(tmp / "items.parquet")
                if item_emb is not None:
                    np.save(tmp / "item_emb.npy", item_emb, allow_pickle=False)
                (tmp / "meta.json").write_text(meta)
        return target

    def save_log(self, log: Any, name: str, *, force: bool = False, expect: Any = ANY) -> Path:
        """Store an imported :class:`~diffrec_cli.data.ingest.RawLog` under ``logs/NAME``."""
        target = self.log_dir(name)
        self.claim(name, "log", force=force)
        meta = {k: v for k, v in log.meta.items() if not k.startswith("_")}
        meta.update(name=name, kind="log", format=1, library_version=__version__)
        text = _meta_text(check_log_meta, meta, f"log {name!r}")
        import polars as pl

        with self.writing():
            self._claim_unchanged(name, "log", force, expect)
            with atomic_directory(target) as tmp:
                log.frame.write_parquet(tmp / "log.parquet")
                pl.DataFrame({"raw_id": log.user_ids}).write_parquet(tmp / "users.parquet")
                pl.DataFrame({"raw_id": log.item_ids}).write_parquet(tmp / "items.parquet")
                (tmp / "meta.json").write_text(text)
        return target

    def remove(self, name: str) -> str:
        """Delete the dataset or raw log ``name``; returns which kind it was. A name that is a symbolic link
        loses the link only: the folder it points to, outside the data home's control, is left alone."""
        with self.writing():
            for kind, target in (("dataset", self.dataset_dir(name)), ("log", self.log_dir(name))):
                if os.path.islink(target):
                    target.unlink()
                    return kind
                if target.exists():
                    shutil.rmtree(target)
                    return kind
        raise self._not_stored(name)

    def remove_all(self, names: list[str]) -> list[tuple[str, str]]:
        """Delete every named dataset or raw log, or none when one of the names is unknown.

        Returns ``(name, kind)`` per deletion, in the order given; a name given twice is deleted once.
        """
        with self.writing():
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
        return _read_meta(path, f"dataset {name!r}", check_dataset_meta)

    def log_meta(self, name: str) -> dict[str, Any]:
        path = self.log_dir(name) / "meta.json"
        if not path.is_file():
            known = ", ".join(self.log_names()) or "none yet"
            raise DiffrecError(f"unknown log {name!r} in {self.logs_dir} (known: {known})",
                               hint=Hint(step="import", purpose="import one"))
        return _read_meta(path, f"log {name!r}", check_log_meta)

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
        if name == DEMO_NAME:
            self.ensure_demo()
        meta = self.meta(name)
        folder = self.dataset_dir(name)
        try:
            with np.load(folder / "splits.npz", allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            users, items = arrays.pop("user_ids", None), arrays.pop("item_ids", None)
            if users is None or items is None:  # prepared before the ids were stored beside the splits
                users, items = _parquet_ids(folder)
        except Exception as exc:  # a truncated or edited file: zipfile, numpy and polars each raise their own
            raise DiffrecError(f"dataset {name!r} in {folder} is damaged: {_first_line(exc)}") from None
        if np.ndim(users) != 1 or np.ndim(items) != 1:
            raise DiffrecError(f"dataset {name!r}: the raw ids in {folder / 'splits.npz'} are damaged")
        shape = (len(users), len(items))
        splits = {}
        for s in SPLITS:
            parts = [arrays.get(f"{s}_{p}") for p in ("indptr", "indices", "data")]
            try:
                if any(p is None for p in parts):
                    raise DiffrecError("arrays missing")
                check_csr(*parts, shape)
            except DiffrecError as exc:
                raise DiffrecError(f"dataset {name!r}: split {s} in splits.npz is damaged ({exc})") from None
            splits[s] = sp.csr_matrix((parts[2], parts[1], parts[0]), shape=shape)
        item_emb = None
        if (folder / "item_emb.npy").is_file():
            item_emb = check_item_emb(read_npy(folder / "item_emb.npy"), shape[1], f"dataset {name!r}: item_emb.npy")
        train_order = arrays.get("train_order")
        if train_order is not None and train_order.shape != (splits["train"].nnz,):
            raise DiffrecError(f"dataset {name!r}: train_order in splits.npz does not match the train split")
        return InteractionData(name=name, **splits, user_ids=users, item_ids=items,
                               train_order=train_order, item_emb=item_emb, meta=meta)

    def ensure_demo(self) -> bool:
        """Build the bundled demo dataset unless it is there; whether this call built it. One process builds it
        (holding the writers' lock) while any other waits and then finds it built."""
        if self.exists(DEMO_NAME):
            return False
        from diffrec_cli.data.demo import build_demo

        with self.writing():
            if self.exists(DEMO_NAME):
                return False
            self.save(build_demo())
            return True


def _dataset_files(data: InteractionData) -> tuple[dict[str, np.ndarray], str, np.ndarray | None]:
    """The arrays, meta.json text and item embeddings to store for ``data``, all checked first."""
    for s in SPLITS:
        if data.split(s).nnz == 0:
            raise DiffrecError(f"dataset {data.name!r}: the {s} split is empty")
    arrays: dict[str, np.ndarray] = {}
    for s in SPLITS:
        m = data.split(s)
        arrays[f"{s}_indptr"] = m.indptr.astype(np.int64)
        arrays[f"{s}_indices"] = m.indices.astype(np.int32)
        arrays[f"{s}_data"] = m.data.astype(np.float32)
        check_csr(arrays[f"{s}_indptr"], arrays[f"{s}_indices"], arrays[f"{s}_data"], m.shape)
    # the raw ids also go into splits.npz, so that loading a dataset to train needs no parquet reader
    # (polars costs a training process ~40 MB); users.parquet and items.parquet stay for other readers
    arrays["user_ids"], arrays["item_ids"] = _plain_ids(data.user_ids), _plain_ids(data.item_ids)
    if data.train_order is not None:
        arrays["train_order"] = np.asarray(data.train_order, dtype=np.int32)
    item_emb = None
    if data.item_emb is not None:
        item_emb = check_item_emb(np.asarray(data.item_emb), data.n_items, f"dataset {data.name!r}: item embeddings")
    meta = {k: v for k, v in data.meta.items() if not k.startswith("_")}
    meta.update(name=data.name, format=1, library_version=__version__, fingerprint=data.fingerprint(),
                counts=data.counts(), has_item_emb=item_emb is not None)
    return arrays, _meta_text(check_dataset_meta, meta, f"dataset {data.name!r}"), item_emb


def _plain_ids(ids: np.ndarray) -> np.ndarray:
    """Raw ids as an array ``np.load`` reads without pickle: numbers as they are, anything else as text."""
    ids = np.asarray(ids)
    return ids if ids.dtype.kind in "iufU" else np.array([str(v) for v in ids.tolist()], dtype=str)


def _parquet_ids(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    import polars as pl

    return (pl.read_parquet(folder / "users.parquet")["raw_id"].to_numpy(),
            pl.read_parquet(folder / "items.parquet")["raw_id"].to_numpy())


def _meta_text(check: Callable[[Any], Any], meta: dict[str, Any], what: str) -> str:
    """``meta`` as the JSON text to store, after the same check a reader applies (so it reads back)."""
    try:
        text = json.dumps(meta, indent=2, allow_nan=False) + "\n"
        check(json.loads(text))
    except (TypeError, ValueError, DiffrecError) as exc:
        raise DiffrecError(f"{what}: its description cannot be stored ({exc})") from None
    return text


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _read_meta(path: Path, what: str, check: Callable[[Any], dict[str, Any]]) -> dict[str, Any]:
    try:
        return check(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DiffrecError(f"{what}: {path} is not valid JSON ({exc})") from None
    except DiffrecError as exc:
        raise DiffrecError(f"{what}: {path} is damaged: {exc}",
                           hint=Hint(step="remove", subject=path.parent.name, purpose="drop it")) from None


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
