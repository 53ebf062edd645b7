"""Training configuration: a frozen dataclass for the trainer plus free-form model settings.

Settings arrive from a TOML file and ``--set key=value`` pairs. Keys naming a :class:`TrainConfig` field
configure the trainer; every other key is a model (or model component) setting, checked against the
model's constructor when the model is built.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from diffrec_cli.convert import coerce
from diffrec_cli.errors import DiffrecError
from diffrec_cli.metrics import METRICS

try:
    import tomllib
except ImportError:  # Python 3.10: tomllib joined the standard library in 3.11; tomli is the same parser
    import tomli as tomllib


@dataclass(frozen=True)
class TrainConfig:
    model: str = "diffrec"
    dataset: str = "demo"
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 400
    epochs: int = 200
    eval_every: int = 5
    checkpoint_every: int = 0  # epochs between resumable states; 0: at every evaluation
    patience: int = 20  # epochs without a better validation metric before stopping
    metric: str = "recall@20"
    ks: tuple[int, ...] = (10, 20, 50, 100)
    seed: int = 1
    device: str = "auto"
    precision: str = "auto"  # auto: bf16 where a start-up probe finds it >= 1.3x faster (training/precision.py)
    callbacks: tuple[str, ...] = ()  # registered callback names that receive every training event
    eval_batch_size: int = 0  # 0: chosen from the item count

    def __post_init__(self) -> None:
        checks = [
            (self.lr > 0, f"lr must be positive, got {self.lr}"),
            (self.weight_decay >= 0, f"weight_decay must be >= 0, got {self.weight_decay}"),
            (self.batch_size > 0, f"batch_size must be positive, got {self.batch_size}"),
            (self.epochs > 0, f"epochs must be positive, got {self.epochs}"),
            (self.eval_every > 0, f"eval_every must be positive, got {self.eval_every}"),
            (self.checkpoint_every >= 0, f"checkpoint_every must be >= 0, got {self.checkpoint_every}"),
            (self.patience > 0, f"patience must be positive, got {self.patience}"),
            (self.precision in ("auto", "fp32", "bf16"),
             f"precision must be auto, fp32 or bf16, got {self.precision!r}"),
            (len(self.ks) > 0 and min(self.ks) > 0, f"ks must be positive, got {list(self.ks)}"),
            (self.eval_batch_size >= 0, "eval_batch_size must be >= 0"),
            (0 <= self.seed < 2**32, f"seed must be a whole number from 0 to {2**32 - 1}, got {self.seed}"),
        ]
        for ok, message in checks:
            if not ok:
                raise DiffrecError(message)
        name, _, k = self.metric.partition("@")
        if name not in METRICS or not k.isdigit() or int(k) not in self.ks:
            raise DiffrecError(f"metric must look like recall@20 with K among {list(self.ks)}, got {self.metric!r}")

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v)
                for f in dataclasses.fields(self)}


TRAIN_FIELDS = {f.name: f for f in dataclasses.fields(TrainConfig)}


def parse_sets(pairs: list[str] | None) -> dict[str, str]:
    """``key=value`` texts as a dict (dashes in keys read as underscores; values stay text)."""
    out: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise DiffrecError(f"a setting must look like key=value, got {pair!r}")
        out[key.strip().replace("-", "_")] = value.strip()
    return out


def load_toml(path: str | Path, what: str = "config file") -> dict[str, Any]:
    """The tables of a TOML file as read; ``what`` names the file in errors ("search space file")."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DiffrecError(f"{what} {path} not found") from None
    except IsADirectoryError:
        raise DiffrecError(f"{what} {path} is a folder, not a TOML file") from None
    except OSError as exc:
        raise DiffrecError(f"cannot read {what} {path}: {exc.strerror or exc}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DiffrecError(f"{what} {path} is not valid TOML: {exc}") from None


TRACKING = "tracking."  # the prefix of a callback setting: ``--set tracking.mlflow_uri=...``


def flat_settings(raw: dict[str, Any]) -> dict[str, Any]:
    """Settings of a TOML file: top-level keys and the ``[train]`` and ``[model]`` tables, in one dict; the
    ``[tracking]`` table's ``callbacks`` turns them on and its other keys configure them (``tracking.KEY``).

    ``train`` must be a table; ``model`` a table or a model name (a top-level ``model = "multvae"``).
    """
    train, model = raw.get("train", {}), raw.get("model", {})
    if not isinstance(train, dict):
        raise DiffrecError(f"train should be a [train] table of settings, got {_toml_value(train)}")
    if not isinstance(model, (dict, str)):
        raise DiffrecError(f"model should be a model name or a [model] table of settings, got {_toml_value(model)}")
    flat: dict[str, Any] = {k: v for k, v in raw.items() if not isinstance(v, dict)}
    for table in (train, model):
        if isinstance(table, dict):
            flat.update(table)
    tracking = raw.get("tracking", {})
    if not isinstance(tracking, dict):
        raise DiffrecError(f"tracking should be a [tracking] table of settings, got {_toml_value(tracking)}")
    for key, value in tracking.items():
        flat[key if key == "callbacks" else TRACKING + key] = value
    return flat


def _toml_value(value: Any) -> str:
    return json.dumps(value, default=str)


def read_toml(path: str | Path) -> dict[str, Any]:
    """The settings of a TOML config file (see :func:`flat_settings`); a table other than ``[train]``,
    ``[model]`` and ``[tracking]`` is an error (its settings would otherwise be ignored)."""
    raw = load_toml(path)
    other = [k for k, v in raw.items() if isinstance(v, dict) and k not in ("train", "model", "tracking")]
    if other:
        raise DiffrecError(f"config file {path}: unknown table [{other[0]}] (settings go at the top level or "
                           f"in [train], [model] and [tracking])")
    try:
        return flat_settings(raw)
    except DiffrecError as exc:
        raise DiffrecError(f"config file {path}: {exc}") from None


@dataclass
class Settings:
    train: TrainConfig
    model: dict[str, Any] = field(default_factory=dict)
    tracking: dict[str, Any] = field(default_factory=dict)  # the callbacks' settings, without the prefix


def resolve_settings(file_settings: dict[str, Any] | None = None, sets: dict[str, Any] | None = None,
                     **overrides: Any) -> Settings:
    """Merge file settings, ``--set`` pairs and explicit overrides (later wins) into trainer + model parts."""
    merged: dict[str, Any] = {}
    for source in (file_settings or {}, sets or {}, {k: v for k, v in overrides.items() if v is not None}):
        merged.update(source)
    train_kwargs: dict[str, Any] = {}
    model: dict[str, Any] = {}
    tracking: dict[str, Any] = {}
    defaults = TrainConfig()
    for key, value in merged.items():
        if key.startswith(TRACKING):
            tracking[key[len(TRACKING):]] = value
        elif key in TRAIN_FIELDS:
            try:
                train_kwargs[key] = coerce(value, getattr(defaults, key))
            except DiffrecError as exc:
                raise DiffrecError(f"setting {key}: {exc}") from None
            if key == "ks":
                train_kwargs[key] = tuple(int(k) for k in train_kwargs[key])
            if key == "callbacks":
                value = train_kwargs[key]
                names = value.split(",") if isinstance(value, str) else value
                train_kwargs[key] = tuple(str(n).strip() for n in names if str(n).strip())
        else:
            model[key] = value
    return Settings(TrainConfig(**train_kwargs), model, tracking)
