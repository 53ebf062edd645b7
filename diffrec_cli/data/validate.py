"""Checks of what the data home stores and reads back: metadata, CSR arrays, item embeddings, times.

Whatever is saved passes these checks first, and whatever is read back passes them again, so a file edited
or truncated by hand is a one-line error naming the file and the field, never a crash later (in a table,
in training). ``.npy`` files are read without unpickling.
"""

from __future__ import annotations

import json
import math
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from diffrec_cli.errors import DiffrecError

# Timestamps are unix seconds that must convert to a calendar date (years 1 to 9999) for tables and recipes.
TIME_MIN = int(datetime(1, 1, 1, tzinfo=timezone.utc).timestamp())
TIME_MAX = int(datetime(9999, 12, 31, 23, 59, 59, tzinfo=timezone.utc).timestamp())
COUNT_KEYS = ("users", "items", "train", "valid", "test", "interactions")
LOG_COUNT_KEYS = ("rows", "rows_read", "duplicates_dropped", "users", "items")


def is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_time_range(span: Any, where: str) -> None:
    """``span`` is None or ``[first, last]`` unix seconds within years 1 to 9999."""
    if span is None:
        return
    if not (isinstance(span, list) and len(span) == 2 and all(is_number(v) for v in span)):
        raise DiffrecError(f"{where} should be [first, last] timestamps, found {_short(span)}")
    if not TIME_MIN <= min(span) <= max(span) <= TIME_MAX:
        raise DiffrecError(f"{where} {span} lies outside the years 1 to 9999")


def _check_number_range(span: Any, where: str) -> None:
    if span is not None and not (isinstance(span, list) and len(span) == 2 and all(is_number(v) for v in span)):
        raise DiffrecError(f"{where} should be [lowest, highest] numbers, found {_short(span)}")


def _short(value: Any) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _require(meta: dict[str, Any], key: str, ok: bool, wanted: str) -> None:
    if not ok:
        raise DiffrecError(f"{key} should be {wanted}, found {_short(meta.get(key))}")


def _check_mapping(meta: dict[str, Any], key: str) -> None:
    _require(meta, key, meta.get(key) is None or isinstance(meta[key], dict), "an object")


def check_dataset_meta(meta: Any) -> dict[str, Any]:
    """A prepared dataset's ``meta.json`` content, checked field by field (DiffrecError naming the field)."""
    if not isinstance(meta, dict):
        raise DiffrecError(f"expected a JSON object, found {type(meta).__name__}")
    _require(meta, "name", isinstance(meta.get("name"), str), "text")
    counts = meta.get("counts")
    _require(meta, "counts", isinstance(counts, dict), "an object of counts")
    for key in COUNT_KEYS:
        if not is_count(counts.get(key)):
            raise DiffrecError(f"counts.{key} should be a count (a whole number >= 0), found {_short(counts.get(key))}")
    if not is_number(counts.get("density")):
        raise DiffrecError(f"counts.density should be a number, found {_short(counts.get('density'))}")
    _require(meta, "fingerprint", isinstance(meta.get("fingerprint", ""), str), "text")
    for key in ("recipe", "report", "source", "ranges"):
        _check_mapping(meta, key)
    for split, ranges in (meta.get("ranges") or {}).items():
        if not isinstance(ranges, dict):
            raise DiffrecError(f"ranges.{split} should be an object, found {_short(ranges)}")
        _check_number_range(ranges.get("rating_range"), f"ranges.{split}.rating_range")
        check_time_range(ranges.get("time_range"), f"ranges.{split}.time_range")
    return meta


def check_log_meta(meta: Any) -> dict[str, Any]:
    """A raw log's ``meta.json`` content, checked field by field."""
    if not isinstance(meta, dict):
        raise DiffrecError(f"expected a JSON object, found {type(meta).__name__}")
    _require(meta, "name", isinstance(meta.get("name"), str), "text")
    for key in LOG_COUNT_KEYS:
        _require(meta, key, is_count(meta.get(key)), "a count (a whole number >= 0)")
    for key in ("has_rating", "has_time"):
        _require(meta, key, isinstance(meta.get(key, False), bool), "true or false")
    _check_number_range(meta.get("rating_range"), "rating_range")
    check_time_range(meta.get("time_range"), "time_range")
    _check_mapping(meta, "source")
    source = meta.get("source") or {}
    _require(source, "columns", source.get("columns") is None or isinstance(source["columns"], dict), "an object")
    return meta


def check_csr(indptr: np.ndarray, indices: np.ndarray, values: np.ndarray, shape: tuple[int, int]) -> None:
    """The three arrays of a CSR matrix of ``shape``, consistent (scipy checks lengths only)."""
    rows, cols = shape
    for label, arr in (("indptr", indptr), ("indices", indices)):
        if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
            raise DiffrecError(f"{label} should be a list of whole numbers, found {arr.dtype} {arr.shape}")
    if values.ndim != 1 or not np.issubdtype(values.dtype, np.number) or not np.isfinite(values).all():
        raise DiffrecError(f"data should be finite numbers, found {values.dtype} {values.shape}")
    if len(indptr) != rows + 1 or indptr[0] != 0 or (np.diff(indptr) < 0).any():
        raise DiffrecError(f"indptr should rise from 0 over {rows + 1} entries")
    if indptr[-1] != len(indices) or len(indices) != len(values):
        raise DiffrecError(f"indptr ends at {indptr[-1]} but there are {len(indices)} indices and "
                           f"{len(values)} values")
    if len(indices) and (indices.min() < 0 or indices.max() >= cols):
        raise DiffrecError(f"item indices should lie in 0..{cols - 1}")


def read_npy(path: Path) -> np.ndarray:
    """An ``.npy`` array, never unpickled; any unreadable file is a DiffrecError naming it."""
    try:
        return np.load(path, allow_pickle=False)
    except Exception as exc:  # numpy raises ValueError, OSError, EOFError, UnpicklingError, ... for bad files
        text = str(exc)
        if "Object arrays" in text:
            detail = "it holds Python objects, which are never unpickled"
        elif "pickled" in text:  # numpy reads anything without the .npy header as a pickle
            detail = "it is not in .npy format, and pickled data is never loaded"
        else:
            detail = f"{type(exc).__name__}: {text.strip().splitlines()[0] if text.strip() else ''}"
        raise DiffrecError(f"{path} is not a readable .npy array ({detail})") from None


def check_item_emb(emb: np.ndarray, n_items: int, where: str) -> np.ndarray:
    """Item embeddings: a (n_items, d) array of finite real numbers, returned as float32."""
    if emb.ndim != 2 or emb.shape[0] != n_items or emb.shape[1] < 1:
        raise DiffrecError(f"{where}: expected shape ({n_items}, d), got {emb.shape}")
    if emb.dtype == np.bool_ or not (np.issubdtype(emb.dtype, np.integer) or np.issubdtype(emb.dtype, np.floating)):
        raise DiffrecError(f"{where}: expected real numbers, got dtype {emb.dtype}")
    with np.errstate(over="ignore", invalid="ignore"):  # too large for float32 becomes inf, refused below
        converted = emb.astype(np.float32)
    finite = np.isfinite(converted)
    if not finite.all():
        row = int(np.argwhere(~finite)[0][0])
        raise DiffrecError(f"{where}: row {row} holds a value that is not a finite float32 number")
    return converted
