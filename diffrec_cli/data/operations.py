"""The operations behind ``diffrec data``: import a file, prepare a dataset, generate a log, build the demo.

Each one checks the new name before any work, writes nothing on failure (the data home writes whole
directories at once) and returns what it stored; the caller (the CLI, a notebook) decides what to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from diffrec_cli.data.formats import detect_format, log_writer, write_log_file
from diffrec_cli.data.ingest import RawLog, import_split_folder, log_from_frame, read_log
from diffrec_cli.data.store import DEMO_NAME, DataHome, check_name, is_name
from diffrec_cli.errors import DiffrecError, Hint


@dataclass(frozen=True)
class Stored:
    """What an operation put in the data home: a ``"dataset"`` or a ``"log"``, its name and folder."""

    kind: str
    name: str
    path: Path


def import_file(home: DataHome, path: str | Path, name: str, *, fmt: str | None = None, force: bool = False,
                **columns: str | None) -> Stored:
    """Import ``path`` under ``name``: a log file becomes a raw log, a split folder a prepared dataset.

    ``fmt`` names the format (default: from the file name); ``columns`` (``user``, ``item``, ``rating``,
    ``time``, ``separator``) go to :func:`~diffrec_cli.data.ingest.read_log`. ``force`` replaces a stored
    entry of the same kind.
    """
    path = Path(path)
    check_name(name)
    if detect_format(path, fmt).produces == "dataset":
        home.claim(name, "dataset", force=force)
        return Stored("dataset", name, home.save(import_split_folder(path, name), force=force))
    home.claim(name, "log", force=force)
    log = read_log(path, fmt, **columns)
    return Stored("log", name, home.save_log(log, name, force=force))


def open_log(home: DataHome, source: str) -> RawLog:
    """The raw log ``source`` names: an imported log of the data home, else a log file at that path."""
    if is_name(source) and home.log_exists(source):
        return home.load_log(source)
    if Path(source).is_file():
        return read_log(Path(source))
    if is_name(source) and home.exists(source):
        raise DiffrecError(f"{source!r} is a prepared dataset, not a raw log",
                           hint=Hint(step="import", purpose="import a log first"))
    known = ", ".join(home.log_names()) or "none yet"
    raise DiffrecError(f"no log named {source!r} in {home.logs_dir} and no such file (logs: {known})")


def prepare(home: DataHome, source: str, name: str, *, protocol: str = "clean",
            settings: dict[str, Any] | None = None, force: bool = False) -> Stored:
    """Build dataset ``name`` from the log ``source`` (see :func:`open_log`) with a protocol's recipe.

    ``settings`` are the recipe's (text is read as each default's type); ``force`` replaces a dataset.
    """
    from diffrec_cli.data.recipes import make_recipe

    check_name(name)
    recipe = make_recipe(protocol, settings)
    home.claim(name, "dataset", force=force)
    data = recipe.prepare(open_log(home, source), name)
    return Stored("dataset", name, home.save(data, force=force))


def generate(home: DataHome, name: str, *, users: int, items: int, interactions: int, seed: int = 0,
             out: Path | None = None, force: bool = False) -> Stored:
    """Generate a synthetic log (``demo.generate_log``) and store it as raw log ``name``.

    With ``out`` the log is also written to that .csv, .tsv or .parquet file first.
    """
    from diffrec_cli.data.demo import generate_log

    check_name(name)
    home.claim(name, "log", force=force)
    if out is not None:
        try:
            log_writer(out)  # a wrong suffix fails before the work, not after it
        except DiffrecError as exc:
            raise exc.with_hint(Hint(options=("out",), value=str(out.with_suffix(".csv")))) from None
    frame = generate_log(users, items, interactions, seed=seed)
    log = log_from_frame(frame, source={"format": "generated", "users": users, "items": items,
                                        "interactions": interactions, "seed": seed})
    if out is not None:
        write_log_file(frame, out)
    return Stored("log", name, home.save_log(log, name, force=force))


def build_demo_dataset(home: DataHome, *, force: bool = False) -> Stored | None:
    """Store the bundled demo dataset; None (and nothing done) when it is there already and not forced."""
    from diffrec_cli.data.demo import build_demo

    if home.exists(DEMO_NAME) and not force:
        return None
    return Stored("dataset", DEMO_NAME, home.save(build_demo(), force=force))
