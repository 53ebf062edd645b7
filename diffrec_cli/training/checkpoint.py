"""Checkpoints: weights in safetensors, everything needed to rebuild the model in JSON beside them.

Loading never unpickles: safetensors holds raw tensors only, and the JSON names the model, its
configuration, its components and the plugins that provide them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from diffrec_cli import __version__
from diffrec_cli.atomic import atomic_path, write_json
from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.build import build_model
from diffrec_cli.registry import Registry

WEIGHTS = "model.safetensors"
META = "checkpoint.json"
FORMAT = "diffrec-checkpoint/1"


def save_checkpoint(folder: str | Path, model: torch.nn.Module, meta: dict[str, Any]) -> Path:
    """Write ``model.safetensors`` then ``checkpoint.json`` (the JSON last: its presence marks completion)."""
    folder = Path(folder)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        save_file(state, str(tmp), metadata={"format": "pt", "diffrec": FORMAT})
    write_json(folder / META, {"format": FORMAT, "library_version": __version__, **meta})
    return folder / WEIGHTS


def resolve_checkpoint(path: str | Path) -> Path:
    """A run directory, a checkpoint folder, or either of its two files → the checkpoint folder."""
    path = Path(path)
    if path.is_file() and path.name in (WEIGHTS, META):
        return path.parent
    if path.is_file() and path.suffix == ".safetensors":
        return path.parent
    if path.is_dir() and (path / META).is_file():
        return path
    if path.is_dir() and (path / "checkpoint" / META).is_file():
        return path / "checkpoint"
    raise DiffrecError(f"no checkpoint at {path} (expected a run directory or a {WEIGHTS} with {META} beside it)")


@dataclass
class LoadedCheckpoint:
    model: torch.nn.Module
    meta: dict[str, Any]
    folder: Path


def load_checkpoint(path: str | Path, registry: Registry, *, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    folder = resolve_checkpoint(path)
    try:
        meta = json.loads((folder / META).read_text())
        spec = meta["model"]
        dataset = meta["dataset"]
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise DiffrecError(f"{folder / META} is not a diffrec checkpoint description ({exc})") from None
    if meta.get("format") != FORMAT:
        raise DiffrecError(f"{folder / META}: unsupported checkpoint format {meta.get('format')!r}")
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise DiffrecError(f"missing weights file {weights}")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DiffrecError(f"{weights} is not a valid safetensors file ({exc})") from None
    model, _ = build_model(registry, spec["name"], {}, n_users=dataset["n_users"], n_items=dataset["n_items"],
                           spec=spec)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise DiffrecError(f"{weights} does not match model {spec['name']!r}: {first}") from None
    model.to(device)
    model.eval()
    return LoadedCheckpoint(model, meta, folder)
