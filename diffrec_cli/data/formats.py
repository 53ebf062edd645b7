"""File formats of interaction logs: one reader per format (polars), and writers for the plain ones.

A reader turns a file into a :class:`Table`: its columns (lazy), how to name a row in messages and, for a
headerless format, which column plays which role. ``ingest.py`` picks the user/item/rating/time columns
of a table, checks them and maps the ids. The authors' split folder is a format too: it is read straight
into a prepared dataset (``ingest.import_split_folder``), so it has no reader here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import polars as pl

from diffrec_cli.atomic import atomic_path
from diffrec_cli.errors import DiffrecError, Hint

ROLES = ("user", "item", "rating", "time")
T = TypeVar("T")


@dataclass(frozen=True)
class Table:
    """What a format reader hands over: the file's columns (lazy) and how to name a row in messages."""

    frame: pl.LazyFrame
    columns: list[str]
    header_lines: int | None  # lines before the first data row in a text file; None: say "row N"
    fixed: dict[str, str] | None = None  # a headerless format's own column roles

    def where(self, row: int) -> str:
        """Row ``row`` (0-based, data rows only) as a reader of the file would find it: "line 3" or "row 2"."""
        return f"row {row + 1}" if self.header_lines is None else f"line {row + 1 + self.header_lines}"


class DelimitedFormat:
    """Text with a header row and one separator (CSV, TSV)."""

    produces = "log"

    def __init__(self, name: str, separator: str, suffixes: tuple[str, ...], description: str) -> None:
        self.name, self.separator, self.suffixes, self.description = name, separator, suffixes, description
        self.filenames: tuple[str, ...] = ()

    def table(self, path: Path, separator: str | None = None) -> Table:
        sep = separator or self.separator
        frame = pl.scan_csv(path, separator=sep, infer_schema=False, has_header=True)
        columns = _schema_names(frame, path, self.name)
        if len(columns) == 1:
            guess = next((s for s in ("\t", ",", ";", "|", "::") if s != sep and s in columns[0]), None)
            if guess is not None:
                raise DiffrecError(f"{path}: found a single column {columns[0]!r}; the file looks separated by "
                                   f"{guess!r}, not {sep!r}", hint=Hint(options=("separator", "fmt")))
        return Table(frame, columns, header_lines=1)

    def write(self, frame: pl.DataFrame, path: Path) -> None:
        frame.write_csv(path, separator=self.separator)


class ParquetFormat:
    name, suffixes, filenames, produces = "parquet", (".parquet", ".pq"), (), "log"
    description = "Apache Parquet with named columns"

    def table(self, path: Path, separator: str | None = None) -> Table:
        frame = pl.scan_parquet(path)
        return Table(frame, _schema_names(frame, path, self.name), header_lines=None)

    def write(self, frame: pl.DataFrame, path: Path) -> None:
        frame.write_parquet(path)


class MovieLensFormat:
    """Headerless MovieLens files: ``ratings.dat`` (``::``) and ``u.data`` (tab)."""

    produces = "log"

    def __init__(self, name: str, separator: str, suffixes: tuple[str, ...], filenames: tuple[str, ...],
                 description: str) -> None:
        self.name, self.separator, self.suffixes, self.filenames = name, separator, suffixes, filenames
        self.description = description

    def table(self, path: Path, separator: str | None = None) -> Table:
        double = self.separator == "::"
        # polars splits on single bytes: read "a::b" as "a", "", "b" and keep every second field. Read every
        # field (no projection), so that a line with extra fields is an error rather than silently cut.
        try:
            frame = pl.read_csv(path, separator=":" if double else self.separator, has_header=False,
                                infer_schema=False)
        except pl.exceptions.NoDataError:
            raise DiffrecError(f"{path} is empty") from None
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise DiffrecError(f"{path} is not a {self.description} file: {_first_line(exc)}") from None
        columns = frame.columns
        gaps = columns[1::2] if double else []
        if len(columns) != (7 if double else 4) or any(frame[c].null_count() != frame.height for c in gaps):
            raise DiffrecError(f"{path} is not a {self.description} file: each line must hold 4 fields (user, "
                               f"item, rating, timestamp) separated by {self.separator!r}")
        if double:
            columns = columns[0::2]
        frame = frame.select([pl.col(c).alias(role) for role, c in zip(ROLES, columns)])
        return Table(frame.lazy(), list(ROLES), header_lines=0, fixed={role: role for role in ROLES})


class RecBoleFormat:
    """RecBole atomic ``.inter`` files: tab-separated, header fields ``name:type``."""

    name, suffixes, filenames, produces = "recbole", (".inter",), (), "log"
    description = "RecBole atomic .inter (tab-separated, header 'name:type')"
    types = ("token", "token_seq", "float", "float_seq")

    def table(self, path: Path, separator: str | None = None) -> Table:
        frame = pl.scan_csv(path, separator="\t", infer_schema=False, has_header=True, quote_char=None)
        columns = _schema_names(frame, path, self.name)
        for col in columns:
            kind = col.rpartition(":")[2] if ":" in col else None
            if kind not in self.types:
                raise DiffrecError(f"{path} is not a RecBole .inter file: header field {col!r} is not "
                                   f"'name:type' with type one of {', '.join(self.types)}")
        return Table(frame, columns, header_lines=1)


class SplitFolderFormat:
    """The authors' split folder: already split, so it becomes a prepared dataset, not a raw log."""

    name, suffixes, filenames, produces = "split-folder", (), (), "dataset"
    description = "the DiffRec authors' split folder (train_list.npy, valid_list.npy, test_list.npy)"


FORMATS: dict[str, Any] = {f.name: f for f in (
    DelimitedFormat("csv", ",", (".csv",), "comma-separated values with a header row"),
    DelimitedFormat("tsv", "\t", (".tsv", ".tab"), "tab-separated values with a header row"),
    ParquetFormat(),
    MovieLensFormat("ml-1m", "::", (".dat",), ("ratings.dat",),
                    "MovieLens ratings.dat (UserID::MovieID::Rating::Timestamp)"),
    MovieLensFormat("ml-100k", "\t", (), ("u.data",),
                    "MovieLens u.data (user, item, rating, timestamp; tab-separated)"),
    RecBoleFormat(),
    SplitFolderFormat(),
)}


def detect_format(path: Path, name: str | None = None):
    """The format called ``name``, else the one the file name suggests (a folder: a split folder)."""
    if name is not None:
        try:
            return FORMATS[name]
        except KeyError:
            raise DiffrecError(f"unknown format {name!r} (choose from {', '.join(FORMATS)})") from None
    if path.is_dir():
        return FORMATS["split-folder"]
    lower = path.name.lower()
    for fmt in FORMATS.values():
        if lower in fmt.filenames:
            return fmt
    for fmt in FORMATS.values():
        if any(lower.endswith(s) for s in fmt.suffixes):
            return fmt
    raise DiffrecError(f"cannot tell the format of {path} from its name (formats: {', '.join(FORMATS)})",
                       hint=Hint(options=("fmt",)))


WRITABLE = tuple(f for f in FORMATS.values() if hasattr(f, "write"))


def log_writer(path: Path) -> Any:
    """The format that writes a log to ``path``, chosen by its suffix (.csv, .tsv, .parquet, ...)."""
    lower = path.name.lower()
    writer = next((f for f in WRITABLE if lower.endswith(f.suffixes)), None)
    if writer is None:
        usual = [f.suffixes[0] for f in WRITABLE]
        raise DiffrecError(f"cannot write a log to {path}: the name must end in {', '.join(usual[:-1])} "
                           f"or {usual[-1]}")
    return writer


def write_log_file(frame: pl.DataFrame, path: Path) -> None:
    """Write ``frame`` in the format of ``path``'s suffix (see :func:`log_writer`), all at once or not at all."""
    writer = log_writer(path)
    with atomic_path(path) as tmp:
        writer.write(frame, tmp)


def collect(frame: pl.LazyFrame, path: Path, fmt: str) -> pl.DataFrame:
    """Read the (selected) columns of a format reader's table; a file that turns out bad is an error."""
    return _reading(frame.collect, path, fmt)


def _schema_names(frame: pl.LazyFrame, path: Path, fmt: str) -> list[str]:
    return _reading(lambda: frame.collect_schema().names(), path, fmt)


def _reading(read: Callable[[], T], path: Path, fmt: str) -> T:
    """``read()``, with polars' complaints about the file turned into one-line errors."""
    try:
        return read()
    except pl.exceptions.NoDataError:
        raise DiffrecError(f"{path} is empty") from None
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise DiffrecError(f"{path} is not a valid {fmt} file: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
