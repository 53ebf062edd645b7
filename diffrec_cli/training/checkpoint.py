"""Checkpoints: weights in safetensors, everything needed to rebuild the model in JSON beside them.

This module owns the checkpoint format. Loading never unpickles: safetensors holds raw tensors only, and
the JSON (one :class:`CheckpointMeta`) names the model, its settings, its components and the plugins that
provide them, the dataset it was trained on, and the metrics of the epoch it was saved at.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from diffrec_cli import __version__
from diffrec_cli.atomic import atomic_path, file_sha256, write_json
from diffrec_cli.config import TrainConfig, resolve_settings
from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.build import rebuild_model
from diffrec_cli.models.spec import ModelSpec
from diffrec_cli.registry import Registry
from diffrec_cli.runs import CHECKPOINT_DIR
from diffrec_cli.training.budget import check_rebuild_fits
from diffrec_cli.training.tensor_file import save_tensors

WEIGHTS = "model.safetensors"
META = "checkpoint.json"
FORMAT = "diffrec-checkpoint/1"


@dataclass(frozen=True)
class DatasetRef:
    """The dataset a model was trained on: serving refuses another one (or this one, changed)."""

    name: str
    fingerprint: str = ""
    n_users: int = 0
    n_items: int = 0
    item_ids: str = ""  # where the item id map lives, relative to the data home

    @classmethod
    def of(cls, data: Any) -> "DatasetRef":
        return cls(data.name, data.fingerprint(), data.n_users, data.n_items, f"datasets/{data.name}/items.parquet")

    @classmethod
    def from_json(cls, raw: Any) -> "DatasetRef":
        if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
            raise DiffrecError("dataset should be an object with a name")
        sizes = [raw.get("n_users"), raw.get("n_items")]
        if not all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in sizes):
            raise DiffrecError(f"dataset.n_users and dataset.n_items should be positive integers, found {sizes}")
        return cls(raw["name"], str(raw.get("fingerprint", "")), *sizes, str(raw.get("item_ids", "")))


@dataclass(frozen=True)
class CheckpointMeta:
    """The JSON half of a checkpoint."""

    model: ModelSpec
    dataset: DatasetRef
    train: dict[str, Any] = field(default_factory=dict)  # the trainer's settings (TrainConfig.to_dict())
    parameters: int = 0
    run_id: str | None = None
    epoch: int = 0
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # {"valid": {...}, "test": {...}}
    library_version: str = __version__
    weights_sha256: str = ""  # of model.safetensors; empty in checkpoints written before 0.2 (not checked)

    def at_epoch(self, epoch: int, valid: dict[str, float], test: dict[str, float]) -> "CheckpointMeta":
        return dataclasses.replace(self, epoch=epoch, metrics={"valid": valid, "test": test})

    @property
    def ks(self) -> list[int]:
        return [int(k) for k in self.train.get("ks", [10, 20, 50, 100])]

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "library_version": self.library_version, "model": self.model.to_json(),
                "reweighting": self.model.reweighting.to_json(), "train": self.train,
                "dataset": dataclasses.asdict(self.dataset), "parameters": self.parameters, "run_id": self.run_id,
                "epoch": self.epoch, "metrics": self.metrics, "weights_sha256": self.weights_sha256}

    @classmethod
    def from_json(cls, raw: Any) -> "CheckpointMeta":
        """Checked: a wrong type anywhere is a DiffrecError naming the field, never a crash later."""
        if not isinstance(raw, dict):
            raise DiffrecError("not a JSON object")
        if raw.get("format") != FORMAT:
            raise DiffrecError(f"unsupported checkpoint format {raw.get('format')!r}")
        train, metrics = raw.get("train", {}), raw.get("metrics", {})
        if not isinstance(train, dict) or not isinstance(metrics, dict):
            raise DiffrecError("train and metrics should be objects")
        # the trainer's settings, checked as a TrainConfig checks them (keys of older versions are left aside)
        resolve_settings({k: v for k, v in train.items() if k in TrainConfig.__dataclass_fields__}, {})
        return cls(ModelSpec.from_json(raw.get("model"), "model", raw.get("reweighting")),
                   DatasetRef.from_json(raw.get("dataset")), train, int(raw.get("parameters") or 0),
                   raw.get("run_id"), int(raw.get("epoch") or 0), metrics,
                   str(raw.get("library_version", "unknown")), str(raw.get("weights_sha256") or ""))


def save_checkpoint(folder: str | Path, model: torch.nn.Module, meta: CheckpointMeta) -> Path:
    """Write ``model.safetensors`` then ``checkpoint.json`` (the JSON last: its presence marks completion)."""
    folder = Path(folder)
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    with atomic_path(folder / WEIGHTS) as tmp:
        digest = save_tensors(tmp, state, {"format": "pt", "diffrec": FORMAT})
    write_json(folder / META, dataclasses.replace(meta, weights_sha256=digest).to_json())
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
    if path.is_dir() and (path / CHECKPOINT_DIR / META).is_file():
        return path / CHECKPOINT_DIR
    raise DiffrecError(f"no checkpoint at {path} (expected a run directory or a {WEIGHTS} with {META} beside it)")


@dataclass
class LoadedCheckpoint:
    model: torch.nn.Module
    meta: CheckpointMeta
    folder: Path


def read_meta(folder: Path) -> CheckpointMeta:
    try:
        return CheckpointMeta.from_json(json.loads((folder / META).read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, DiffrecError, TypeError, ValueError) as exc:
        raise DiffrecError(f"{folder / META} is not a diffrec checkpoint description ({exc})") from None


def rebuild_recorded(registry: Registry, spec: ModelSpec, n_users: int, n_items: int, source: Path) -> torch.nn.Module:
    """A recorded model with fresh weights, refused up front when it cannot fit in memory; a recorded config
    no constructor accepts (``source`` was edited, say) is one error line naming ``source``."""
    try:
        check_rebuild_fits(registry, spec, n_users, n_items)
        return rebuild_model(registry, spec, n_users=n_users, n_items=n_items)
    except DiffrecError:
        raise
    except (RuntimeError, ValueError, TypeError, ZeroDivisionError, OverflowError, MemoryError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise DiffrecError(f"{source} records a model {spec.name!r} that cannot be built ({first})") from None


def load_checkpoint(path: str | Path, registry: Registry, *, device: str | torch.device = "cpu") -> LoadedCheckpoint:
    folder = resolve_checkpoint(path)
    meta = read_meta(folder)
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise DiffrecError(f"missing weights file {weights}")
    try:
        state = load_file(str(weights), device="cpu")
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise DiffrecError(f"{weights} is not a valid safetensors file ({exc})") from None
    model = rebuild_recorded(registry, meta.model, meta.dataset.n_users, meta.dataset.n_items, folder / META)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise DiffrecError(f"{weights} does not match model {meta.model.name!r}: {first}") from None
    # a well-formed file of the right shapes can still hold flipped bits or a diverged model's weights
    if meta.weights_sha256 and file_sha256(weights) != meta.weights_sha256:
        raise DiffrecError(f"{weights} is damaged: its checksum differs from the one recorded in {META}")
    bad = [name for name, tensor in state.items() if tensor.is_floating_point() and not torch.isfinite(tensor).all()]
    if bad:
        raise DiffrecError(f"{weights} holds non-finite values (NaN or infinity) in {bad[0]}")
    model.to(device)
    model.eval()
    return LoadedCheckpoint(model, meta, folder)
