"""Import: interaction logs into a :class:`RawLog`, the authors' split folders into an :class:`InteractionData`.

A format reader (``formats.py``) hands over a file's columns; here the user/item/rating/time columns are
picked (named by the caller or guessed), checked value by value (errors name the line), exact duplicate
rows dropped and counted, and user and item ids mapped to dense ``0..n−1`` with the maps back to the
file's own ids. Recipes (``recipes.py``) turn a raw log into train/valid/test; ``store.py`` saves both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl

from diffrec_cli.data.formats import ROLES, Table, collect, detect_format
from diffrec_cli.data.sparse import InteractionData, csr_from_pairs
from diffrec_cli.errors import DiffrecError, Hint

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


# ===== interaction logs ==========================================================================
# Column names recognised when the caller names none (compared lower-case, without a RecBole
# ":type" suffix, spaces and dashes read as underscores).
COLUMN_GUESSES: dict[str, tuple[str, ...]] = {
    "user": ("user", "user_id", "userid", "uid", "user_name", "username", "customer_id", "customerid",
             "reviewerid", "reviewer_id", "visitorid", "visitor_id", "member_id", "client_id", "session_id"),
    "item": ("item", "item_id", "itemid", "iid", "movie_id", "movieid", "product_id", "productid", "asin",
             "business_id", "book_id", "bookid", "isbn", "track_id", "song_id", "article_id", "artist_id",
             "anime_id", "recipe_id", "venue_id", "poi_id"),
    "rating": ("rating", "ratings", "score", "stars", "overall", "rate", "preference", "review_score",
               "book_rating"),
    "time": ("time", "timestamp", "ts", "datetime", "date", "unixreviewtime", "unix_time", "unix_timestamp",
             "event_time", "created_at", "time_stamp", "utc", "review_time", "date_time"),
}
ROLE_WORDS = {"user": "user ids", "item": "item ids", "rating": "ratings", "time": "timestamps"}
_INTEGER_ID = r"^(?:0|-?[1-9][0-9]{0,17})$"  # canonical integers only: "007" stays a string id


def column_key(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", name.split(":", 1)[0].strip().lower())


@dataclass
class RawLog:
    """An imported interaction log, before any protocol.

    ``frame`` columns: ``user``, ``item`` (Int32 dense ids), ``rating`` (Float32, all null without a rating
    column), ``time`` (Int64 unix seconds, all null without a time column) and ``row`` (the 0-based row of
    the file, used to order interactions with equal timestamps). ``user_ids[u]`` / ``item_ids[i]`` are the
    file's own ids (a polars Series, so integer ids stay integers and string ids stay strings).
    """

    frame: pl.DataFrame
    user_ids: pl.Series
    item_ids: pl.Series
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def has_rating(self) -> bool:
        return bool(self.meta.get("has_rating"))

    @property
    def has_time(self) -> bool:
        return bool(self.meta.get("has_time"))

    @property
    def label(self) -> str:
        return str(self.meta.get("source", {}).get("path") or self.meta.get("name") or "the log")


def read_log(path: str | Path, fmt: str | None = None, *, user: str | None = None, item: str | None = None,
             rating: str | None = None, time: str | None = None, separator: str | None = None) -> RawLog:
    """Read an interaction log with polars. Column names given here win over the guessed ones."""
    path = Path(path)
    if not path.exists():
        raise DiffrecError(f"{path}: no such file")
    reader = detect_format(path, fmt)
    if reader.produces != "log":
        raise DiffrecError(f"{path}: format {reader.name!r} is a prepared split, not a log",
                           hint=Hint(step="import", subject=str(path), purpose="store it as a dataset"))
    if not path.is_file():
        raise DiffrecError(f"{path} is not a file")
    if path.stat().st_size == 0:
        raise DiffrecError(f"{path} is empty")
    table = reader.table(path, separator)
    mapping = _pick_columns(table, {"user": user, "item": item, "rating": rating, "time": time}, path)
    used = [c for c in mapping.values() if c is not None]
    raw = collect(table.frame.select(used), path, reader.name)
    source = {"path": str(path.resolve()), "format": reader.name,
              "columns": {role: col for role, col in mapping.items() if col is not None}}
    return _build_log(raw, mapping, where=table.where, label=str(path), source=source)


def log_from_frame(frame: pl.DataFrame, *, user: str = "user", item: str = "item", rating: str | None = "rating",
                   time: str | None = "time", source: dict[str, Any] | None = None) -> RawLog:
    """A raw log from an in-memory frame (the generator, tests, notebooks)."""
    mapping = {"user": user, "item": item,
               "rating": rating if rating in frame.columns else None,
               "time": time if time in frame.columns else None}
    for role in ("user", "item"):
        if mapping[role] not in frame.columns:
            raise DiffrecError(f"no {role} column {mapping[role]!r} (columns: {', '.join(frame.columns)})")
    return _build_log(frame.select([c for c in mapping.values() if c is not None]), mapping,
                      where=lambda r: f"row {r + 1}", label="the log", source=source or {"format": "frame"})


def _pick_columns(table: Table, requested: dict[str, str | None], path: Path) -> dict[str, str | None]:
    columns = table.columns
    by_key: dict[str, str] = {}
    for col in columns:
        by_key.setdefault(column_key(col), col)
    shown = ", ".join(repr(c) for c in columns)
    mapping: dict[str, str | None] = {}
    for role in ROLES:
        want = requested.get(role)
        if want is not None:
            if want in columns:
                mapping[role] = want
            elif column_key(want) in by_key:
                mapping[role] = by_key[column_key(want)]
            else:
                raise DiffrecError(f"{path}: no column {want!r} for the {ROLE_WORDS[role]} (columns: {shown})",
                                   hint=Hint(options=(role,), purpose="name one of these columns"))
        elif table.fixed is not None:
            mapping[role] = table.fixed[role]
        else:
            mapping[role] = next((by_key[g] for g in COLUMN_GUESSES[role] if g in by_key), None)
    for role in ("user", "item"):
        if mapping[role] is None:
            raise DiffrecError(f"{path}: no {role} column found (columns: {shown})",
                               hint=Hint(options=(role,), purpose="name it"))
    chosen = [c for c in mapping.values() if c is not None]
    if len(set(chosen)) != len(chosen):
        raise DiffrecError(f"{path}: one column serves two roles ({mapping}); name the columns explicitly")
    return mapping


def _first_true(mask: pl.Series) -> int:
    return int(mask.arg_max())


def _ids(series: pl.Series, role: str, column: str, where: Callable[[int], str], label: str) -> pl.Series:
    if series.null_count():
        row = _first_true(series.is_null())
        raise DiffrecError(f"{label}: {where(row)}: missing {role} id in column {column!r}")
    if series.dtype == pl.String:
        if series.str.contains(_INTEGER_ID).all():
            return series.cast(pl.Int64)
        return series
    if series.dtype.is_integer():
        return series.cast(pl.Int64)
    if series.dtype.is_float() and (series == series.floor()).all():
        return series.cast(pl.Int64)
    if series.dtype.is_numeric():
        return series
    return series.cast(pl.String)


def _ratings(series: pl.Series, column: str, where: Callable[[int], str], label: str) -> pl.Series:
    values = series.cast(pl.Float64, strict=False) if series.dtype == pl.String or series.dtype == pl.Boolean \
        else _cast_numeric(series, column, "rating", label)
    bad = values.is_null() | values.is_nan() | values.is_infinite()
    if bad.any():
        row = _first_true(bad)
        if series[row] is None:
            raise DiffrecError(f"{label}: {where(row)}: missing rating in column {column!r}")
        raise DiffrecError(f"{label}: {where(row)}: rating {series[row]!r} in column {column!r} is not a number")
    return values.cast(pl.Float32)


def _cast_numeric(series: pl.Series, column: str, role: str, label: str) -> pl.Series:
    if not series.dtype.is_numeric():
        raise DiffrecError(f"{label}: column {column!r} ({role}) has type {series.dtype}, not a number")
    return series.cast(pl.Float64)


def _times(series: pl.Series, column: str, where: Callable[[int], str], label: str) -> pl.Series:
    if series.null_count():
        row = _first_true(series.is_null())
        raise DiffrecError(f"{label}: {where(row)}: missing timestamp in column {column!r}")
    if series.dtype == pl.Date:
        series = series.cast(pl.Datetime("us"))
    if isinstance(series.dtype, pl.Datetime):
        return series.dt.epoch("s").cast(pl.Int64)
    if series.dtype == pl.String:
        numbers = series.cast(pl.Float64, strict=False)
        if numbers.null_count() == 0:
            series = numbers
        else:
            try:
                dates = series.str.to_datetime(strict=False)
            except pl.exceptions.PolarsError:  # no date format fits the first values
                dates = pl.repeat(None, len(series), dtype=pl.Datetime("us"), eager=True)
            if dates.null_count() == 0:
                return dates.dt.epoch("s").cast(pl.Int64)
            row = _first_true(numbers.is_null() & dates.is_null())
            raise DiffrecError(f"{label}: {where(row)}: timestamp {series[row]!r} in column {column!r} is "
                               f"neither a number nor a date")
    series = _cast_numeric(series, column, "timestamp", label)
    bad = series.is_nan() | series.is_infinite()
    if bad.any():
        row = _first_true(bad)
        raise DiffrecError(f"{label}: {where(row)}: timestamp {series[row]!r} in column {column!r} is not finite")
    return series.floor().cast(pl.Int64)


def _build_log(raw: pl.DataFrame, mapping: dict[str, str | None], *, where: Callable[[int], str], label: str,
               source: dict[str, Any]) -> RawLog:
    if raw.height == 0:
        raise DiffrecError(f"{label} has no rows")
    n = raw.height
    cols = {
        "user": _ids(raw[mapping["user"]], "user", mapping["user"], where, label),
        "item": _ids(raw[mapping["item"]], "item", mapping["item"], where, label),
        "rating": (_ratings(raw[mapping["rating"]], mapping["rating"], where, label) if mapping["rating"]
                   else pl.repeat(None, n, dtype=pl.Float32, eager=True)),
        "time": (_times(raw[mapping["time"]], mapping["time"], where, label) if mapping["time"]
                 else pl.repeat(None, n, dtype=pl.Int64, eager=True)),
    }
    del raw
    frame = pl.DataFrame([s.alias(k) for k, s in cols.items()]).with_row_index("row").with_columns(
        pl.col("row").cast(pl.Int64))
    del cols
    frame = frame.unique(subset=list(ROLES), keep="first", maintain_order=True)
    duplicates = n - frame.height
    user_ids = frame.get_column("user").unique().sort()
    item_ids = frame.get_column("item").unique().sort()
    frame = frame.with_columns(
        (pl.col("user").rank("dense") - 1).cast(pl.Int32),
        (pl.col("item").rank("dense") - 1).cast(pl.Int32),
    ).select(["user", "item", "rating", "time", "row"])
    meta = {
        "kind": "log", "source": source, "rows_read": n, "duplicates_dropped": duplicates,
        "rows": frame.height, "users": len(user_ids), "items": len(item_ids),
        "has_rating": mapping["rating"] is not None, "has_time": mapping["time"] is not None,
        **value_ranges(frame),
    }
    return RawLog(frame=frame, user_ids=user_ids.alias("raw_id"), item_ids=item_ids.alias("raw_id"), meta=meta)


def value_ranges(frame: pl.DataFrame) -> dict[str, list | None]:
    """``rating_range`` and ``time_range`` ([min, max], or None where the column is all null)."""
    out: dict[str, list | None] = {}
    for col in ("rating", "time"):
        if col not in frame.columns or frame[col].null_count() == frame.height:
            out[f"{col}_range"] = None
        else:
            lo, hi = frame[col].min(), frame[col].max()
            out[f"{col}_range"] = [float(lo) if col == "rating" else int(lo), float(hi) if col == "rating" else int(hi)]
    return out
