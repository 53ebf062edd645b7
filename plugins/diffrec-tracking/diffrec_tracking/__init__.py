"""diffrec-tracking: training callbacks that send a run's settings, losses, metrics and checkpoint to
TensorBoard, MLflow or Weights & Biases. Turn one on with ``--set callbacks=[tensorboard]`` or a
``[tracking]`` table; each backend is an optional extra and is imported only when a training starts."""

from diffrec_cli.hookspecs import hookimpl

from diffrec_tracking.callbacks import MLflowCallback, TensorBoardCallback, WandbCallback

__version__ = "0.1.0"


@hookimpl
def register_callbacks(register):
    register(TensorBoardCallback, name="tensorboard")
    register(MLflowCallback, name="mlflow")
    register(WandbCallback, name="wandb")
