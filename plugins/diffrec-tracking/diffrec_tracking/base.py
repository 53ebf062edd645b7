"""What every tracking callback shares: routing training events to methods, the run's settings and folder,
the global optimizer step, and metric names."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

from diffrec_cli.errors import DiffrecError
from diffrec_cli.runs import read_run
from diffrec_cli.training.events import (EpochFinished, Evaluated, StepFinished, TrainingAborted, TrainingFinished,
                                         TrainingStarted)


def metric_items(split: str, values: dict[str, Any]) -> list[tuple[str, float]]:
    """``("valid/recall@20", 0.17)``, ... for the metrics of one split (the user count is not a metric)."""
    return [(f"{split}/{key}", float(value)) for key, value in values.items()
            if "@" in key and isinstance(value, (int, float)) and not isinstance(value, bool)]


def flat_params(settings: dict[str, Any]) -> dict[str, str]:
    """Settings as the text parameters trackers keep (lists and dicts as JSON)."""
    return {key: value if isinstance(value, str) else json.dumps(value) for key, value in settings.items()}


class TrackingCallback:
    """A reporter: each training event goes to the method named after it. ``needs`` is the module the
    backend imports and ``extra`` the plugin's extra that installs it."""

    needs = ""
    extra = ""

    def __init__(self) -> None:
        if self.needs and importlib.util.find_spec(self.needs) is None:
            raise DiffrecError(f"callback {self.extra!r} needs {self.needs}, which is not installed "
                               f"(pip install 'diffrec-tracking[{self.extra}]')")
        self.run_id = ""
        self.run_dir: Path | None = None
        self.steps_per_epoch = 0
        self.global_step = 0

    def __call__(self, event: Any) -> None:
        if isinstance(event, TrainingStarted):
            self.run_id, self.run_dir = event.run_id or "", Path(event.run_dir) if event.run_dir else None
            self.steps_per_epoch = event.steps_per_epoch
            self.global_step = (event.first_epoch - 1) * event.steps_per_epoch
            self.started(event)
        elif isinstance(event, StepFinished):
            self.global_step = (event.epoch - 1) * self.steps_per_epoch + event.step
            self.step(event)
        elif isinstance(event, EpochFinished):
            self.epoch(event)
        elif isinstance(event, Evaluated):
            self.evaluated(event)
        elif isinstance(event, TrainingFinished):
            self.finished(event)
        elif isinstance(event, TrainingAborted):
            self.aborted(event)

    # ----- what a backend implements ------------------------------------------------------------------
    def started(self, event: TrainingStarted) -> None:
        """Open the backend's run."""

    def step(self, event: StepFinished) -> None:
        """One optimizer step's loss, at ``self.global_step``."""

    def epoch(self, event: EpochFinished) -> None:
        """An epoch's mean loss and the mean loss per diffusion step t."""

    def evaluated(self, event: Evaluated) -> None:
        """Validation and test metrics, at the epoch."""

    def finished(self, event: TrainingFinished) -> None:
        """Close the backend's run."""

    def aborted(self, event: TrainingAborted) -> None:
        """Close the backend's run after training ended by an exception (marked failed or killed)."""

    # ----- helpers ------------------------------------------------------------------------------------
    def settings(self) -> dict[str, Any]:
        """The run's settings under the names ``--set`` takes (from its config.json)."""
        return read_run(self.run_dir).settings() if self.run_dir else {}

    def folder(self, configured: str, name: str) -> Path:
        """``configured``/RUN_ID when a folder was given, else a ``name`` folder inside the run's folder."""
        if configured:
            return Path(configured).expanduser() / self.run_id
        if self.run_dir is None:
            raise DiffrecError(f"the {name} callback needs a run folder (train through diffrec_cli.training.job)")
        return self.run_dir / name

    def checkpoint(self) -> Path | None:
        """The run's checkpoint folder (the best weights), once the run has one."""
        return read_run(self.run_dir).checkpoint if self.run_dir else None
