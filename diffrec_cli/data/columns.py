"""The values of one log column, checked and brought to the type a raw log stores.

Ids become Int64 (canonical integers, whole floats) or text; ratings Float32; timestamps Int64 unix
seconds within the years 1 to 9999 (what a calendar date can show). Anything else is a one-line error that
names the line (or row) and the column: a missing value, a NaN or infinite number, an id that is blank or
holds a control character, a column of lists or structs, true/false ratings, a date before year 1.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import polars as pl

from diffrec_cli.data.validate import TIME_MAX, TIME_MIN
from diffrec_cli.errors import DiffrecError

Where = Callable[[int], str]
_INTEGER_ID = r"^(?:0|-?[1-9][0-9]{0,17})$"  # canonical integers only: "007" stays a string id
_BLANK = r"^\s*$"
_CONTROL = r"[\x00-\x1f\x7f]"
_INT64_LIMIT = 2.0**63
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _first_true(mask: pl.Series) -> int:
    return int(mask.arg_max())


def _number_kind(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() and dtype != pl.Boolean


def ids(series: pl.Series, role: str, column: str, where: Where, label: str) -> pl.Series:
    """A column of user or item ids: Int64 where every id is a whole number, else text."""
    if series.null_count():
        row = _first_true(series.is_null())
        raise DiffrecError(f"{label}: {where(row)}: missing {role} id in column {column!r}")
    if series.dtype in (pl.Categorical, pl.Binary) or isinstance(series.dtype, pl.Enum):
        try:
            series = series.cast(pl.String)
        except pl.exceptions.PolarsError:
            raise DiffrecError(f"{label}: column {column!r} ({role} ids) holds bytes that are not UTF-8 "
                               f"text") from None
    if series.dtype == pl.String:
        return _text_ids(series, role, column, where, label)
    if series.dtype.is_integer():
        if series.dtype == pl.UInt64 and series.max() >= 2**63:
            row = _first_true(series >= 2**63)
            raise DiffrecError(f"{label}: {where(row)}: {role} id {series[row]} in column {column!r} is not a "
                               f"usable id (ids must be below 2**63)")
        return series.cast(pl.Int64)
    if _number_kind(series.dtype):
        return _float_ids(series.cast(pl.Float64), role, column, where, label)
    raise DiffrecError(f"{label}: column {column!r} ({role} ids) has type {series.dtype}; ids must be whole "
                       f"numbers or text")


def _text_ids(series: pl.Series, role: str, column: str, where: Where, label: str) -> pl.Series:
    for pattern, problem in ((_BLANK, "is blank"), (_CONTROL, "holds a control character")):
        bad = series.str.contains(pattern)
        if bad.any():
            row = _first_true(bad)
            raise DiffrecError(f"{label}: {where(row)}: {role} id {series[row]!r} in column {column!r} {problem}")
    if series.str.contains(_INTEGER_ID).all():
        return series.cast(pl.Int64)
    return series


def _float_ids(values: pl.Series, role: str, column: str, where: Where, label: str) -> pl.Series:
    bad = values.is_nan() | values.is_infinite() | (values.abs() >= _INT64_LIMIT)
    if bad.any():
        row = _first_true(bad)
        raise DiffrecError(f"{label}: {where(row)}: {role} id {values[row]!r} in column {column!r} is not "
                           f"a usable id (ids must be finite and below 2**63)")
    if (values == values.floor()).all():
        return values.cast(pl.Int64)
    return values


def ratings(series: pl.Series, column: str, where: Where, label: str) -> pl.Series:
    """A rating column as Float32; every value a finite number."""
    if series.dtype == pl.Boolean:
        raise DiffrecError(f"{label}: column {column!r} holds true/false values, not ratings (name a numeric "
                           f"rating column, or none)")
    if series.dtype == pl.String:
        values = series.cast(pl.Float64, strict=False)
    elif _number_kind(series.dtype):
        values = series.cast(pl.Float64)
    else:
        raise DiffrecError(f"{label}: column {column!r} (rating) has type {series.dtype}, not a number")
    bad = values.is_null() | values.is_nan() | values.is_infinite()
    if bad.any():
        row = _first_true(bad)
        if series[row] is None:
            raise DiffrecError(f"{label}: {where(row)}: missing rating in column {column!r}")
        raise DiffrecError(f"{label}: {where(row)}: rating {series[row]!r} in column {column!r} is not a number")
    huge = values.abs() > _FLOAT32_MAX
    if huge.any():
        row = _first_true(huge)
        raise DiffrecError(f"{label}: {where(row)}: rating {series[row]!r} in column {column!r} is too large "
                           f"(ratings are stored as 32-bit floats)")
    return values.cast(pl.Float32)


def timestamps(series: pl.Series, column: str, where: Where, label: str) -> pl.Series:
    """A time column as Int64 unix seconds: numbers (seconds), dates or date texts, years 1 to 9999."""
    if series.null_count():
        row = _first_true(series.is_null())
        raise DiffrecError(f"{label}: {where(row)}: missing timestamp in column {column!r}")
    original, numeric = series, _number_kind(series.dtype)
    if series.dtype == pl.Date:
        series = series.cast(pl.Datetime("ms"))
    if isinstance(series.dtype, pl.Datetime):
        series = series.dt.epoch("ms").cast(pl.Float64) / 1000
    elif series.dtype == pl.String:
        series, numeric = _text_times(series, column, where, label)
    elif numeric:
        series = series.cast(pl.Float64)
    else:
        raise DiffrecError(f"{label}: column {column!r} (timestamp) has type {series.dtype}, not a number")
    bad = series.is_nan() | series.is_infinite()
    if bad.any():
        row = _first_true(bad)
        raise DiffrecError(f"{label}: {where(row)}: timestamp {original[row]!r} in column {column!r} is not "
                           f"finite")
    outside = (series < TIME_MIN) | (series > TIME_MAX)
    if outside.any():
        row = _first_true(outside)
        raise DiffrecError(f"{label}: {where(row)}: timestamp {original[row]!r} in column {column!r} lies "
                           f"outside the years 1 to 9999" + (" (numbers are read as unix seconds)" if numeric else ""))
    return series.floor().cast(pl.Int64)


def _text_times(series: pl.Series, column: str, where: Where, label: str) -> tuple[pl.Series, bool]:
    """Texts that are all numbers (seconds), else all dates: as Float64 seconds, and whether they were numbers."""
    numbers = series.cast(pl.Float64, strict=False)
    if numbers.null_count() == 0:
        return numbers, True
    try:
        dates = series.str.to_datetime(strict=False, time_unit="ms")
    except pl.exceptions.PolarsError:  # no date format fits the first values
        dates = pl.repeat(None, len(series), dtype=pl.Datetime("ms"), eager=True)
    if dates.null_count() == 0:
        return dates.dt.epoch("ms").cast(pl.Float64) / 1000, False
    row = _first_true(numbers.is_null() & dates.is_null())
    raise DiffrecError(f"{label}: {where(row)}: timestamp {series[row]!r} in column {column!r} is "
                       f"neither a number nor a date")
