"""Where the data home is (``--home``, else ``$DIFFREC_HOME``, else the platform's user-data folder) and the
names it holds.

Kept apart from ``data/store.py`` (which needs numpy, scipy and torch) because the CLI names the resolved home
in its ``--help``, lists runs and completes dataset names and run ids from it, all without loading them.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "DIFFREC_HOME"


def default_home() -> Path:
    """The platform's user-data folder for diffrec: ``$XDG_DATA_HOME/diffrec`` (``~/.local/share/diffrec``)
    on Linux, ``~/Library/Application Support/diffrec`` on macOS, ``%LOCALAPPDATA%\\diffrec`` on Windows."""
    import platformdirs

    return Path(platformdirs.user_data_dir("diffrec", appauthor=False))


def resolve_home(home: str | os.PathLike | None = None) -> Path:
    """The data home: ``home`` when given, else ``$DIFFREC_HOME``, else :func:`default_home`."""
    if home:
        return Path(home).expanduser()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser()
    return default_home()


class HomeFolders:
    """The data home's layout: ``datasets/NAME``, ``logs/NAME`` (each complete once it holds ``meta.json``)
    and ``runs/RUN_ID``. ``data/store.py``'s ``DataHome`` adds reading and writing them."""

    def __init__(self, home: str | os.PathLike | None = None) -> None:
        self.root = resolve_home(home)

    @property
    def datasets_dir(self) -> Path:
        return self.root / "datasets"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def logs_dir(self) -> Path:
        return self.root / "logs"

    def names(self) -> list[str]:
        """The prepared datasets, sorted."""
        return _stored_names(self.datasets_dir)

    def log_names(self) -> list[str]:
        """The imported raw logs, sorted."""
        return _stored_names(self.logs_dir)


def _stored_names(folder: Path) -> list[str]:
    """The entries of ``folder`` that hold a ``meta.json`` (complete datasets or logs), sorted."""
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if (p / "meta.json").is_file())
