"""The three backends. Each constructor's arguments are the callback's settings (``[tracking]`` table keys,
or ``--set tracking.KEY=VALUE``); the backend itself is imported when training starts."""

from __future__ import annotations

import os
import time
from typing import Any

from diffrec_cli.training.events import (EpochFinished, Evaluated, StepFinished, TrainingAborted, TrainingFinished,
                                         TrainingStarted)

from diffrec_tracking.base import TrackingCallback, flat_params, metric_items

MLFLOW_BATCH = 1000  # MLflow takes at most this many metric values per request


class TensorBoardCallback(TrackingCallback):
    """Event files for TensorBoard: the loss per optimizer step (``train/loss``) and per epoch, every metric
    per evaluation (``valid/recall@20``, ``test/ndcg@10``, ...) and the mean loss per diffusion step t as a
    histogram over t. ``tensorboard_dir``: a folder that gets one sub-folder per run (default: the run's
    own ``tensorboard`` folder, so ``tensorboard --logdir HOME/runs`` shows every run)."""

    name = "tensorboard"
    needs = extra = "tensorboard"

    def __init__(self, tensorboard_dir: str = "") -> None:
        super().__init__()
        self.tensorboard_dir = tensorboard_dir
        self.writer: Any = None

    def started(self, event: TrainingStarted) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(self.folder(self.tensorboard_dir, "tensorboard")))
        self.writer.add_text("settings", "\n".join(f"    {k} = {v}" for k, v in flat_params(self.settings()).items()))

    def step(self, event: StepFinished) -> None:
        self.writer.add_scalar("train/loss", event.loss, self.global_step)

    def epoch(self, event: EpochFinished) -> None:
        self.writer.add_scalar("train/epoch_loss", event.loss, event.epoch)
        losses = [0.0 if v is None else float(v) for v in event.step_losses or []]
        if any(losses):  # one bucket per diffusion step t, its height the mean loss at t
            steps = range(1, len(losses) + 1)
            self.writer.add_histogram_raw("train/loss_per_diffusion_step", min=1, max=len(losses), num=sum(losses),
                                          sum=sum(t * v for t, v in zip(steps, losses)),
                                          sum_squares=sum(t * t * v for t, v in zip(steps, losses)),
                                          bucket_limits=[t + 0.5 for t in steps], bucket_counts=losses,
                                          global_step=event.epoch)

    def evaluated(self, event: Evaluated) -> None:
        for split, values in (("valid", event.valid), ("test", event.test)):
            for tag, value in metric_items(split, values):
                self.writer.add_scalar(tag, value, event.epoch)

    def finished(self, event: TrainingFinished) -> None:
        if self.writer is not None:
            self.writer.close()

    def aborted(self, event: TrainingAborted) -> None:
        if self.writer is not None:
            self.writer.close()


class MLflowCallback(TrackingCallback):
    """An MLflow run per training: the settings as parameters, the loss per optimizer step and every metric
    per evaluation (``valid/recall_at_20``: MLflow names take no ``@``), the best checkpoint as the
    ``checkpoint`` artifact. ``mlflow_uri``: the tracking URI (default: a file store in HOME/mlruns);
    ``mlflow_experiment``: the experiment (created when missing)."""

    name = "mlflow"
    needs = extra = "mlflow"

    def __init__(self, mlflow_uri: str = "", mlflow_experiment: str = "diffrec") -> None:
        super().__init__()
        self.mlflow_uri, self.mlflow_experiment = mlflow_uri, mlflow_experiment
        self.client: Any = None
        self.mlflow_run_id = ""
        self.pending: list[Any] = []

    def tracking_uri(self) -> str:
        if self.mlflow_uri:
            return self.mlflow_uri
        runs = self.folder("", "mlruns").parents[1]  # HOME/runs/RUN_ID/mlruns: beside HOME/runs
        return (runs.parent / "mlruns").as_uri()

    def started(self, event: TrainingStarted) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        uri = self.tracking_uri()
        if uri.startswith("file:") or "://" not in uri:
            # MLflow 3 keeps its file store only on request; it is what a local, server-less setup uses
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        self.client = MlflowClient(tracking_uri=uri)
        experiment = self.client.get_experiment_by_name(self.mlflow_experiment)
        experiment_id = experiment.experiment_id if experiment else self.client.create_experiment(self.mlflow_experiment)
        run = self.client.create_run(experiment_id, run_name=self.run_id,
                                     tags={"diffrec.run_id": self.run_id, "diffrec.model": event.model,
                                           "diffrec.dataset": event.dataset})
        self.mlflow_run_id = run.info.run_id
        params = [Param(k, v[:6000]) for k, v in flat_params(self.settings()).items()]
        self.client.log_batch(self.mlflow_run_id, params=params)

    def metric(self, key: str, value: float, step: int) -> None:
        from mlflow.entities import Metric

        self.pending.append(Metric(key.replace("@", "_at_"), value, int(time.time() * 1000), step))

    def flush(self) -> None:
        for start in range(0, len(self.pending), MLFLOW_BATCH):
            self.client.log_batch(self.mlflow_run_id, metrics=self.pending[start:start + MLFLOW_BATCH])
        self.pending = []

    def step(self, event: StepFinished) -> None:
        self.metric("train/loss", event.loss, self.global_step)

    def epoch(self, event: EpochFinished) -> None:
        self.metric("train/epoch_loss", event.loss, event.epoch)
        self.flush()  # one request per epoch, not per step

    def evaluated(self, event: Evaluated) -> None:
        for split, values in (("valid", event.valid), ("test", event.test)):
            for key, value in metric_items(split, values):
                self.metric(key, value, event.epoch)
        self.flush()

    def finished(self, event: TrainingFinished) -> None:
        if self.client is None:
            return
        for split, values in (("best/valid", event.valid), ("best/test", event.test)):
            for key, value in metric_items(split, values):
                self.metric(key, value, event.best_epoch)
        self.flush()
        checkpoint = self.checkpoint()
        if checkpoint is not None:
            self.client.log_artifacts(self.mlflow_run_id, str(checkpoint), "checkpoint")
        self.client.set_terminated(self.mlflow_run_id, "KILLED" if event.interrupted else "FINISHED")

    def aborted(self, event: TrainingAborted) -> None:
        if self.client is None:
            return
        self.flush()  # the metrics logged since the last evaluation
        self.client.set_tag(self.mlflow_run_id, "diffrec.error", event.reason[:500])
        self.client.set_terminated(self.mlflow_run_id, "KILLED" if event.interrupted else "FAILED")


class WandbCallback(TrackingCallback):
    """A Weights & Biases run, offline by default (``wandb sync`` uploads it later): the settings as its
    config, the loss per optimizer step and every metric per evaluation, the best metrics in its summary.
    ``wandb_project``, ``wandb_mode`` (offline, online or disabled) and ``wandb_dir`` (default: the run's
    folder, which gets a ``wandb`` folder)."""

    name = "wandb"
    needs = extra = "wandb"

    def __init__(self, wandb_project: str = "diffrec", wandb_mode: str = "offline", wandb_dir: str = "") -> None:
        super().__init__()
        self.wandb_project, self.wandb_mode, self.wandb_dir = wandb_project, wandb_mode, wandb_dir
        self.run: Any = None

    def started(self, event: TrainingStarted) -> None:
        import wandb

        folder = self.folder(self.wandb_dir, "") if self.wandb_dir else self.run_dir
        self.run = wandb.init(project=self.wandb_project, name=self.run_id, dir=str(folder), mode=self.wandb_mode,
                              config=self.settings(), reinit="create_new",
                              settings=wandb.Settings(console="off", silent=True, x_disable_stats=True))

    def step(self, event: StepFinished) -> None:
        self.run.log({"train/loss": event.loss, "epoch": event.epoch}, step=self.global_step)

    def evaluated(self, event: Evaluated) -> None:
        values = dict(metric_items("valid", event.valid) + metric_items("test", event.test))
        self.run.log({**values, "epoch": event.epoch}, step=self.global_step)

    def finished(self, event: TrainingFinished) -> None:
        if self.run is None:
            return
        for key, value in metric_items("best/valid", event.valid) + metric_items("best/test", event.test):
            self.run.summary[key] = value
        self.run.summary["best_epoch"] = event.best_epoch
        self.run.finish(exit_code=1 if event.interrupted else 0)

    def aborted(self, event: TrainingAborted) -> None:
        if self.run is not None:
            self.run.summary["error"] = event.reason[:500]
            self.run.finish(exit_code=1)
