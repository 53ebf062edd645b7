"""The training path on a CUDA device. Skipped where PyTorch sees no GPU (CI machines have none); run
``python -m pytest -q tests/test_cuda.py`` on a machine with one.

Every registered model goes through the same steps (no per-model branches): two epochs of the ordinary
``fit`` loop on the GPU, a checkpoint written from GPU tensors that loads on the CPU with identical weights,
and the CPU copy scoring users like the GPU model up to float32 rounding. The CLI test trains and
re-evaluates a run on the GPU, and the bf16 test runs the mixed-precision branch that only a GPU takes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import make_tiny
from diffrec_cli.config import resolve_settings
from diffrec_cli.data.sparse import dense_rows
from diffrec_cli.models.build import build_model
from diffrec_cli.plugins import get_registry, load_plugins
from diffrec_cli.training.checkpoint import load_checkpoint, save_checkpoint
from diffrec_cli.training.loop import fit

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (PyTorch sees none)")

MODELS = load_plugins().registry.names("model")
TRAIN = {"epochs": 2, "eval_every": 1, "batch_size": 16, "patience": 20}
KEYS = ("recall@10", "recall@20", "ndcg@10", "ndcg@20")


def _build(name, data):
    registry = get_registry()
    settings = dict(registry.get("model", name).cls.test_settings)
    torch.manual_seed(0)
    return registry, *build_model(registry, name, settings, n_users=data.n_users, n_items=data.n_items, data=data)


@pytest.mark.parametrize("name", MODELS)
def test_trains_on_the_gpu_and_its_checkpoint_loads_on_the_cpu(name, tmp_path):
    data = make_tiny()
    registry, model, spec = _build(name, data)
    config = resolve_settings(TRAIN, {}, device="cuda", seed=0, dataset=data.name, model=name).train
    result = fit(model, data, config)

    assert result.epochs_run == (1 if getattr(model, "closed_form", False) else 2)  # closed form: one fit
    assert all(p.device.type == "cuda" for p in model.parameters())
    for split in ("valid", "test"):
        values = [getattr(result, split)[k] for k in KEYS]
        assert all(np.isfinite(v) and 0.0 <= v <= 1.0 for v in values), (split, values)

    model.eval()
    meta = {"model": spec, "dataset": {"name": data.name, "n_users": data.n_users, "n_items": data.n_items}}
    save_checkpoint(tmp_path, model, meta)
    loaded = load_checkpoint(tmp_path, registry, device="cpu").model
    on_gpu, on_cpu = model.state_dict(), loaded.state_dict()
    assert on_gpu.keys() == on_cpu.keys()
    for key in on_gpu:
        assert on_cpu[key].device.type == "cpu"
        assert torch.equal(on_gpu[key].cpu(), on_cpu[key]), key

    rows = np.arange(data.n_users)
    users, x = torch.from_numpy(rows), dense_rows(data.train, rows)
    gpu_scores = model.scores(users.cuda(), x.cuda()).cpu()
    cpu_scores = loaded.scores(users, x)
    assert gpu_scores.shape == cpu_scores.shape == (data.n_users, data.n_items)
    # the same weights on two devices: only float32 rounding (different kernels, summation order) may differ
    scale = cpu_scores.abs().max().item() + 1e-12
    torch.testing.assert_close(gpu_scores, cpu_scores, rtol=1e-4, atol=1e-4 * scale)


def test_cli_trains_and_evaluates_on_the_gpu(tiny_home):
    from typer.testing import CliRunner

    from diffrec_cli.cli.app import app

    env = {"DIFFREC_HOME": str(tiny_home.root), "DIFFREC_LOAD_PLUGINS": ""}
    sets = [a for key, value in {"dims": "[32]", "steps": "5", "emb_size": "4", "epochs": "2",
                                 "eval_every": "1", "batch_size": "16"}.items() for a in ("--set", f"{key}={value}")]
    trained = CliRunner(env=env).invoke(app, ["train", "--dataset", "tiny", "--device", "cuda", "--quiet", *sets])
    assert trained.exit_code == 0, trained.output
    (run,) = list(tiny_home.runs_dir.iterdir())
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["device"] == "cuda"
    final = json.loads((run / "final.json").read_text())
    again = CliRunner(env=env).invoke(app, ["eval", run.name, "--json", "--device", "cuda"])
    assert again.exit_code == 0, again.output
    metrics = json.loads(again.stdout)
    for split in ("valid", "test"):
        for key in KEYS:
            assert metrics[split][key] == pytest.approx(final[split][key], rel=1e-6, abs=1e-9), (split, key)


def test_bf16_training_on_the_gpu_learns_like_fp32():
    """The autocast branch (``precision = "bf16"``) is only taken on hardware with bf16: training under it must
    learn about as well as float32 (evaluation itself always runs in float32)."""
    if not torch.cuda.is_bf16_supported():
        pytest.skip("this GPU has no bf16")
    data = make_tiny()
    recall = {}
    for precision in ("fp32", "bf16"):
        _, model, _ = _build("diffrec", data)
        config = resolve_settings({**TRAIN, "epochs": 20}, {}, device="cuda", precision=precision, seed=0,
                                  dataset=data.name, model="diffrec").train
        recall[precision] = fit(model, data, config).valid["recall@10"]
    # three item blocks of ten and users prefer one: chance is 0.4 (10 of 25 unseen items); a model that
    # learned ranks its block's 5 unseen items first
    assert recall["bf16"] > 0.6 and recall["bf16"] >= recall["fp32"] - 0.1, recall
