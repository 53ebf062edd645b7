"""The plugin's models through the real CLI: entry point, train on the demo data, reload in a new process."""

import importlib.metadata

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from diffrec_cli.plugins import get_registry
from diffrec_cli.testing import train_and_reload
from diffrec_successors.giffcf import GiffCF

SMALL = {"giffcf": {"embed_dim": 16, "batch_size": 100},
         "bspm": {"factors": 32},
         "cfdiff": {"hidden": 32, "d_model": 4, "heads": 1, "layers": 1, "steps": 5, "lr": 1e-2},
         "diffease": {"reg": 50.0, "blur_time": 0.25}}
EPOCHS = {"giffcf": 2, "bspm": 1, "cfdiff": 6, "diffease": 1}  # CF-Diff's one-value tokens learn slowly


def test_entry_point_registers_every_model():
    (ep,) = [ep for ep in importlib.metadata.entry_points(group="diffrec") if ep.name == "successors"]
    assert ep.value == "diffrec_successors" and ep.dist.name == "diffrec-successors"
    registry = get_registry()
    for name in SMALL:
        assert registry.get("model", name).plugin == "successors"
    assert registry.get("model", "giffcf").cls is GiffCF


@pytest.mark.parametrize("model", sorted(SMALL))
def test_trains_on_demo_and_reloads_in_a_fresh_process(tmp_path, model):
    check = train_and_reload(model, tmp_path / "home", settings=SMALL[model], epochs=EPOCHS[model])
    assert (check.run_dir / "checkpoint" / "model.safetensors").is_file()
    for split in ("valid", "test"):
        for metric in ("recall@20", "ndcg@20"):
            assert check.reloaded[split][metric] == pytest.approx(check.final[split][metric], abs=1e-6)
    assert check.final["test"]["recall@20"] > 0.04  # chance is about 20/900


def test_giffcf_with_time_linear_weights(tmp_path):
    check = train_and_reload("giffcf", tmp_path / "home",
                             settings={**SMALL["giffcf"], "reweighting": "time-linear", "w_min": 0.1})
    assert check.reloaded["test"]["recall@20"] == pytest.approx(check.final["test"]["recall@20"], abs=1e-6)


def test_giffcf_graph_follows_the_weights():
    weighted = sp.csr_matrix(np.array([[0.5, 1, 0], [0, 1, 0.25]], dtype=np.float32))
    model = GiffCF(2, 3, embed_dim=4)
    model.prepare(weighted)
    w = weighted.toarray().astype(np.float64)
    du, di = w.sum(axis=1), w.sum(axis=0)
    r = du[:, None] ** -0.25 * w * di[None, :] ** -0.5
    gram = r.T @ r
    np.testing.assert_allclose(model.graph.numpy(), gram / np.linalg.eigvalsh(gram)[-1], rtol=1e-5)
    assert not torch.equal(model.graph, GiffCF(2, 3, embed_dim=4).graph)
