"""Fold the training event stream into what a progress panel shows: position, ETA, losses, best metrics.

A :class:`TrainingTracker` is itself a reporter. The rich panel of ``diffrec train`` and the Textual
live panel of ``diffrec dashboard`` both draw from one, so they always agree.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from diffrec_cli.training.events import EpochFinished, Evaluated, StepFinished, TrainingFinished, TrainingStarted


class TrainingTracker:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.started: TrainingStarted | None = None
        self.started_at: float | None = None
        self.epoch = 0  # the epoch in progress (or the last one finished)
        self.step = 0  # the last finished optimizer step within that epoch
        self.epochs_done = 0
        self.steps_done = 0  # optimizer steps over the whole training
        self.losses: list[float] = []  # loss per optimizer step
        self.epoch_losses: list[float] = []
        self.step_losses: list[float | None] = []  # mean loss per diffusion step t (importance history)
        self.evaluations: list[Evaluated] = []
        self.best: Evaluated | None = None
        self.finished: TrainingFinished | None = None
        self.updates = 0  # events seen; lets a panel skip redraws when nothing changed

    # ----- the reporter ---------------------------------------------------------------------------
    def __call__(self, event: Any) -> None:
        self.updates += 1
        if isinstance(event, TrainingStarted):
            self.started, self.started_at = event, self.clock()
            self.step_losses = [None] * (event.diffusion_steps or 0)
        elif isinstance(event, StepFinished):
            self.epoch, self.step = event.epoch, event.step
            self.steps_done += 1
            self.losses.append(event.loss)
        elif isinstance(event, EpochFinished):
            self.epoch, self.epochs_done = event.epoch, event.epoch
            self.epoch_losses.append(event.loss)
            if event.step_losses is not None:
                self.step_losses = list(event.step_losses)
        elif isinstance(event, Evaluated):
            self.evaluations.append(event)
            if event.is_best or self.best is None:
                self.best = event
        elif isinstance(event, TrainingFinished):
            self.finished = event

    # ----- derived values -------------------------------------------------------------------------
    @property
    def epochs(self) -> int:
        return self.started.epochs if self.started else 0

    @property
    def steps_per_epoch(self) -> int:
        return self.started.steps_per_epoch if self.started else 0

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def elapsed(self) -> float:
        if self.started_at is None:
            return 0.0
        end = self.started_at + self.finished.seconds if self.finished else self.clock()
        return max(0.0, end - self.started_at)

    def eta_seconds(self) -> float | None:
        """Time left if every epoch runs (an upper bound: early stopping may end sooner)."""
        if self.finished is not None:
            return 0.0
        if self.steps_done == 0 or self.total_steps == 0:
            return None
        return self.elapsed / self.steps_done * max(0, self.total_steps - self.steps_done)

    @property
    def last(self) -> Evaluated | None:
        return self.evaluations[-1] if self.evaluations else None

    @property
    def filled_steps(self) -> int:
        """Diffusion steps that have a loss in the importance-sampling history."""
        return sum(v is not None for v in self.step_losses)

    @property
    def state(self) -> str:
        if self.finished is None:
            return "running" if self.started else "starting"
        if self.finished.interrupted:
            return "stopped"
        return "stopped early" if self.finished.stopped_early else "finished"

