"""Write files so that readers never see half of them: write a sibling temp file, then rename.

The temporary file or folder is created with the ordinary modes (0666 / 0777, less the user's umask), as
``open()`` and ``mkdir`` would: ``tempfile.mkstemp`` would make every output private (0600) whatever the
user asked for, and the rename keeps the mode.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator


def _create_sibling(target: Path, make: Any) -> Path:
    """A fresh hidden sibling of ``target`` made by ``make(path)``, which raises if the path exists."""
    target.parent.mkdir(parents=True, exist_ok=True)
    while True:
        tmp = target.parent / f".{target.name}.{secrets.token_hex(4)}.tmp"
        try:
            make(tmp)
        except FileExistsError:  # another writer drew the same name: draw again
            continue
        return tmp


def _new_file(path: Path) -> None:
    # O_EXCL: never reuse someone else's file; 0o666: the kernel applies the umask, as for open()
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it replaces ``target`` in one rename."""
    target = Path(target)
    tmp_path = _create_sibling(target, _new_file)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=False, default=_json_default) + "\n")


def jsonable(value: Any) -> Any:
    """``value`` as plain JSON data: what :func:`write_json` would store and a JSON reader give back.

    Tuples, sets and arrays become lists, numpy scalars Python numbers, paths strings, dict keys strings;
    anything else without a JSON form becomes its ``str()`` (where ``write_json`` would refuse it).
    """
    return json.loads(json.dumps(value, default=_json_or_text))


def _json_or_text(value: Any) -> Any:
    try:
        return _json_default(value)
    except (TypeError, ValueError):  # ValueError: .item() of an array with several elements
        return value.tolist() if hasattr(value, "tolist") else str(value)


def _json_default(value: Any) -> Any:
    # numpy scalars and paths show up in configs and metrics; store them as plain JSON.
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


@contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Build a directory under a temporary name and move it into place only when complete."""
    target = Path(target)
    tmp = _create_sibling(target, lambda path: path.mkdir(0o777))
    try:
        yield tmp
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
