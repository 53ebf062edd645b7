"""The run recorder: listens to the training events and keeps a run folder up to date.

It writes each evaluation's metrics and the losses so far, the checkpoint of every new best validation
result, and at the end the final summary and status. The loop knows nothing of files; a training without a
recorder (tests, benchmarks, the Python API's ``fit``) writes nothing.
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch

from diffrec_cli.runs import Run
from diffrec_cli.training.checkpoint import CheckpointMeta, save_checkpoint
from diffrec_cli.training.events import (EpochFinished, Evaluated, ResumePoint, StepFinished, TrainingFinished,
                                         TrainingStarted)
from diffrec_cli.training.resume import save_state


PROGRESS_EVERY = 5.0  # seconds between progress updates of status.json (each is a file written)


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


class RunRecorder:
    """A reporter that records one training of ``model`` into ``run``; ``meta`` describes its checkpoints."""

    def __init__(self, run: Run, model: torch.nn.Module, meta: CheckpointMeta,
                 restored: dict[str, Any] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        """``restored``: what an earlier recorder of this run saved with its last resumable state."""
        self.run, self.model, self.meta = run, model, meta
        self.clock, self.progress_written = clock, -PROGRESS_EVERY
        self.epochs = self.steps_per_epoch = self.step = 0
        restored = restored or {}
        self.optimizer_losses: list[float] = list(restored.get("optimizer_losses", []))
        self.diffusion_step_losses: list[float | None] | None = restored.get("diffusion_step_losses")
        self.epoch_loss = float(restored.get("epoch_loss", 0.0))
        self.epoch_seconds: list[float] = list(restored.get("epoch_seconds", []))
        self.eval_seconds: list[float] = list(restored.get("eval_seconds", []))
        # evaluations after the resumed epoch (written before a crash) are dropped: they will be redone
        self.run.evaluations = list(restored.get("evaluations", self.run.evaluations))

    def __call__(self, event: Any) -> None:
        if isinstance(event, TrainingStarted):
            self.epochs, self.steps_per_epoch = event.epochs, event.steps_per_epoch
            self.record_precision(event.precision_record)
        elif isinstance(event, StepFinished):
            self.optimizer_losses.append(event.loss)
            self.step = event.step
            self.progress(event.epoch)
        elif isinstance(event, EpochFinished):
            self.epoch_loss, self.diffusion_step_losses = event.loss, event.step_losses
            self.epoch_seconds.append(event.seconds)
            self.progress(event.epoch)
        elif isinstance(event, Evaluated):
            self.evaluated(event)
        elif isinstance(event, ResumePoint):
            self.resumable(event)
        elif isinstance(event, TrainingFinished):
            self.finished(event)

    def record_precision(self, record: dict[str, Any] | None) -> None:
        """The precision decision and the throughputs it rests on, in config.json beside the settings."""
        if record:
            self.run.write_config({**self.run.read_config(), "precision": record})

    def progress(self, epoch: int) -> None:
        """Where training is, in status.json, at most every ``PROGRESS_EVERY`` seconds."""
        if self.clock() - self.progress_written >= PROGRESS_EVERY:
            self.progress_written = self.clock()
            self.run.heartbeat(epoch=epoch, epochs=self.epochs, step=self.step, steps_per_epoch=self.steps_per_epoch)

    def resumable(self, event: ResumePoint) -> None:
        state = event.state()
        state.info["recorder"] = {"optimizer_losses": self.optimizer_losses,
                                  "diffusion_step_losses": self.diffusion_step_losses, "epoch_loss": self.epoch_loss,
                                  "epoch_seconds": self.epoch_seconds, "eval_seconds": self.eval_seconds,
                                  "evaluations": self.run.evaluations}
        state.info["dataset_fingerprint"] = self.meta.dataset.fingerprint
        save_state(self.run.resume_dir, state)

    def evaluated(self, event: Evaluated) -> None:
        self.eval_seconds.append(event.seconds)
        if event.is_best:  # the model holds exactly the weights that scored this
            meta = self.meta.at_epoch(event.epoch, event.valid, event.test)
            save_checkpoint(self.run.checkpoint_dir, self.model, meta)
        self.run.add_evaluation({"epoch": event.epoch, "valid": event.valid, "test": event.test,
                                 "seconds": event.seconds, "loss": self.epoch_loss})
        self.run.write_losses(self.optimizer_losses, self.diffusion_step_losses)

    def finished(self, event: TrainingFinished) -> None:
        # the loop has restored the best weights: their importance-sampling history is the one to keep
        self.run.write_losses(self.optimizer_losses, self.model.step_losses())
        self.run.write_final({"best_epoch": event.best_epoch, "epochs_run": event.epochs_run, "valid": event.valid,
                              "test": event.test, "seconds": event.seconds, "parameters": self.meta.parameters,
                              "epoch_seconds_median": _median(self.epoch_seconds),
                              "eval_seconds_median": _median(self.eval_seconds),
                              **({"precision": event.precision_record} if event.precision_record else {})})
        if not event.interrupted:
            self.run.set_status("finished")
        else:
            self.run.set_status("stopped", **({} if event.valid else {"note": "no evaluation yet"}))

    def interrupted(self) -> None:
        """Stopped before the loop began (while the data or the model was being prepared)."""
        self.run.set_status("stopped", note="no evaluation yet")

    def failed(self, exc: BaseException) -> None:
        self.run.set_status("failed", error=f"{type(exc).__name__}: {exc}")
