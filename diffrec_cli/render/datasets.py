"""Tables of datasets and raw logs: ``diffrec data info/list`` and the dashboard's datasets screen.

Each takes the stored description (``meta.json``) as read. The dataset-info table is also shown for
files the dashboard finds in the data home, so a missing or odd value shows as "–" instead of failing.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from rich.table import Table

COUNT_ROWS = (("users", "users"), ("items", "items"), ("train interactions", "train"),
              ("valid interactions", "valid"), ("test interactions", "test"), ("all interactions", "interactions"))
SPLITS = ("train", "valid", "test")
MISSING = "–"


def dataset_info_table(name: str, meta: dict[str, Any]) -> Table:
    """Table 1 of the paper for one dataset: counts, density, value ranges, recipe, fingerprint, source."""
    table = Table("statistic", "value", title=f"dataset {name}")
    counts = _mapping(meta.get("counts"))
    for label, key in COUNT_ROWS:
        value = counts.get(key)
        table.add_row(label, f"{value:,}" if isinstance(value, int) else MISSING)
    density = counts.get("density")
    table.add_row("density", f"{density:.4%}" if _is_number(density) else MISSING)
    ranges = _mapping(meta.get("ranges"))
    for key in ("rating", "time"):
        for split in SPLITS:
            if _mapping(ranges.get(split)).get(f"{key}_range"):
                table.add_row(f"{key} range ({split})", range_text(ranges[split], key))
    for label, key in (("recipe", "recipe"), ("recipe report", "report")):
        if _mapping(meta.get(key)):
            table.add_row(label, _pairs(meta[key]))
    table.add_row("fingerprint", str(meta.get("fingerprint", "?")))
    if _mapping(meta.get("source")):
        table.add_row("source", _pairs(meta["source"]))
    return table


def log_info_table(name: str, meta: dict[str, Any]) -> Table:
    """One raw log: rows read and kept, users, items, density, value ranges, columns, source."""
    table = Table("statistic", "value", title=f"raw log {name}")
    table.add_row("rows", f"{meta['rows']:,}")
    table.add_row("rows read", f"{meta['rows_read']:,}")
    table.add_row("duplicate rows dropped", f"{meta['duplicates_dropped']:,}")
    table.add_row("users", f"{meta['users']:,}")
    table.add_row("items", f"{meta['items']:,}")
    table.add_row("density", f"{meta['rows'] / max(1, meta['users'] * meta['items']):.4%}")
    table.add_row("rating range", range_text(meta, "rating") if meta.get("has_rating") else "no ratings")
    table.add_row("time range", range_text(meta, "time") if meta.get("has_time") else "no timestamps")
    source = dict(meta.get("source", {}))
    columns = source.pop("columns", None)
    if columns:
        table.add_row("columns", _pairs(columns))
    if source:
        table.add_row("source", _pairs(source))
    return table


def dataset_list_table(metas: list[dict[str, Any]], title: str) -> Table:
    """One row per prepared dataset: sizes of the splits, density and the protocol that made it."""
    table = Table("name", "users", "items", "train", "valid", "test", "density", "protocol", title=title)
    for m in metas:
        c = m["counts"]
        table.add_row(m["name"], f"{c['users']:,}", f"{c['items']:,}", f"{c['train']:,}", f"{c['valid']:,}",
                      f"{c['test']:,}", f"{c['density']:.4%}", origin(m))
    return table


def log_list_table(metas: list[dict[str, Any]], title: str) -> Table:
    """One row per raw log: rows, users, items, whether it has ratings and times, its file format."""
    table = Table("name", "rows", "users", "items", "ratings", "times", "format", title=title)
    for m in metas:
        table.add_row(m["name"], f"{m['rows']:,}", f"{m['users']:,}", f"{m['items']:,}",
                      "yes" if m.get("has_rating") else "no", "yes" if m.get("has_time") else "no",
                      str(m.get("source", {}).get("format", "?")))
    return table


def origin(meta: dict[str, Any]) -> str:
    """The recipe's protocol, or where a dataset came from when no recipe made it."""
    recipe = meta.get("recipe") or {}
    return str(recipe.get("protocol") or meta.get("source", {}).get("format") or "?")


def range_text(ranges: dict[str, Any] | None, key: str) -> str:
    """``ranges[key + "_range"]`` in words: "1 – 5" for ratings, "2020-09-15 → 2022-03-16" for times."""
    span = (ranges or {}).get(f"{key}_range")
    if not (isinstance(span, (list, tuple)) and len(span) == 2 and all(_is_number(v) for v in span)):
        return MISSING
    if key == "time":
        return f"{_day(span[0])} → {_day(span[1])}"
    return f"{span[0]:g} – {span[1]:g}"


def _day(seconds: int | float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d")


def _pairs(mapping: dict[str, Any]) -> str:
    return ", ".join(f"{k}={v}" for k, v in mapping.items())


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
