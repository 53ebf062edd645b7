"""Training events: small dataclasses a reporter receives. The same stream drives rich output,
the Textual live panel, plugin callbacks and silent tests."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol


@dataclass(frozen=True)
class TrainingStarted:
    run_id: str | None
    model: str
    dataset: str
    epochs: int
    steps_per_epoch: int
    parameters: int
    device: str
    precision: str
    diffusion_steps: int | None
    details: tuple[str, ...] = ()  # lines a model adds about itself (e.g. L-DiffRec's clusters), from describe()
    first_epoch: int = 1  # > 1 when a run resumes after epoch first_epoch − 1
    run_dir: str | None = None  # the run folder (set with run_id): where callbacks find config and checkpoint
    precision_record: dict[str, Any] | None = None  # the precision decision and its probe (precision.py)


@dataclass(frozen=True)
class StepFinished:
    epoch: int
    step: int
    loss: float


@dataclass(frozen=True)
class EpochFinished:
    epoch: int
    loss: float
    seconds: float
    step_losses: list[float | None] | None = None  # mean loss per diffusion step t (importance history)


@dataclass(frozen=True)
class Evaluated:
    epoch: int
    valid: dict[str, float]
    test: dict[str, float]
    seconds: float
    is_best: bool
    best_epoch: int
    best_value: float
    metric: str


@dataclass(frozen=True)
class ResumePoint:
    """The end of an epoch training can be resumed from; ``state()`` takes the snapshot (only listeners that
    keep it, such as the run recorder, pay for the copy)."""

    epoch: int
    state: Callable[[], Any]


@dataclass(frozen=True)
class TrainingFinished:
    best_epoch: int
    epochs_run: int
    stopped_early: bool
    interrupted: bool
    seconds: float
    valid: dict[str, float] = field(default_factory=dict)
    test: dict[str, float] = field(default_factory=dict)
    precision_record: dict[str, Any] | None = None  # as at the start, with the scoring check's outcome


@dataclass(frozen=True)
class TrainingAborted:
    """Training ended by an exception instead of finishing (a diverging loss, Ctrl-C, a crash): sent to the
    run's callbacks so that trackers close what they opened (an MLflow run marked FAILED or KILLED)."""

    reason: str
    interrupted: bool


class Reporter(Protocol):
    def __call__(self, event: Any) -> None: ...


def silent(event: Any) -> None:
    """A reporter that ignores everything (tests, scripts)."""
