"""``diffrec train`` as one library call: settings → model → run folder → fit, with the recorder listening.

The data flow, file by file: ``config.py`` (settings) → ``models/build.py`` via ``registry.py`` (the model
and its components) → ``data/store.py`` (the dataset) → ``runs.py`` (the run folder) → ``training/loop.py``
(fit) → events → ``training/recorder.py`` → ``training/checkpoint.py``.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any, Callable

import scipy.sparse as sp
import torch

from diffrec_cli.config import Settings
from diffrec_cli.data.sparse import InteractionData
from diffrec_cli.data.store import DataHome
from diffrec_cli.models.build import build_component, build_model
from diffrec_cli.models.spec import ModelSpec
from diffrec_cli.registry import Registry
from diffrec_cli.runs import Run
from diffrec_cli.training.checkpoint import CheckpointMeta, DatasetRef
from diffrec_cli.training.device import pick_device, seed_everything
from diffrec_cli.training.events import Reporter, TrainingStarted, silent
from diffrec_cli.training.loop import FitResult, fit, never
from diffrec_cli.training.recorder import RunRecorder


@dataclass
class TrainOutcome:
    run: Run
    model: torch.nn.Module
    data: InteractionData
    result: FitResult
    spec: ModelSpec

    @property
    def inputs(self) -> sp.csr_matrix:
        """The (reweighted) training matrix the model reads."""
        return self.result.inputs


def _fan_out(listeners: list[Reporter], run_id: str) -> Reporter:
    def report(event: Any) -> None:
        if isinstance(event, TrainingStarted):  # the loop knows no run; its listeners want the id
            event = dataclasses.replace(event, run_id=run_id)
        for listener in listeners:
            listener(event)

    return report


def train(settings: Settings, registry: Registry, *, home: DataHome, reporter: Reporter = silent,
          should_stop: Callable[[], bool] = never) -> TrainOutcome:
    """Everything ``diffrec train`` does, callable from Python."""
    config = settings.train
    data = home.load(config.dataset)
    seed_everything(config.seed)  # the initial weights follow the seed, not whatever ran before in this process
    model, spec = build_model(registry, config.model, settings.model, n_users=data.n_users, n_items=data.n_items,
                              data=data)
    callbacks = [build_component(registry, "callback", name, {}, set())[0] for name in config.callbacks]
    pick_device(config.device)  # fail before creating a run directory
    run = Run.create(home.runs_dir, config.model, config.dataset,
                     {"model": config.model, "dataset": config.dataset, "train": config.to_dict(),
                      "model_spec": spec.to_json(), "reweighting": spec.reweighting.to_json(),
                      "parameters": model.parameter_count(), "started": time.time()})
    recorder = RunRecorder(run, model, CheckpointMeta(spec, DatasetRef.of(data), config.to_dict(),
                                                      model.parameter_count(), run.id))
    try:
        result = fit(model, data, config, _fan_out([recorder, reporter, *callbacks], run.id), should_stop=should_stop)
    except BaseException as exc:
        recorder.failed(exc)
        raise
    return TrainOutcome(run, model, data, result, spec)
