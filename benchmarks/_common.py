"""Helpers shared by the benchmark scripts: locating the shared data, peak memory, table printing."""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def shared_folder(name: str, override: str | None = None) -> Path:
    """The authors' split folder, or a clear message and exit code 2 when it is absent."""
    folder = Path(override) if override else SHARED_DATA / name
    if not (folder / "train_list.npy").is_file():
        print(f"MovieLens data not found at {folder}: this benchmark needs the authors' {name} split "
              f"(../shared/data/{name} beside the repository, or --data PATH). MovieLens may not be "
              f"redistributed, so it is not part of this repository.", file=sys.stderr)
        raise SystemExit(2)
    return folder


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def print_json_line(obj: dict) -> None:
    """The last line of every benchmark: one JSON object for scripts."""
    print(json.dumps(obj, sort_keys=False))
