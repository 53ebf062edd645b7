"""Where the data home is: ``--home``, else ``$DIFFREC_HOME``, else the platform's user-data folder.

Kept apart from ``data/store.py`` (which needs numpy and scipy) because the CLI names the resolved home in
its ``--help`` and completes dataset names from it, both without loading any numerical library.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "DIFFREC_HOME"
RUNS_FOLDER = "runs"  # HOME/runs/RUN_ID: what ``runs.py`` reads and writes


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


def runs_dir(home: str | os.PathLike | None = None) -> Path:
    """Where the data home keeps its runs (``DataHome.runs_dir``, without loading the data code)."""
    return resolve_home(home) / RUNS_FOLDER
