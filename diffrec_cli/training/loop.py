"""The training loop, in nanoGPT order: step, evaluate, checkpoint, log. It only trains.

``fit`` runs epochs of optimiser steps over a built model and evaluates on validation every ``eval_every``
epochs, keeping the best weights (by the validation ``metric``) in a temporary file and stopping after
``patience`` epochs without improvement. Everything else listens to the events it reports
(``training/events.py``): the run recorder writes the run folder and the best checkpoint, progress panels
draw, plugin callbacks track.
``training/job.py`` puts these together for ``diffrec train``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import warnings
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import scipy.sparse as sp
import torch

from diffrec_cli.config import TrainConfig
from diffrec_cli.data.sparse import InteractionData
from diffrec_cli.errors import TrainingFailed
from diffrec_cli.models.base import Recommender
from diffrec_cli.training.allocator import keep_step_buffers
from diffrec_cli.training.device import autocast_for, pick_device, seed_everything
from diffrec_cli.training.distributed import Parallel, join, require_distributable
from diffrec_cli.training.evaluate import eval_batch_size
from diffrec_cli.training.events import (EpochFinished, Evaluated, Reporter, ResumePoint, StepFinished,
                                         TrainingFinished, TrainingStarted, silent)
from diffrec_cli.training.kept_weights import KeptWeights
from diffrec_cli.training.precision import PrecisionChoice, Probe, check_scoring, choose_precision, probe_gemms
from diffrec_cli.training.resume import TrainingState, rng_state, set_rng_state


def never() -> bool:
    return False


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
    inputs: sp.csr_matrix | None = None  # the (reweighted) training matrix the model read
    precision: dict[str, Any] = field(default_factory=dict)  # PrecisionChoice.to_json(): decision and probe


@dataclass
class Best:
    """The best validation result so far and a copy of the weights that gave it."""

    value: float = -1.0
    epoch: int = 0
    valid: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    weights: KeptWeights | None = None

    def offer(self, epoch: int, metrics: dict[str, dict[str, float]], metric: str, model: torch.nn.Module,
              copy: bool = True) -> bool:
        """Keep this evaluation if it is the best; ``copy``: of the weights (False when training is over, as
        after a closed-form fit: an n_items² model would otherwise be held twice)."""
        if metrics["valid"][metric] <= self.value:
            return False
        self.value, self.epoch = metrics["valid"][metric], epoch
        self.valid, self.test = metrics["valid"], metrics["test"]
        self.keep(model.state_dict(), copy)
        return True

    def keep(self, state: dict[str, torch.Tensor], copy: bool = True) -> None:
        """Hold ``state`` (a copy, in a temporary file where possible; or the tensors themselves)."""
        self.drop()  # the previous copy goes before the new one is made
        self.weights = KeptWeights.copy_of(state) if copy else KeptWeights.holding(
            {k: v.detach() for k, v in state.items()})

    def drop(self) -> None:
        """Let go of the kept weights (and their temporary file)."""
        if self.weights is not None:
            self.weights.close()
            self.weights = None

    @property
    def state(self) -> dict[str, torch.Tensor] | None:
        """The kept weights (read back if they were written out), or None before the first evaluation."""
        return None if self.weights is None else self.weights.tensors()


@dataclass
class Setup:
    """What one fit works with, decided once before the first epoch."""

    config: TrainConfig
    device: torch.device
    inputs: sp.csr_matrix
    optimizer: torch.optim.Optimizer | None  # None for closed-form models
    steps_per_epoch: int
    shuffler: torch.Generator
    autocast: Callable[[], contextlib.AbstractContextManager]
    parallel: Parallel  # this process's part: alone, or one rank of a data-parallel job
    closed_fit: Callable[[sp.csr_matrix], None] | None = None  # a closed-form model's fit (shared factors)
    precision: PrecisionChoice = PrecisionChoice("fp32")  # what runs in bf16, and the probe it was decided on

    @property
    def epochs(self) -> int:
        return 1 if self.optimizer is None else self.config.epochs  # a closed-form fit is one "epoch"

    def evaluates_after(self, epoch: int) -> bool:
        return epoch % self.config.eval_every == 0 or epoch == self.epochs

    def resumable_after(self, epoch: int) -> bool:
        """Whether to offer a resume point: every ``checkpoint_every`` epochs (0: at every evaluation)."""
        if self.closed_fit is not None:  # one fit, nothing to continue: no copies of its weights on disk
            return False
        every = self.config.checkpoint_every
        return self.evaluates_after(epoch) if every == 0 else (epoch % every == 0 or epoch == self.epochs)


def prepare_fit(model: Recommender, data: InteractionData, config: TrainConfig,
                closed_fit: Callable[[sp.csr_matrix], None] | None = None, probe: Probe | None = None) -> Setup:
    device = pick_device(config.device)
    parallel = join(device)  # the launcher's environment says whether we are one of many
    require_distributable(type(model), parallel.ranks)
    device = parallel.place(device)
    seed_everything(config.seed)
    model.to(device)
    inputs = model.inputs(data)
    model.prepare(inputs)
    parallel.attach(model, config.seed)
    closed = model.closed_form
    if device.type == "cpu" and not closed:
        keep_step_buffers()  # the steps' tensors stay in the heap between steps (training/allocator.py)
    choice = choose_precision(config.precision, device, [] if closed else model.gemm_shapes(config.batch_size),
                              model.gemm_shapes(config.eval_batch_size or eval_batch_size(data.n_items),
                                                scoring=True), _agreed(probe or probe_gemms, parallel))
    if choice.warning:
        warnings.warn(choice.warning, stacklevel=2)
    own = model.set_precision(choice.dtype("training"), choice.dtype("scoring"))
    if not own:  # the model has no mixed-precision path of its own: autocast for training, fp32 scores
        choice = dataclasses.replace(choice, scoring="fp32")
    autocast = contextlib.nullcontext if own else autocast_for(device, choice.training)
    return Setup(config, device, inputs, None if closed else model.make_optimizer(config.lr, config.weight_decay),
                 0 if closed else model.steps_per_epoch(inputs, config.batch_size),
                 torch.Generator().manual_seed(config.seed), autocast, parallel,
                 (closed_fit or model.fit_closed_form) if closed else None, choice)


def _agreed(probe: Probe, parallel: Parallel) -> Probe:
    """``probe`` with its figures averaged over the ranks of a data-parallel job: every rank decides alike."""
    def agreed(shapes: Any, device: torch.device, backward: bool) -> tuple[float, float]:
        fp32, bf16 = probe(shapes, device, backward)
        return parallel.mean(fp32), parallel.mean(bf16)

    return agreed


def train_epoch(model: Recommender, setup: Setup, epoch: int, reporter: Reporter,
                should_stop: Callable[[], bool]) -> float:
    """One epoch of optimiser steps (or the closed-form fit); returns the mean loss."""
    model.train()
    model.on_epoch_start(epoch)
    if setup.closed_fit is not None:
        setup.closed_fit(setup.inputs)
        return 0.0
    setup.optimizer.zero_grad(set_to_none=True)  # none left over from a fit stopped inside a step
    total, steps = 0.0, 0
    for steps, batch in enumerate(setup.parallel.batches(model, setup.inputs, setup.config.batch_size,
                                                         setup.shuffler, setup.device), start=1):
        with setup.autocast():
            loss = model.loss(batch)
        loss.backward()
        setup.parallel.reduce_gradients(model, batch.share)
        setup.optimizer.step()
        # dropped at once, not before the next backward: the next forward pass runs without them in memory
        setup.optimizer.zero_grad(set_to_none=True)
        value = float(loss.detach())
        if not math.isfinite(value):
            raise TrainingFailed(f"training diverged: the loss is {value} at epoch {epoch}, step {steps}; the run "
                                 f"keeps its last good checkpoint (a lower lr may help)")
        total += value
        reporter(StepFinished(epoch, steps, value))
        if setup.parallel.agree(should_stop()):
            raise KeyboardInterrupt
    return setup.parallel.mean(total / max(1, steps))


def evaluate_now(model: Recommender, data: InteractionData, setup: Setup) -> tuple[dict[str, dict[str, float]], float]:
    """Validation and test metrics from one scoring pass, and the seconds it took."""
    model.eval()
    tick = time.perf_counter()
    # bf16 scoring (hidden-size steps only; item-wide scores and top-K stay float32) is kept only if its
    # top-20 agrees with fp32 scoring, checked once on the trained model
    setup.precision = check_scoring(setup.precision, model, data, setup.inputs)
    metrics = setup.parallel.evaluate(model.scores, data, ks=setup.config.ks, device=setup.device,
                                      input_matrix=setup.inputs, batch_size=setup.config.eval_batch_size or None)
    return metrics, time.perf_counter() - tick


def fit(model: Recommender, data: InteractionData, config: TrainConfig, reporter: Reporter = silent, *,
        should_stop: Callable[[], bool] = never, resume: TrainingState | None = None,
        closed_fit: Callable[[sp.csr_matrix], None] | None = None, probe: Probe | None = None) -> FitResult:
    """Train ``model`` on ``data``; it ends with its best validation weights, in eval mode. Ctrl-C (or
    ``should_stop()``) ends training early, keeping the best evaluation so far; ``resume`` (a ``ResumePoint``'s
    state) continues after its epoch exactly as training would have. ``closed_fit`` fits a closed-form model
    in place of its ``fit_closed_form`` (a search's shared factors); ``probe`` times GEMMs for ``auto``."""
    setup = prepare_fit(model, data, config, closed_fit, probe)
    reporter = setup.parallel.reporter(reporter)  # one rank speaks for all
    result, best, started = FitResult(0, 0, False, False, {}, {}, inputs=setup.inputs), Best(), time.perf_counter()
    first = 1 if resume is None else restore(resume, model, setup, result, best) + 1
    reporter(TrainingStarted(None, config.model, data.name, setup.epochs, setup.steps_per_epoch,
                             model.parameter_count(), str(setup.device), setup.precision.describe(),
                             model.diffusion_steps(), (*model.describe(), *setup.parallel.describe()),
                             first_epoch=first, precision_record=setup.precision.to_json()))
    try:
        for epoch in range(first, setup.epochs + 1):
            result.epochs_run, tick = epoch, time.perf_counter()
            loss = train_epoch(model, setup, epoch, reporter, should_stop)  # ---- step
            result.epoch_seconds.append(time.perf_counter() - tick)
            reporter(EpochFinished(epoch, loss, result.epoch_seconds[-1], model.step_losses()))
            if setup.evaluates_after(epoch):
                metrics, seconds = evaluate_now(model, data, setup)  # ---- evaluate
                # ---- checkpoint (the recorder saves; a closed-form fit is final, so no copy of its weights)
                is_best = best.offer(epoch, metrics, config.metric, model, copy=setup.closed_fit is None)
                result.eval_seconds.append(seconds)
                result.history.append({"epoch": epoch, **metrics, "seconds": seconds, "loss": loss})
                reporter(Evaluated(epoch, metrics["valid"], metrics["test"], seconds, is_best, best.epoch,  # ---- log
                                   best.value, config.metric))
            if setup.resumable_after(epoch):
                reporter(ResumePoint(epoch, lambda e=epoch: snapshot(e, model, setup, result, best)))
            if setup.parallel.agree(epoch - best.epoch >= config.patience):  # decided once, by rank 0
                result.stopped_early = True
                break
    except KeyboardInterrupt:
        result.interrupted = True
    except BaseException:
        best.drop()  # a failed fit leaves no temporary file open behind it
        raise
    return finish(model, result, best, time.perf_counter() - started, reporter, setup.precision)


def finish(model: Recommender, result: FitResult, best: Best, seconds: float, reporter: Reporter,
           precision: PrecisionChoice) -> FitResult:
    """Back to the best weights; the result and the closing event report the best evaluation and the
    precision (with the scoring check's outcome, once evaluated)."""
    result.precision = precision.to_json()
    if best.weights is not None:
        try:
            model.load_state_dict(best.weights.tensors())
        finally:
            best.drop()
    model.eval()
    result.best_epoch, result.valid, result.test, result.total_seconds = best.epoch, best.valid, best.test, seconds
    reporter(TrainingFinished(best.epoch, result.epochs_run, result.stopped_early, result.interrupted, seconds,
                              best.valid, best.test, precision_record=result.precision))
    return result


def snapshot(epoch: int, model: Recommender, setup: Setup, result: FitResult, best: Best) -> TrainingState:
    """The state to continue from after ``epoch``: the live tensors, written before training goes on."""
    rng_tensors, rngs = rng_state(setup.shuffler)
    info = {"best": {"value": best.value, "epoch": best.epoch, "valid": best.valid, "test": best.test},
            "history": result.history, "epoch_seconds": result.epoch_seconds, "eval_seconds": result.eval_seconds,
            "model_state": model.training_state(), "rng": rngs}
    return TrainingState(epoch, {k: v.detach() for k, v in model.state_dict().items()}, best.state,
                         setup.optimizer.state_dict() if setup.optimizer is not None else None, rng_tensors, info)


def restore(state: TrainingState, model: Recommender, setup: Setup, result: FitResult, best: Best) -> int:
    """Put a snapshot back into the model, optimiser, generators and records; returns its epoch."""
    setup.parallel.check_resumable()
    model.load_state_dict(state.model)
    model.load_training_state(state.info["model_state"])
    if setup.optimizer is not None and state.optimizer is not None:
        setup.optimizer.load_state_dict(state.optimizer)
    record = state.info["best"]
    best.value, best.epoch, best.valid, best.test = record["value"], record["epoch"], record["valid"], record["test"]
    best.drop()
    if state.best_model is not None:
        best.keep(state.best_model)
    result.history = list(state.info["history"])
    result.epoch_seconds, result.eval_seconds = list(state.info["epoch_seconds"]), list(state.info["eval_seconds"])
    result.epochs_run = state.epoch
    set_rng_state(setup.shuffler, state.rng_tensors, state.info["rng"])
    return state.epoch
