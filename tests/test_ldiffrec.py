"""L-DiffRec (paper §3.5): k-means, cluster bookkeeping, Eq. 15's loss schedule, LT-DiffRec, checkpoints."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from conftest import make_tiny
from diffrec_cli.cli.app import app
from diffrec_cli.config import resolve_settings
from diffrec_cli.data.sparse import InteractionData, csr_from_pairs, dense_rows
from diffrec_cli.data.store import DataHome
from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Batch
from diffrec_cli.models.build import build_model
from diffrec_cli.models.kmeans import kmeans, svd_item_factors
from diffrec_cli.models.ldiffrec import proportional_sizes
from diffrec_cli.plugins import get_registry
from diffrec_cli.serve import evaluate_served, load_served
from diffrec_cli.training.checkpoint import CheckpointMeta, DatasetRef, load_checkpoint, save_checkpoint
from diffrec_cli.training.job import train

SMALL = {"latent_size": 12, "denoiser_dims": [16], "emb_size": 4, "steps": 5}
ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


def build(data, **settings):
    torch.manual_seed(0)
    model, spec = build_model(get_registry(), "ldiffrec", {**SMALL, **settings}, n_users=data.n_users,
                              n_items=data.n_items, data=data)
    return model, spec


def blobs(seed=0):
    """Three tight, far-apart groups of 2-d points, rows shuffled; returns points and the true group."""
    rng = np.random.default_rng(seed)
    truth = rng.permutation(np.repeat([0, 1, 2], [7, 5, 9]))
    centers = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    return centers[truth] + rng.normal(scale=0.1, size=(len(truth), 2)), truth


# ----- k-means ---------------------------------------------------------------------------------------
def test_kmeans_assigns_every_item_once_and_is_repeatable():
    points, truth = blobs()
    labels, centers = kmeans(points, 3, seed=5)
    assert labels.shape == (21,) and centers.shape == (3, 2)
    assert sorted(np.bincount(labels).tolist()) == [5, 7, 9]  # every point in exactly one non-empty cluster
    # the three blobs are recovered, numbered by first appearance
    first = {}
    expected = np.array([first.setdefault(t, len(first)) for t in truth])
    np.testing.assert_array_equal(labels, expected)
    # the same seed gives the same clustering whatever the global random state
    torch.manual_seed(123)
    again, again_centers = kmeans(points, 3, seed=5)
    np.testing.assert_array_equal(again, labels)
    np.testing.assert_array_equal(again_centers, centers)
    # overlapping data: still one label per point, still repeatable
    noise = np.random.default_rng(1).normal(size=(200, 8))
    a, _ = kmeans(noise, 4, seed=3)
    b, _ = kmeans(noise, 4, seed=3)
    np.testing.assert_array_equal(a, b)
    assert set(a.tolist()) == {0, 1, 2, 3}
    with pytest.raises(DiffrecError):
        kmeans(points, 22)


def test_kmeans_with_repeated_points_never_leaves_a_cluster_empty():
    repeated = np.zeros((6, 3))
    with pytest.raises(DiffrecError, match="only 1 of them differ"):
        kmeans(repeated, 2)
    repeated[4:] = 1.0  # two distinct points, each repeated: exactly the two groups
    labels, _ = kmeans(repeated, 2, seed=0)
    assert labels.tolist() == [0, 0, 0, 0, 1, 1]


def test_svd_item_factors_are_seeded_and_separate_blocks():
    data = make_tiny()  # users like one of three 10-item blocks
    f1 = svd_item_factors(data.train, 8, seed=0)
    np.testing.assert_array_equal(f1, svd_item_factors(data.train, 8, seed=0))
    labels, _ = kmeans(f1, 3, seed=0)
    np.testing.assert_array_equal(labels, np.repeat([0, 1, 2], 10))


# ----- cluster bookkeeping ---------------------------------------------------------------------------
def test_latent_sizes_are_proportional_and_sum_to_the_latent_size():
    assert proportional_sizes(300, [1786, 1024]) == [190, 110]  # ⌊1786/2810·300⌋ = 190, the rest 110
    assert proportional_sizes(300, [1118, 1335, 357]) == [119, 142, 39]
    assert proportional_sizes(10, [1, 1, 1, 100]) == [1, 1, 1, 7]  # at least 1 each, the last the remainder
    with pytest.raises(DiffrecError):
        proportional_sizes(2, [1, 1, 1])
    model, _ = build(make_tiny(), n_clusters=3, encoder_dims=[20])
    assert model.cluster_sizes == [10, 10, 10] and model.latent_sizes == [4, 4, 4]
    assert sum(model.latent_sizes) == 12
    x = dense_rows(make_tiny().train, np.arange(5))
    mu, logvar = model.encode(model.to_cluster_order(x))
    assert mu.shape == logvar.shape == (5, 12)
    assert [e.weight.shape[1] for e in model.encoder_inputs] == [6, 6, 8]  # hidden 20 split 6/6/8


def test_one_cluster_is_no_clustering():
    data = make_tiny()
    # C = 1 needs no data at all: no embeddings, no training matrix
    torch.manual_seed(0)
    model, spec = build_model(get_registry(), "ldiffrec", {**SMALL, "n_clusters": 1}, n_users=data.n_users,
                              n_items=data.n_items)
    assert spec.config["cluster_sizes"] == [data.n_items]
    torch.testing.assert_close(model.item_order, torch.arange(data.n_items), rtol=0, atol=0)
    assert len(model.encoder_inputs) == 1 and model.latent_sizes == [12]
    model.eval()
    x = dense_rows(data.train, np.arange(data.n_users))
    # the plain VAE + latent diffusion, written out without any cluster bookkeeping
    h = model.encoders[0](x @ model.encoder_inputs[0].weight + model.encoder_inputs[0].bias)
    expected = model.decoders[0](model.diffusion.denoise(model.denoiser, h[:, :12]))
    torch.testing.assert_close(model.scores(None, x), expected, rtol=1e-5, atol=1e-5)


def hand_clustered_data():
    """6 items whose embeddings put items {0, 3, 4} in one cluster and {1, 2, 5} in the other."""
    emb = np.array([[0, 0], [9, 9], [9, 8], [0, 1], [1, 0], [8, 9]], dtype=np.float32)
    users = np.array([0, 0, 1, 1, 2, 2, 3])
    items = np.array([3, 1, 4, 5, 0, 2, 3])
    shape = (4, 6)
    train = csr_from_pairs(users, items, shape)
    other = csr_from_pairs(np.arange(4), np.array([0, 1, 2, 3]), shape)
    return InteractionData("hand", train, other, other, np.arange(4), np.arange(6), item_emb=emb)


def test_scores_map_back_to_item_ids_after_the_cluster_permutation():
    data = hand_clustered_data()
    model, spec = build(data, n_clusters=2, latent_size=4)
    assert model.cluster_source.startswith("k-means on the dataset's item embeddings")
    assert model.cluster_sizes == [3, 3]
    assert model.item_order.tolist() == [0, 3, 4, 1, 2, 5]  # cluster 0's items, then cluster 1's
    np.testing.assert_array_equal(model.item_clusters(), [0, 1, 1, 0, 0, 1])
    model.eval()
    with torch.no_grad():
        # decoder output (cluster order) = 10, 20, …, 60 whatever the latent
        model.decoders[0][0].weight.zero_()
        model.decoders[0][0].bias.copy_(torch.tensor([10.0, 20, 30, 40, 50, 60]))
        # encoder inputs: local row j of cluster c's first layer is 100·c + j in every column
        for c, layer in enumerate(model.encoder_inputs):
            layer.weight.copy_((100.0 * c + torch.arange(3.0))[:, None].expand_as(layer.weight))
            layer.bias.zero_()
    x = torch.zeros(2, 6)
    x[0, 3] = 1.0  # item 3: cluster 0, local position 1
    x[1, 5] = 2.0  # item 5: cluster 1, local position 2, with weight 2
    scores = model.scores(None, x)
    expected = {0: 10.0, 3: 20.0, 4: 30.0, 1: 40.0, 2: 50.0, 5: 60.0}  # item id -> its decoder unit
    assert scores[0].tolist() == [expected[i] for i in range(6)]
    first = [layer.forward_sparse(*args) for layer, args in zip(
        model.encoder_inputs, [(torch.tensor([1]), torch.tensor([0, 1]), torch.tensor([1.0])),
                               (torch.tensor([2]), torch.tensor([0, 0]), torch.tensor([2.0]))])]
    assert first[0][:, 0].tolist() == [1.0, 0.0] and first[1][:, 0].tolist() == [0.0, 204.0]
    rows, position, cluster, values = model.split_rows(x)
    assert position.tolist() == [1, 5] and cluster.tolist() == [0, 1] and values.tolist() == [1.0, 2.0]
    # the dense path through the permuted rows agrees with the sparse one
    mu_dense, _ = model.encode(model.to_cluster_order(x))
    mu_sparse, _ = model.encode_sparse(rows, position, cluster, values, 2)
    torch.testing.assert_close(mu_dense, mu_sparse)


def test_embeddings_source_and_cluster_size_rules(tmp_path):
    data = hand_clustered_data()
    assert build(data, embeddings="svd")[0].cluster_source.startswith("k-means on SVD item factors")
    path = tmp_path / "emb.npy"
    np.save(path, data.item_emb[::-1].copy())  # reversed rows: items {1, 2, 5} now come first, same groups
    model, _ = build(data, embeddings=str(path))
    assert model.cluster_source.startswith("k-means on item embeddings from")
    assert model.item_order.tolist() == [0, 3, 4, 1, 2, 5] or model.item_order.tolist() == [1, 2, 5, 0, 3, 4]
    data.item_emb = None
    assert build(data)[0].cluster_source.startswith("k-means on SVD")  # auto falls back to the SVD
    with pytest.raises(DiffrecError, match="derived from the clustering"):
        build(data, cluster_sizes=[3, 3])
    with pytest.raises(DiffrecError, match="needs the dataset"):
        build_model(get_registry(), "ldiffrec", {**SMALL, "n_clusters": 2}, n_users=4, n_items=6)


# ----- training schedule (Eq. 15) --------------------------------------------------------------------
def test_lambda_gamma_schedules_and_loss_combination():
    data = make_tiny()
    model, _ = build(data, sampling="uniform")
    assert model.kl_weight() == 0.0
    model.batches_seen = 30
    assert model.kl_weight() == pytest.approx(0.15)  # 30/200
    model.batches_seen = 61
    assert model.kl_weight() == pytest.approx(0.3)  # capped once 60 batches are done
    model.on_epoch_start(1)
    assert model.diffusion_lambda() == pytest.approx(0.03)
    model.on_epoch_start(251)
    assert model.diffusion_lambda() == pytest.approx(0.015)  # (1 − 250/500)·0.03
    model.on_epoch_start(420)
    assert model.diffusion_lambda() == pytest.approx(0.005)  # the floor
    x = dense_rows(data.train, np.arange(data.n_users))
    batch = Batch(torch.arange(data.n_users), x)
    for weighting in (True, False):
        model.diffusion.step_weighting = weighting
        model.batches_seen, model.epochs_done = 40, 100
        lam, gamma = 0.03 * 0.8, 0.2
        torch.manual_seed(3)
        terms = model.losses(x)
        torch.manual_seed(3)
        total = model.loss(batch)
        vae = terms["nll"] + gamma * terms["kl"]
        expected = lam * terms["diffusion"] + vae if weighting else terms["diffusion"] + lam * vae
        torch.testing.assert_close(total, expected)
        assert model.batches_seen == 41
    # the multinomial term is −Σ x·log softmax(decoder logits), averaged over users
    assert float(terms["nll"].detach()) > 0 and float(terms["kl"].detach()) >= 0


def test_optimizer_gives_the_denoiser_its_own_learning_rate():
    model, _ = build(make_tiny(), denoiser_lr=5e-4)
    groups = model.make_optimizer(1e-3, 0.0).param_groups
    assert [g["lr"] for g in groups] == [1e-3, 5e-4]
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # every parameter exactly once
    assert {id(p) for p in groups[1]["params"]} == {id(p) for p in model.denoiser.parameters()}
    assert model.make_optimizer(1e-3, 0.0).param_groups[1]["lr"] == 5e-4
    assert build(make_tiny(), denoiser_lr=0.0)[0].make_optimizer(2e-3, 0.0).param_groups[1]["lr"] == 2e-3


# ----- checkpoints, LT-DiffRec, CLI ------------------------------------------------------------------
def test_checkpoint_round_trip_restores_the_clustering_without_the_data(tmp_path):
    data = hand_clustered_data()
    model, spec = build(data, n_clusters=2, latent_size=4, decoder_dims=[6])
    model.eval()
    x = dense_rows(data.train, np.arange(4))
    save_checkpoint(tmp_path, model, CheckpointMeta(spec, DatasetRef("hand", n_users=4, n_items=6)))
    loaded = load_checkpoint(tmp_path, get_registry()).model  # no dataset, no embeddings, no k-means
    assert loaded.cluster_source == "restored from a checkpoint"
    assert loaded.item_order.tolist() == [0, 3, 4, 1, 2, 5] and loaded.cluster_sizes == [3, 3]
    assert torch.equal(loaded.scores(None, x), model.scores(None, x))


def ordered_home(tmp_path) -> DataHome:
    """A data home holding the tiny data with a stored chronological order (users' rows as listed)."""
    data = make_tiny()
    starts = np.repeat(data.train.indptr[:-1], np.diff(data.train.indptr))
    data.train_order = (np.arange(data.train.nnz) - starts).astype(np.int32)
    data.item_emb = svd_item_factors(data.train, 4)
    home = DataHome(tmp_path / "home")
    home.save(data)
    return home


FAST = {**{k: json.dumps(v) for k, v in SMALL.items()}, "epochs": "2", "eval_every": "1", "batch_size": "16"}


def test_lt_diffrec_is_l_diffrec_on_time_weighted_input(tmp_path):
    home = ordered_home(tmp_path)
    registry = get_registry()
    outcomes = {}
    for label, model, sets in (("L+T", "ldiffrec", {"reweighting": "time-linear", "w_min": "0.3"}),
                               ("LT", "ltdiffrec", {"w_min": "0.3"}), ("L", "ldiffrec", {})):
        torch.manual_seed(0)
        settings = resolve_settings({}, {**FAST, **sets}, model=model, dataset="tiny", device="cpu")
        outcomes[label] = train(settings, registry, home=home)
    lt, l_t, plain = outcomes["LT"], outcomes["L+T"], outcomes["L"]
    assert lt.spec.config == l_t.spec.config
    for key, value in lt.model.state_dict().items():
        assert torch.equal(value, l_t.model.state_dict()[key]), key
    assert lt.result.test == l_t.result.test
    # its input is the time-weighted matrix (weights 0.3..1), unlike plain L-DiffRec's 1s
    assert lt.inputs.data.min() == pytest.approx(0.3) and lt.inputs.data.max() == 1.0
    assert set(plain.inputs.data.tolist()) == {1.0}
    # checkpoint round trip: the served model reads the same reweighted input and scores the same
    served = load_served(lt.run.id, registry, home=home)
    assert served.meta.model.name == "ltdiffrec" and served.meta.model.reweighting.name == "time-linear"
    np.testing.assert_array_equal(served.inputs.data, lt.inputs.data)
    x = dense_rows(served.inputs, np.arange(5))
    assert torch.equal(served.model.scores(None, x), lt.model.scores(None, x))
    metrics = evaluate_served(served)
    assert metrics["test"]["recall@20"] == pytest.approx(lt.result.test["recall@20"])


def test_cli_trains_describes_evaluates_and_recommends(tmp_path, monkeypatch):
    home = ordered_home(tmp_path)
    monkeypatch.setenv("DIFFREC_HOME", str(home.root))
    sets = [a for k, v in FAST.items() for a in ("--set", f"{k}={v}")]
    result = CliRunner().invoke(app, ["train", "--model", "ldiffrec", "--dataset", "tiny", "--no-live",
                                      "--samples", "0", *sets, "--set", "n_clusters=3"])
    assert result.exit_code == 0, result.output
    text = ANSI.sub("", result.output)
    assert "clusters: C = 3, k-means on the dataset's item embeddings (4-d)" in text
    assert "items per cluster [10, 10, 10], latent dims [4, 4, 4] (sum 12)" in text
    (run_dir,) = list(home.runs_dir.iterdir())
    result = CliRunner().invoke(app, ["eval", str(run_dir)])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["recommend", str(run_dir), "--user", "u1", "-k", "3"])
    assert result.exit_code == 0, result.output
    assert len(re.findall(r"\bi\d+\b", ANSI.sub("", result.output))) >= 3
