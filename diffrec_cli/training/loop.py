"""The training loop, in nanoGPT order: step, evaluate, checkpoint, report.

``fit`` trains a built model on a dataset and reports through a :class:`Reporter`; ``train`` is the
whole job the CLI runs: load data, build the model through the registry, create a run directory, fit.
"""

from __future__ import annotations

import contextlib
import copy
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from diffrec_cli.config import Settings, TrainConfig
from diffrec_cli.data.sparse import InteractionData
from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.build import build_component, build_model
from diffrec_cli.registry import Registry
from diffrec_cli.runs import Run
from diffrec_cli.training.checkpoint import save_checkpoint
from diffrec_cli.training.evaluate import evaluate
from diffrec_cli.training.events import (EpochFinished, Evaluated, Reporter, StepFinished, TrainingFinished,
                                         TrainingStarted, silent)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def pick_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DiffrecError(f"unknown device {name!r} (auto, cpu, cuda, cuda:N)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise DiffrecError("device cuda requested but CUDA is not available")
    return device


def bf16_supported(device: torch.device) -> bool:
    """bf16 only pays off with hardware support: CUDA bf16, or CPU AMX/AVX512-BF16 units."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def autocast_for(device: torch.device, precision: str) -> Callable[[], contextlib.AbstractContextManager]:
    if precision == "bf16" and bf16_supported(device):
        return lambda: torch.autocast(device_type=device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


@dataclass
class FitResult:
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    interrupted: bool
    valid: dict[str, float]
    test: dict[str, float]
    epoch_seconds: list[float] = field(default_factory=list)
    eval_seconds: list[float] = field(default_factory=list)
    total_seconds: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)


def training_matrix(data: InteractionData, reweighting: Any | None):
    """The training matrix with values from the reweighting strategy (1s without one)."""
    if reweighting is None or data.train_order is None:
        return data.train
    lengths = np.diff(data.train.indptr)
    length_per_entry = np.repeat(lengths, lengths)
    matrix = data.train.copy()
    matrix.data = np.asarray(reweighting.weights(np.asarray(data.train_order), length_per_entry), dtype=np.float32)
    # a zero weight (w_min = 0) means "not in the input": pairwise models and graphs read stored entries as positives
    matrix.eliminate_zeros()
    return matrix


def fit(model: torch.nn.Module, data: InteractionData, config: TrainConfig, *, reporter: Reporter = silent,
        run: Run | None = None, checkpoint_meta: dict[str, Any] | None = None, reweighting: Any | None = None,
        should_stop: Callable[[], bool] = lambda: False) -> FitResult:
    device = pick_device(config.device)
    seed_everything(config.seed)
    model.to(device)
    autocast = autocast_for(device, config.precision)
    matrix = training_matrix(data, reweighting)
    model.prepare(matrix)
    closed_form = bool(getattr(model, "closed_form", False))
    steps_per_epoch = 0 if closed_form else model.steps_per_epoch(matrix, config.batch_size)
    optimizer = None if closed_form else model.make_optimizer(config.lr, config.weight_decay)
    shuffler = torch.Generator().manual_seed(config.seed)
    diffusion = getattr(model, "diffusion", None)
    reporter(TrainingStarted(run.id if run else None, config.model, data.name, config.epochs, steps_per_epoch,
                             model.parameter_count(), str(device), config.precision,
                             getattr(diffusion, "steps", None),
                             tuple(model.describe()) if hasattr(model, "describe") else ()))

    best_value, best_epoch, best_state = -1.0, 0, None
    best_valid: dict[str, float] = {}
    best_test: dict[str, float] = {}
    result = FitResult(0, 0, False, False, {}, {})
    step_loss_log: list[float] = []
    started = time.perf_counter()
    epoch = 0
    try:
        # Closed-form models fit once; their single "epoch" is that fit, then one evaluation.
        for epoch in range(1, (1 if closed_form else config.epochs) + 1):
            # ---- step ----
            model.train()
            model.on_epoch_start(epoch)
            tick = time.perf_counter()
            total, steps = 0.0, 0
            if closed_form:
                model.fit_closed_form(matrix)
            for step, batch in enumerate(() if closed_form else model.batches(matrix, config.batch_size, shuffler, device)):
                with autocast():
                    loss = model.loss(batch)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                value = float(loss.detach())
                total += value
                steps += 1
                step_loss_log.append(value)
                reporter(StepFinished(epoch, step + 1, value))
                if should_stop():
                    raise KeyboardInterrupt
            epoch_s = time.perf_counter() - tick
            result.epoch_seconds.append(epoch_s)
            reporter(EpochFinished(epoch, total / max(1, steps), epoch_s, model.step_losses()))
            # ---- evaluate ----
            if epoch % config.eval_every == 0 or epoch == config.epochs or closed_form:
                model.eval()
                tick = time.perf_counter()
                # no autocast here: bf16 scores (8-bit mantissa) tie and reorder near-equal items, so the
                # metrics would measure rounding rather than the model
                metrics = evaluate(model.scores, data, ks=config.ks, device=device, input_matrix=matrix,
                                   batch_size=config.eval_batch_size or None)
                eval_s = time.perf_counter() - tick
                result.eval_seconds.append(eval_s)
                value = metrics["valid"][config.metric]
                is_best = value > best_value
                # ---- checkpoint ----
                if is_best:
                    best_value, best_epoch = value, epoch
                    best_valid, best_test = metrics["valid"], metrics["test"]
                    best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
                    if run is not None and checkpoint_meta is not None:
                        save_checkpoint(run.checkpoint_dir, model, {**checkpoint_meta, "epoch": epoch,
                                                                    "metrics": {"valid": best_valid, "test": best_test}})
                # ---- report ----
                record = {"epoch": epoch, "valid": metrics["valid"], "test": metrics["test"], "seconds": eval_s,
                          "loss": total / max(1, steps)}
                result.history.append(record)
                if run is not None:
                    run.add_evaluation(record)
                    run.write_losses(step_loss_log, model.step_losses())
                reporter(Evaluated(epoch, metrics["valid"], metrics["test"], eval_s, is_best, best_epoch,
                                   best_value, config.metric))
                if epoch - best_epoch >= config.patience:
                    result.stopped_early = True
                    break
    except KeyboardInterrupt:
        result.interrupted = True
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    result.best_epoch, result.epochs_run = best_epoch, epoch
    result.valid, result.test = best_valid, best_test
    result.total_seconds = time.perf_counter() - started
    if run is not None:
        run.write_losses(step_loss_log, model.step_losses())
    reporter(TrainingFinished(best_epoch, epoch, result.stopped_early, result.interrupted, result.total_seconds,
                              best_valid, best_test))
    return result


@dataclass
class TrainOutcome:
    run: Run
    model: torch.nn.Module
    data: InteractionData
    result: FitResult
    spec: dict[str, Any]
    inputs: Any  # the (reweighted) training matrix the model reads


def _fan_out(listeners: list[Reporter]) -> Reporter:
    def report(event: Any) -> None:
        for listener in listeners:
            listener(event)

    return report


def train(settings: Settings, registry: Registry, *, home: DataHome, reporter: Reporter = silent,
          should_stop: Callable[[], bool] = lambda: False) -> TrainOutcome:
    """Everything ``diffrec train`` does, callable from Python."""
    config = settings.train
    data = home.load(config.dataset)
    # The reweighting takes its own keys (e.g. w_min) from the settings; the model gets the rest.
    # An unset reweighting is the model's default (time-linear for tdiffrec/ltdiffrec, none otherwise).
    used: set[str] = set()
    reweighting_name = config.reweighting or getattr(registry.get("model", config.model).cls, "default_reweighting", "none")
    reweighting, reweighting_spec = build_component(registry, "reweighting", reweighting_name, settings.model, used)
    model_settings = {k: v for k, v in settings.model.items() if k not in used}
    seed_everything(config.seed)  # the initial weights follow the seed, not whatever ran before in this process
    model, spec = build_model(registry, config.model, model_settings, n_users=data.n_users, n_items=data.n_items,
                              data=data)
    callbacks = [build_component(registry, "callback", name, {}, set())[0] for name in config.callbacks]
    pick_device(config.device)  # fail before creating a run directory
    run_config = {"model": config.model, "dataset": config.dataset, "train": config.to_dict(),
                  "model_spec": spec, "reweighting": reweighting_spec, "parameters": model.parameter_count(),
                  "started": time.time()}
    run = Run.create(home.runs_dir, config.model, config.dataset, run_config)
    meta = {"model": spec, "reweighting": reweighting_spec, "train": config.to_dict(),
            "dataset": {"name": data.name, "fingerprint": data.fingerprint(), "n_users": data.n_users,
                        "n_items": data.n_items, "item_ids": f"datasets/{data.name}/items.parquet"},
            "parameters": model.parameter_count(), "run_id": run.id}
    if callbacks:
        reporter = _fan_out([reporter, *callbacks])
    try:
        result = fit(model, data, config, reporter=reporter, run=run, checkpoint_meta=meta,
                     reweighting=reweighting, should_stop=should_stop)
    except BaseException as exc:
        run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
        raise
    final = {"best_epoch": result.best_epoch, "epochs_run": result.epochs_run, "valid": result.valid,
             "test": result.test, "seconds": result.total_seconds, "parameters": model.parameter_count(),
             "epoch_seconds_median": float(np.median(result.epoch_seconds)) if result.epoch_seconds else None,
             "eval_seconds_median": float(np.median(result.eval_seconds)) if result.eval_seconds else None}
    run.write_final(final)
    run.set_status("stopped" if result.interrupted else "finished")
    return TrainOutcome(run, model, data, result, spec, training_matrix(data, reweighting))
