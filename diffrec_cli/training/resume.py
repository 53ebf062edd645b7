"""Resumable training state: everything ``fit`` needs to continue at an epoch boundary exactly as if it had
never stopped — the weights, the optimiser's moments and step counts, the best result so far (with its
weights), the history, the model's own counters and every random number generator.

This module owns the resume format: tensors in one safetensors file, the rest in JSON beside it, both named
by the epoch; the JSON is written last and holds the SHA-256 of the tensor file, so a pair is complete and
intact or it is ignored. Loading never unpickles.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file

from diffrec_cli.atomic import atomic_path, file_sha256, write_json
from diffrec_cli.errors import DiffrecError
from diffrec_cli.training.tensor_file import save_tensors

FORMAT = "diffrec-resume/1"
_NAME = re.compile(r"^epoch-(\d{6})\.json$")


def rng_state(shuffler: torch.Generator) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Every generator a training step may draw from: torch's (CPU, CUDA), NumPy's, Python's, the shuffler."""
    tensors = {"rng.torch": torch.get_rng_state(), "rng.shuffler": shuffler.get_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = state
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    version, words, python_gauss = random.getstate()
    return tensors, {"numpy": [kind, keys.tolist(), pos, has_gauss, gauss],
                     "python": [version, list(words), python_gauss]}


def set_rng_state(shuffler: torch.Generator, tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> None:
    torch.set_rng_state(tensors["rng.torch"])
    shuffler.set_state(tensors["rng.shuffler"])
    cuda = sorted(k for k in tensors if k.startswith("rng.cuda."))
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([tensors[k] for k in cuda])
    kind, keys, pos, has_gauss, gauss = saved["numpy"]
    np.random.set_state((kind, np.asarray(keys, dtype=np.uint32), pos, has_gauss, gauss))
    version, words, python_gauss = saved["python"]
    random.setstate((version, tuple(words), python_gauss))


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors, scalars = {}, {}
    for index, slots in state["state"].items():
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"optim.{index}.{name}"] = value
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], saved: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in saved["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    return {"state": state, "param_groups": saved["param_groups"]}


@dataclass
class TrainingState:
    """The state at the end of ``epoch``. Its tensors are the live ones (the model's, the optimiser's): the
    loop waits while its listeners write it, so copying them first would only double the peak memory (by
    the model and both Adam moments: +150 MB on ML-1M, gigabytes at paper size). Copy what you keep."""

    epoch: int
    model: dict[str, torch.Tensor]
    best_model: dict[str, torch.Tensor] | None
    optimizer: dict[str, Any] | None
    rng_tensors: dict[str, torch.Tensor]
    info: dict[str, Any] = field(default_factory=dict)  # JSON: best record, history, counters, RNGs, extras

    def tensors(self) -> dict[str, torch.Tensor]:
        out = {f"model.{k}": v for k, v in self.model.items()}
        out.update({f"best.{k}": v for k, v in (self.best_model or {}).items()})
        out.update(self.rng_tensors)
        if self.optimizer is not None:
            out.update(_flatten_optimizer(self.optimizer)[0])
        # the best weights can be the model's own tensors once training is over: the writer takes both
        return {k: v.detach().contiguous().cpu() for k, v in out.items()}

    def to_json(self) -> dict[str, Any]:
        optimizer = _flatten_optimizer(self.optimizer)[1] if self.optimizer is not None else None
        return {"format": FORMAT, "epoch": self.epoch, "optimizer": optimizer,
                "has_best_model": self.best_model is not None, **self.info}


def save_state(folder: str | Path, state: TrainingState) -> Path:
    """Write ``epoch-NNNNNN.safetensors`` then its JSON, then drop older pairs: the folder always holds at
    least one complete state, whatever instant the process dies at."""
    folder = Path(folder)
    stem = f"epoch-{state.epoch:06d}"
    with atomic_path(folder / f"{stem}.safetensors") as tmp:
        digest = save_tensors(tmp, state.tensors(), {"diffrec": FORMAT})
    write_json(folder / f"{stem}.json", {**state.to_json(), "sha256": digest})
    for old in folder.glob("epoch-*"):
        if not old.name.startswith(stem) and not old.name.startswith("."):
            old.unlink(missing_ok=True)
    return folder / f"{stem}.json"


def latest_state(folder: str | Path) -> TrainingState | None:
    """The newest complete, intact state in ``folder`` (None when there is none)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    for path in sorted((p for p in folder.iterdir() if _NAME.match(p.name)), reverse=True):
        try:
            return _read_state(path)
        except DiffrecError:
            continue  # a damaged newer pair falls back to the older one, if any is left
    return None


def _read_state(path: Path) -> TrainingState:
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        weights = path.with_suffix(".safetensors")
        if not isinstance(info, dict) or info.get("format") != FORMAT or info.get("sha256") != file_sha256(weights):
            raise DiffrecError(f"{path} does not match its tensor file")
        tensors = load_file(str(weights), device="cpu")
    except (OSError, ValueError, SafetensorError) as exc:
        raise DiffrecError(f"{path}: {exc}") from None
    model = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    best = {k[len("best."):]: v for k, v in tensors.items() if k.startswith("best.")}
    optimizer = _unflatten_optimizer(tensors, info["optimizer"]) if info.get("optimizer") else None
    rng = {k: v for k, v in tensors.items() if k.startswith("rng.")}
    extra = {k: v for k, v in info.items() if k not in ("format", "epoch", "optimizer", "has_best_model", "sha256")}
    return TrainingState(int(info["epoch"]), model, best if info.get("has_best_model") else None, optimizer, rng,
                         extra)
