"""diffrec-tracking: training callbacks that send a run's settings, losses, metrics and checkpoint to
TensorBoard, MLflow or Weights & Biases. Turn one on with ``--set callbacks=[tensorboard]`` or a
``[tracking]`` table; each backend is an optional extra and is imported only when a training starts."""

from diffrec_cli.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_callbacks(register):
    # by import path: loading the plugins (every command does) imports no callback code
    register("tensorboard", "diffrec_tracking.callbacks:TensorBoardCallback")
    register("mlflow", "diffrec_tracking.callbacks:MLflowCallback")
    register("wandb", "diffrec_tracking.callbacks:WandbCallback")
