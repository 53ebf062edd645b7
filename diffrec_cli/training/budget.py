"""The memory a training will take, estimated before anything big is allocated, and refused when it cannot fit.

``--set steps=100000000`` or ``dims=[10000000]`` would otherwise allocate until the kernel kills the
process, with no message. The estimate adds up:

- the diffusion tables: a model with a noise schedule keeps about 16 float64 coefficients and ``history``
  recent losses per step, and builds them through numpy temporaries of the same length;
- the model: its parameters and buffers, counted on a copy built on torch's ``meta`` device (which
  allocates nothing), times the copies training keeps (weights, gradients, two AdamW moments, the best
  weights and a resumable snapshot);
- one training batch: the dense (batch × items) rows and their noisy and predicted versions, plus every
  layer's activations and their gradients (a layer's width is its bias length);
- one evaluation batch: the (batch × items) scores and masks.

A closed-form model (EASE, ItemKNN, ...) has no optimiser and no batches: its weights once, plus what its
fit allocates beside them (``Recommender.fit_memory``: EASE's n_items² float32 solve happens in its own
weight), plus evaluation. A catalogue too large for that is refused up front with the estimate.

It is an estimate (a few temporaries and the interpreter are left out), meant to catch sizes that are off
by orders of magnitude, not to budget the last megabyte.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from diffrec_cli.config import TrainConfig
from diffrec_cli.convert import coerce
from diffrec_cli.errors import DiffrecError, Hint
from diffrec_cli.memory import check_fits
from diffrec_cli.models.build import build_model, rebuild_model
from diffrec_cli.models.spec import ModelSpec
from diffrec_cli.registry import Registry
from diffrec_cli.training.evaluate import eval_batch_size

TABLE_COLUMNS = 16  # float64 coefficients kept per diffusion step
TRAINING_COPIES = 6  # weights, gradients, 2 AdamW moments, the best weights, a resumable snapshot
ROW_COPIES = 6  # dense (batch × items) tensors of one training step: x, noise, x_t, output, their gradients


@dataclass(frozen=True)
class Estimate:
    """Bytes each part of a training needs."""

    tables: int = 0
    model: int = 0
    batch: int = 0
    evaluation: int = 0
    closed_form: bool = False  # one fit: no training copies, no batches

    @property
    def total(self) -> int:
        return self.tables + self.model + self.batch + self.evaluation

    def largest(self) -> str:
        parts = {"tables": self.tables, "model": self.model, "batch": self.batch, "evaluation": self.evaluation}
        return max(parts, key=parts.__getitem__)


# The settings that size each part: named in the error, so the user knows what to lower.
REMEDIES = {"tables": ("steps",), "model": ("dims", "emb_size"), "batch": ("batch_size",),
            "evaluation": ("eval_batch_size",)}


def diffusion_tables(registry: Registry, model: str, settings: dict[str, Any]) -> int:
    """Bytes of a diffusion model's per-step tables for the ``steps`` given (0 when none is given)."""
    cls = registry.get("model", model).cls
    if "steps" not in settings or not any(kind == "noise_schedule" for kind, _ in cls.components.values()):
        return 0
    try:
        steps, history = coerce(settings["steps"], 1), coerce(settings.get("history", 10), 1)
    except DiffrecError as exc:
        raise DiffrecError(f"setting steps or history: {exc}") from None
    return max(0, steps) * 8 * (2 * TABLE_COLUMNS + max(0, history) + 1)


# In-place random fills (torch.nn.init's and the tensors' own): on a meta tensor there is nothing to fill
_RANDOM_FILLS = frozenset({"normal_", "uniform_", "trunc_normal_", "kaiming_normal_", "kaiming_uniform_",
                           "xavier_normal_", "xavier_uniform_", "orthogonal_", "sparse_", "bernoulli_",
                           "random_", "exponential_", "log_normal_", "cauchy_", "geometric_"})


class _NoFillsOnMeta(TorchFunctionMode):
    """Skips random fills of meta tensors: torch runs ``normal_`` on one through its Python reference,
    whose first call imports torch._dynamo (+70 MB of memory and half a second for the whole run)."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if hasattr(func, "__name__") and func.__name__ in _RANDOM_FILLS:
            target = args[0] if args else kwargs.get("tensor")
            if isinstance(target, torch.Tensor) and target.is_meta:
                return target
        return func(*args, **kwargs)


def model_sizes(registry: Registry, config: TrainConfig, settings: dict[str, Any],
                data: Any) -> tuple[int, int, int]:
    """(bytes of parameters and buffers, summed layer widths, bytes a closed-form fit adds) of the model,
    built on the meta device.

    Zeros when the model cannot be built there (it computes with its tensors while being built): the real
    build then runs unchecked. A settings error is raised as it would be by the real build.
    """
    try:
        with torch.device("meta"), _NoFillsOnMeta(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the real build shows them
            model, _ = build_model(registry, config.model, settings, n_users=data.n_users, n_items=data.n_items,
                                   data=data)
    except DiffrecError:
        raise
    except Exception:  # noqa: BLE001 - meta tensors refuse some operations; the estimate is best effort
        return 0, 0, 0
    tensors = [*model.parameters(), *model.buffers()]
    size = sum(t.numel() * t.element_size() for t in tensors if t.is_meta)
    widths = sum(p.numel() for p in model.parameters() if p.dim() == 1)
    return size, widths, model.fit_memory(data.train.nnz) if model.closed_form else 0


def estimate(registry: Registry, config: TrainConfig, settings: dict[str, Any], data: Any) -> Estimate:
    tables = diffusion_tables(registry, config.model, settings)
    if tables:
        check_fits(tables, f"{config.model} with these diffusion steps", _hint("tables"))
    size, widths, fit = model_sizes(registry, config, settings, data)
    rows = min(config.batch_size, data.n_users)
    eval_rows = min(config.eval_batch_size or eval_batch_size(data.n_items), data.n_users)
    if registry.get("model", config.model).cls.closed_form:  # one fit, no optimiser, no copies kept: the weights
        return Estimate(tables=tables, model=size + fit, evaluation=eval_rows * 4 * data.n_items * ROW_COPIES,
                        closed_form=True)
    return Estimate(tables=tables, model=size * TRAINING_COPIES,
                    batch=rows * 4 * (data.n_items * ROW_COPIES + widths * 3),
                    evaluation=eval_rows * 4 * (data.n_items * ROW_COPIES + widths))


def check_training_fits(registry: Registry, config: TrainConfig, settings: dict[str, Any], data: Any,
                        device: torch.device) -> Estimate:
    """The estimate, or a DiffrecError with it when the training cannot fit in free memory (on a GPU: the
    model's working copies and the batches in GPU memory, the tables and the kept copies in the host's)."""
    needed = estimate(registry, config, settings, data)
    what = (f"training {config.model} on {config.dataset} (model, a batch of {min(config.batch_size, data.n_users):,} "
            f"users, evaluation)")
    if needed.closed_form:  # its size follows the catalogue, which no setting shrinks: no hint
        check_fits(needed.total, f"fitting {config.model} on {config.dataset} ({data.n_items:,} items: weights, "
                                 f"fit, evaluation)")
        return needed
    if device.type != "cuda":
        check_fits(needed.total, what, _hint(needed.largest()))
        return needed
    on_gpu = Estimate(model=needed.model * 4 // TRAINING_COPIES, batch=needed.batch, evaluation=needed.evaluation)
    check_fits(on_gpu.total, what, _hint(on_gpu.largest()), free=torch.cuda.mem_get_info(device)[0],
               memory="GPU memory")
    check_fits(needed.tables + needed.model - on_gpu.model, what, _hint("tables" if needed.tables else "model"))
    return needed


def check_rebuild_fits(registry: Registry, spec: ModelSpec, n_users: int, n_items: int) -> None:
    """Refuse, before anything is allocated, a recorded model (an edited checkpoint, say) too big for memory."""
    settings = {**{k: v for c in spec.components.values() for k, v in c.config.items()}, **spec.config}
    tables = diffusion_tables(registry, spec.name, settings)
    # no hint: a recorded model's sizes are not settings to change, the checkpoint itself is wrong
    if tables:
        check_fits(tables, f"the recorded {spec.name} with its diffusion steps")
    try:
        with torch.device("meta"), _NoFillsOnMeta(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = rebuild_model(registry, spec, n_users=n_users, n_items=n_items)
    except DiffrecError:
        raise
    except Exception:  # noqa: BLE001 - meta tensors refuse some operations; the estimate is best effort
        return
    size = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()] if t.is_meta)
    check_fits(2 * size, f"loading the recorded {spec.name} ({n_users:,} users, {n_items:,} items)")


def _hint(part: str) -> Hint:
    return Hint(settings=REMEDIES[part], purpose="need less memory")
