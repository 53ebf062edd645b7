"""diffrec: diffusion recommender models (Wang et al., SIGIR 2023) as a library and a CLI.

``from diffrec_cli import train, load_run, recommend`` is the Python façade (``diffrec_cli/api.py``,
``docs/python.md``). It is imported on first use, so ``import diffrec_cli`` loads neither torch nor numpy.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["__version__", "load_run", "recommend", "train"]

_FACADE = ("load_run", "recommend", "train")


def __getattr__(name: str) -> Any:
    if name in _FACADE:
        from diffrec_cli import api

        return getattr(api, name)
    raise AttributeError(f"module 'diffrec_cli' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_FACADE})
