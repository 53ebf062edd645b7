"""Keeping the data home whole: one writer at a time, swaps that never lose a dataset, and tidying up.

- **The writers' lock** (``HOME/.lock``): every process that changes ``datasets/`` or ``logs/`` holds it while
  it does (``flock``: the kernel releases it when a process dies, even by ``kill -9``). A second writer
  waits for it (saying so after a second), up to ``$DIFFREC_LOCK_TIMEOUT`` seconds (default 600), then
  gives up with an error naming the holder. Work that takes long (reading a file, running a recipe) happens before the lock is taken, so
  the lock is held only while a finished folder is written and renamed in.
- **Swaps** (``atomic.atomic_directory``): a folder is built under a hidden temporary name
  (``.NAME.xxxxxxxx.tmp``), renamed in, and the folder it replaces removed last.
- **Tidying up** (:func:`sweep`): whoever takes the lock first removes what killed writers left behind
  (hidden ``.tmp`` folders, ``.old`` folders whose replacement is in place) and puts an ``.old`` folder back
  when its name was left empty.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

from diffrec_cli.atomic import ASIDE_SUFFIX, TEMP_SUFFIX
from diffrec_cli.errors import DiffrecError

try:
    import fcntl
except ImportError:  # pragma: no cover - not a POSIX system: writers are not serialised
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"
DEFAULT_TIMEOUT = 600.0
TELL_AFTER = 1.0  # seconds of waiting before on_wait is told (a short wait goes unmentioned)
_POLL = 0.05

# Locks this process holds, by lock path: (open file, depth). The lock is re-entrant within a process,
# so that building the demo dataset on first use can save it while holding the lock.
_held: dict[str, list] = {}
_held_guard = threading.RLock()


def lock_timeout() -> float:
    raw = os.environ.get("DIFFREC_LOCK_TIMEOUT", "")
    try:
        return max(0.0, float(raw)) if raw.strip() else DEFAULT_TIMEOUT
    except ValueError:
        raise DiffrecError(f"DIFFREC_LOCK_TIMEOUT must be a number of seconds, got {raw!r}") from None


@contextmanager
def writers_lock(root: Path, on_wait: Callable[[str], None] | None = None,
                 timeout: float | None = None) -> Iterator[None]:
    """Hold the data home's writers' lock (see the module docstring); re-entrant within this process.
    ``timeout``: seconds to wait for another holder (default :func:`lock_timeout`)."""
    root.mkdir(parents=True, exist_ok=True)
    path = str((root / LOCK_FILE).resolve())
    with _held_guard:
        if path in _held:
            _held[path][1] += 1
            try:
                yield
            finally:
                _held[path][1] -= 1
            return
        handle = open(path, "a+")
        try:
            _acquire(handle, root, on_wait, lock_timeout() if timeout is None else timeout)
            handle.seek(0)
            handle.truncate()
            handle.write(f"{os.getpid()} {time.strftime('%H:%M:%S')}\n")
            handle.flush()
            _held[path] = [handle, 1]
            try:
                yield
            finally:
                del _held[path]
        finally:
            handle.close()  # closing the file releases the lock


def _acquire(handle, root: Path, on_wait: Callable[[str], None] | None, timeout: float) -> None:
    if fcntl is None:
        return
    started, told = time.monotonic(), False
    deadline = started + timeout
    while True:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            holder = _holder(root)
            if time.monotonic() >= deadline:
                raise DiffrecError(f"the data home {root} is being written by another process ({holder}); "
                                   f"nothing was saved: try again when it has finished") from None
            if not told and on_wait is not None and time.monotonic() >= started + TELL_AFTER:
                on_wait(holder)
                told = True
            time.sleep(_POLL)


def _holder(root: Path) -> str:
    try:
        pid, _, since = (root / LOCK_FILE).read_text().strip().partition(" ")
    except OSError:
        return "unknown process"
    return f"pid {pid}, since {since}" if pid.isdigit() else "unknown process"


def sweep(folder: Path) -> list[str]:
    """Tidy ``folder`` (``datasets/`` or ``logs/``) after killed writers; call it holding the lock.

    Returns what was done, one entry per leftover (for tests and messages).
    """
    done: list[str] = []
    if not folder.is_dir():
        return done
    for entry in sorted(folder.iterdir()):
        if not entry.name.startswith("."):
            continue
        if entry.name.endswith(TEMP_SUFFIX):
            _remove(entry)
            done.append(f"removed {entry.name}")
        elif entry.name.endswith(ASIDE_SUFFIX):
            owner = folder / entry.name[1:].rsplit(".", 2)[0]
            if (owner / "meta.json").is_file() or os.path.islink(owner):
                _remove(entry)
                done.append(f"removed {entry.name}")
            else:
                if os.path.lexists(owner):
                    _remove(owner)
                os.replace(entry, owner)
                done.append(f"restored {owner.name}")
    return done


def _remove(path: Path) -> None:
    if os.path.islink(path) or not path.is_dir():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)
