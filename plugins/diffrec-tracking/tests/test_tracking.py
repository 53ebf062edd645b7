"""Each backend through ``diffrec train``, read back with the backend's own reader: TensorBoard's event
accumulator, MLflow's client, and the records of an offline W&B run."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from diffrec_cli.cli.app import app
from diffrec_cli.data.sparse import InteractionData, csr_from_pairs
from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError
from diffrec_cli.plugins import get_registry, reset_plugins
from diffrec_cli.runs import read_runs
from diffrec_tracking.callbacks import TensorBoardCallback

FAST = ["--set", "dims=[16]", "--set", "steps=4", "--set", "emb_size=4", "--set", "batch_size=16",
        "--set", "eval_every=1", "--epochs", "3", "--samples", "0", "--no-live", "--device", "cpu"]
EPOCHS, STEPS_PER_EPOCH = 3, 2  # 30 users in batches of 16


@pytest.fixture
def home(tmp_path, monkeypatch):
    """DIFFREC_HOME with "blocks": 30 users who each like one of three blocks of 8 of the 24 items."""
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(30), 7)  # seven items each, from the user's block of eight
    items = np.concatenate([rng.permutation(8)[:7] + 8 * (u % 3) for u in range(30)])
    position = np.tile(np.arange(7), 30)
    split = {"train": position < 5, "valid": position == 5, "test": position == 6}
    mats = {name: csr_from_pairs(users[mask], items[mask], (30, 24)) for name, mask in split.items()}
    home = DataHome(tmp_path / "home")
    home.save(InteractionData("blocks", mats["train"], mats["valid"], mats["test"],
                              np.array([f"u{i}" for i in range(30)]), np.array([f"i{i}" for i in range(24)])))
    monkeypatch.setenv("DIFFREC_HOME", str(home.root))
    monkeypatch.delenv("DIFFREC_LOAD_PLUGINS", raising=False)
    reset_plugins()  # the plugins as installed, whatever an earlier test loaded
    yield home
    reset_plugins()


def train(*args: str):
    result = CliRunner().invoke(app, ["train", "--dataset", "blocks", *FAST, *args])
    assert result.exit_code == 0, result.output
    (run,) = read_runs(DataHome(None).runs_dir)
    return run


def test_the_plugin_registers_three_callbacks(home):
    names = get_registry().names("callback")
    assert {"tensorboard", "mlflow", "wandb"} <= set(names)
    assert get_registry().get("callback", "mlflow").plugin == "tracking"


def test_tensorboard_event_files_load_with_the_expected_tags(home):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run = train("--set", "callbacks=[tensorboard]")
    events = EventAccumulator(str(run.path / "tensorboard"), size_guidance={"scalars": 0, "histograms": 0})
    events.Reload()
    tags = events.Tags()
    assert {"train/loss", "train/epoch_loss", "valid/recall@20", "valid/ndcg@10", "test/recall@20",
            "test/hit@100"} <= set(tags["scalars"])
    assert "users" not in " ".join(tags["scalars"])
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    assert [e.value for e in losses] == pytest.approx(run.optimizer_losses, rel=1e-6)
    recall = events.Scalars("valid/recall@20")
    assert [(e.step, e.value) for e in recall] == [
        (e["epoch"], pytest.approx(e["valid"]["recall@20"], rel=1e-6)) for e in run.evaluations]
    (histogram_tag,) = tags["histograms"]
    assert histogram_tag == "train/loss_per_diffusion_step"
    last = events.Histograms(histogram_tag)[-1]
    assert last.step == EPOCHS and list(last.histogram_value.bucket_limit) == [1.5, 2.5, 3.5, 4.5]
    assert all(count > 0 for count in last.histogram_value.bucket)  # a mean loss for every step t


def test_mlflow_file_store_has_params_metric_history_and_checkpoint(home, tmp_path):
    from mlflow.tracking import MlflowClient

    store = (tmp_path / "mlruns").as_uri()
    config = tmp_path / "train.toml"
    config.write_text(f'lr = 0.002\n\n[tracking]\ncallbacks = ["mlflow"]\nmlflow_uri = "{store}"\n'
                      f'mlflow_experiment = "tests"\n')
    run = train("--config", str(config))
    client = MlflowClient(tracking_uri=store)
    experiment = client.get_experiment_by_name("tests")
    (tracked,) = client.search_runs([experiment.experiment_id])
    assert tracked.info.run_name == run.id and tracked.info.status == "FINISHED"
    params = tracked.data.params
    assert (params["lr"], params["steps"], params["dims"], params["model"]) == ("0.002", "4", "[16]", "diffrec")
    history = client.get_metric_history(tracked.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == list(range(1, EPOCHS * STEPS_PER_EPOCH + 1))
    recall = sorted(client.get_metric_history(tracked.info.run_id, "valid/recall_at_20"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in recall] == [(e["epoch"], e["valid"]["recall@20"]) for e in run.evaluations]
    assert tracked.data.metrics["best/test/ndcg_at_20"] == pytest.approx(run.final["test"]["ndcg@20"])
    artifacts = {a.path for a in client.list_artifacts(tracked.info.run_id, "checkpoint")}
    assert artifacts == {"checkpoint/model.safetensors", "checkpoint/checkpoint.json"}
    local = Path(client.download_artifacts(tracked.info.run_id, "checkpoint/model.safetensors", str(tmp_path)))
    assert local.read_bytes() == (run.path / "checkpoint" / "model.safetensors").read_bytes()


def test_mlflow_defaults_to_a_file_store_in_the_data_home(home):
    from mlflow.tracking import MlflowClient

    run = train("--set", "callbacks=mlflow")
    client = MlflowClient(tracking_uri=(home.root / "mlruns").as_uri())
    (tracked,) = client.search_runs([client.get_experiment_by_name("diffrec").experiment_id])
    assert tracked.data.tags["diffrec.run_id"] == run.id


def wandb_records(path: Path) -> list:
    """The protobuf records of a .wandb file: a 7-byte header, then LevelDB-log records in 32 KiB blocks
    (4-byte checksum, 2-byte length, 1-byte type: 1 whole, 2 first, 3 middle, 4 last)."""
    from wandb.proto import wandb_internal_pb2

    data, records, pending, offset = path.read_bytes(), [], b"", 7
    while offset + 7 <= len(data):
        room = 32768 - offset % 32768
        if room < 7:  # a block's tail too short for a header is padding
            offset += room
            continue
        length, kind = struct.unpack("<HB", data[offset + 4:offset + 7])
        pending += data[offset + 7:offset + 7 + length]
        offset += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def item_key(item) -> str:
    """A history or summary key: W&B splits keys with a slash into ``nested_key``."""
    return item.key or "/".join(item.nested_key)


def test_wandb_offline_run_records_config_history_and_summary(home):
    import wandb

    run = train("--set", "callbacks=[wandb]", "--set", "tracking.wandb_project=tests")
    wandb.teardown()  # W&B's service writes the run file in the background; this waits for it (as exit does)
    (offline,) = (run.path / "wandb").glob("offline-run-*/run-*.wandb")
    records = wandb_records(offline)
    (started,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (started.display_name, started.project) == (run.id, "tests")
    config = {item.key: json.loads(item.value_json) for item in started.config.update}
    assert (config["lr"], config["steps"], config["dims"]) == (0.001, 4, [16])
    rows = [{item_key(item): json.loads(item.value_json) for item in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]
    assert sum("train/loss" in row for row in rows) == EPOCHS * STEPS_PER_EPOCH
    recalls = [row["valid/recall@20"] for row in rows if "valid/recall@20" in row]
    assert recalls == [pytest.approx(e["valid"]["recall@20"]) for e in run.evaluations]
    summary = {item_key(item): json.loads(item.value_json) for r in records if r.WhichOneof("record_type") == "summary"
               for item in r.summary.update}
    assert summary["best/valid/recall@20"] == pytest.approx(run.final["valid"]["recall@20"])


def test_unknown_tracking_setting_fails_before_the_run_exists(home):
    result = CliRunner().invoke(app, ["train", "--dataset", "blocks", *FAST, "--set", "callbacks=[tensorboard]",
                                      "--set", "tracking.mlflow_uri=x"])
    assert result.exit_code == 2
    assert ("unknown tracking setting 'mlflow_uri' for callbacks tensorboard (known: tensorboard_dir)"
            in result.output)
    assert read_runs(home.runs_dir) == []


def test_a_missing_backend_is_named_with_its_extra(monkeypatch):
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)
    with pytest.raises(DiffrecError, match=r"needs tensorboard, which is not installed "
                                           r"\(pip install 'diffrec-tracking\[tensorboard\]'\)"):
        TensorBoardCallback()


def test_mlflow_run_is_marked_failed_when_training_ends_by_an_exception(home, tmp_path):
    from mlflow.tracking import MlflowClient

    from diffrec_cli.config import resolve_settings
    from diffrec_cli.training.events import StepFinished
    from diffrec_cli.training.job import train as train_in_python

    def fail_in_second_epoch(event):
        if isinstance(event, StepFinished) and event.epoch == 2:
            raise RuntimeError("disk full")

    store = (tmp_path / "mlruns").as_uri()
    settings = resolve_settings({"model": "diffrec", "dataset": "blocks", "epochs": 3, "device": "cpu"},
                                {"dims": "[16]", "steps": "4", "emb_size": "4", "batch_size": "16",
                                 "callbacks": "[mlflow]", "tracking.mlflow_uri": store})
    with pytest.raises(RuntimeError, match="disk full"):
        train_in_python(settings, get_registry(), home=home, reporter=fail_in_second_epoch)
    client = MlflowClient(tracking_uri=store)
    (tracked,) = client.search_runs([client.get_experiment_by_name("diffrec").experiment_id])
    assert (tracked.info.status, tracked.data.tags["diffrec.error"]) == ("FAILED", "disk full")
    history = client.get_metric_history(tracked.info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [1, 2]  # the first epoch's steps, flushed before closing
