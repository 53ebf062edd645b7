"""Each baseline's defining computation on a tiny hand-checkable case."""

import math

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from diffrec_baselines.autoencoders import CDAE, MultiDAEPlusPlus, MultiVAE, gaussian_kl, multinomial_nll
from diffrec_baselines.graph import MF, LightGCN, normalized_adjacency
from diffrec_baselines.ials import IALS
from diffrec_baselines.neighbourhood import EASE, ItemKNN, RP3beta, cosine_topk, ease_weights
from diffrec_baselines.popularity import TopPop
from diffrec_baselines.slim import SLIM
from diffrec_baselines.pairwise import PairBatch, bpr_loss, is_observed, pair_keys, sample_negatives
from diffrec_cli.config import resolve_settings
from diffrec_cli.data.sparse import InteractionData, csr_from_pairs
from diffrec_cli.diffusion.schedules import LinearVarianceSchedule
from diffrec_cli.models.base import Batch
from diffrec_cli.training.loop import fit


def _random_matrix(n_users=30, n_items=12, density=0.3, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    dense[np.arange(n_users), rng.integers(0, n_items, n_users)] = 1.0  # nobody is empty
    return sp.csr_matrix(dense)


# ----- EASE --------------------------------------------------------------------------------------------
def test_ease_closed_form_has_zero_diagonal_and_solves_each_column():
    x = _random_matrix().toarray().astype(np.float64)
    gram, reg = x.T @ x, 3.0
    b = ease_weights(gram, reg)
    np.testing.assert_array_equal(np.diag(b), 0.0)
    # Independently: column j is the ridge regression of item j on the other items (B_jj = 0 constraint).
    n = gram.shape[0]
    for j in range(n):
        others = np.arange(n) != j
        expected = np.linalg.solve(gram[np.ix_(others, others)] + reg * np.eye(n - 1), gram[others, j])
        np.testing.assert_allclose(b[others, j], expected, rtol=1e-8, atol=1e-10)


def test_ease_model_fits_from_the_sparse_matrix_and_scores_rows():
    train = _random_matrix()
    model = EASE(train.shape[0], train.shape[1], reg=3.0)
    model.fit_closed_form(train)
    expected = ease_weights(train.toarray().T.astype(np.float64) @ train.toarray(), 3.0)
    np.testing.assert_allclose(model.weight.numpy(), expected, rtol=1e-5, atol=1e-6)
    x = torch.from_numpy(train[:4].toarray())
    np.testing.assert_allclose(model.scores(torch.arange(4), x).numpy(), x.numpy() @ expected, rtol=1e-4, atol=1e-5)
    assert model.parameter_count() == train.shape[1] ** 2


# ----- LightGCN ----------------------------------------------------------------------------------------
def _two_user_graph():
    # user 0: items 0, 1; user 1: items 1, 2  -> degrees u0 2, u1 2, i0 1, i1 2, i2 1
    return sp.csr_matrix(np.array([[1, 1, 0], [0, 1, 1]], dtype=np.float32))


def test_lightgcn_normalised_adjacency_by_hand():
    train = _two_user_graph()
    coo = train.tocoo()
    adj = normalized_adjacency(coo.row, coo.col, 2, 3).toarray()
    # node order: u0, u1, i0, i1, i2
    expected = np.zeros((5, 5))
    for u, i, du, di in [(0, 0, 2, 1), (0, 1, 2, 2), (1, 1, 2, 2), (1, 2, 2, 1)]:
        expected[u, 2 + i] = expected[2 + i, u] = 1.0 / math.sqrt(du * di)
    np.testing.assert_allclose(adj, expected, rtol=1e-6)
    assert adj[0, 2] == pytest.approx(1 / math.sqrt(2)) and adj[0, 3] == pytest.approx(0.5)


def test_lightgcn_propagation_is_the_mean_of_layer_outputs():
    train = _two_user_graph()
    model = LightGCN(2, 3, emb_size=4, layers=2, reg=0.0)
    model.set_graph(train)
    coo = train.tocoo()
    a_hat = torch.from_numpy(normalized_adjacency(coo.row, coo.col, 2, 3).toarray())
    e0 = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach()
    expected = (e0 + a_hat @ e0 + a_hat @ a_hat @ e0) / 3
    users, items = model.final_embeddings()
    torch.testing.assert_close(torch.cat([users, items]).detach(), expected, rtol=1e-5, atol=1e-6)
    # gradients through the sparse propagation equal the dense ones
    out = torch.cat(model.final_embeddings()).pow(2).sum()
    out.backward()
    leaf = torch.cat([model.user_emb.weight, model.item_emb.weight]).detach().requires_grad_(True)
    ((leaf + a_hat @ leaf + a_hat @ a_hat @ leaf) / 3).pow(2).sum().backward()
    torch.testing.assert_close(torch.cat([model.user_emb.weight.grad, model.item_emb.weight.grad]), leaf.grad,
                               rtol=1e-4, atol=1e-6)
    scores = model.scores(torch.tensor([0, 1]), torch.empty(0))
    torch.testing.assert_close(scores, expected[:2] @ expected[2:].T, rtol=1e-5, atol=1e-6)


def test_lightgcn_keeps_its_graph_in_the_state_dict():
    train = _random_matrix()
    model = LightGCN(train.shape[0], train.shape[1], emb_size=4)
    model.set_graph(train)
    clone = LightGCN(train.shape[0], train.shape[1], emb_size=4)
    clone.load_state_dict(model.state_dict())
    assert clone.edges.shape == (train.nnz, 2)
    users = torch.arange(5)
    torch.testing.assert_close(clone.scores(users, torch.empty(0)), model.scores(users, torch.empty(0)))


# ----- BPR and negative sampling ------------------------------------------------------------------------
def test_bpr_loss_sign():
    high, low = torch.tensor([2.0, 1.0]), torch.tensor([0.0, -1.0])
    assert float(bpr_loss(high, low)) < math.log(2) < float(bpr_loss(low, high))
    assert float(bpr_loss(high, high)) == pytest.approx(math.log(2))
    pos = torch.tensor([0.5], requires_grad=True)
    bpr_loss(pos, torch.tensor([0.0])).backward()
    assert float(pos.grad) < 0, "descending the loss must raise the positive item's score"


def test_mf_pair_loss_is_bpr_plus_batch_l2():
    model = MF(2, 3, emb_size=2, reg=0.5)
    with torch.no_grad():
        model.user_emb.weight.copy_(torch.tensor([[1.0, 0.0], [0.0, 1.0]]))
        model.item_emb.weight.copy_(torch.tensor([[2.0, 0.0], [0.0, 0.0], [-1.0, 0.0]]))
    users, pos, neg = torch.tensor([0]), torch.tensor([0]), torch.tensor([2])
    expected = -math.log(1 / (1 + math.exp(-(2.0 - (-1.0))))) + 0.5 * 0.5 * (1.0 + 4.0 + 1.0)
    assert float(model.pair_loss(users, pos, neg).detach()) == pytest.approx(expected, rel=1e-6)


def test_negative_sampling_is_vectorised_and_never_returns_a_positive():
    train = _random_matrix(n_users=50, n_items=20, density=0.6)
    keys = pair_keys(train)
    users = np.repeat(np.arange(50), 40)
    negs = sample_negatives(keys, users, 20, np.random.default_rng(0))
    assert not is_observed(keys, users, negs, 20).any()
    dense = train.toarray()
    assert (dense[users, negs] == 0).all()
    # one epoch of batches covers every interaction once
    model = MF(50, 20, emb_size=4)
    batches = list(model.batches(train, 64, torch.Generator().manual_seed(0), torch.device("cpu")))
    assert all(isinstance(b, PairBatch) for b in batches)
    assert sum(len(b.users) for b in batches) == train.nnz == 64 * (model.steps_per_epoch(train, 64) - 1) + len(batches[-1].users)
    pairs = np.concatenate([(b.users * 20 + b.pos).numpy() for b in batches])
    np.testing.assert_array_equal(np.sort(pairs), keys)


# ----- MultiVAE ------------------------------------------------------------------------------------------
def test_multivae_kl_term_and_annealing():
    assert float(gaussian_kl(torch.zeros(3, 2), torch.zeros(3, 2))) == pytest.approx(0.0)
    mu, logvar = torch.tensor([[1.0, 2.0]]), torch.tensor([[0.0, math.log(4.0)]])
    # ½ Σ (σ² + μ² − 1 − log σ²) = ½ [(1 + 1 − 1 − 0) + (4 + 4 − 1 − log 4)]
    assert float(gaussian_kl(mu, logvar)) == pytest.approx(0.5 * (1 + 7 - math.log(4)), rel=1e-6)
    model = MultiVAE(4, 6, dims=[3, 5], anneal_cap=0.5, anneal_steps=200)
    x = torch.tensor([[1.0, 0, 1, 0, 0, 1], [0, 1, 0, 0, 1, 0]])
    model.train()
    for _ in range(50):
        model.loss(Batch(torch.arange(2), x))
    assert model.kl_weight() == pytest.approx(0.25)
    model.updates = 1000
    assert model.kl_weight() == pytest.approx(0.5)
    assert MultiVAE(4, 6, anneal_cap=0.7, anneal_steps=0).kl_weight() == pytest.approx(0.7)
    # in eval mode the loss is exactly NLL(decoder(mu)) + β·KL(mu, logvar)
    model.eval()
    with torch.no_grad():
        m, lv = model.encode(x)
        expected = multinomial_nll(model.scores(torch.arange(2), x), x) + 0.5 * gaussian_kl(m, lv)
        assert float(model.loss(Batch(torch.arange(2), x))) == pytest.approx(float(expected), rel=1e-6)


# ----- ItemKNN -------------------------------------------------------------------------------------------
def test_itemknn_keeps_k_cosine_neighbours_per_item():
    train = _random_matrix(n_users=40, n_items=15, density=0.4, seed=3)
    k = 4
    model = ItemKNN(40, 15, k=k)
    model.fit_closed_form(train)
    w = model.weight_matrix().numpy()
    assert ((w != 0).sum(axis=0) <= k).all() and ((w != 0).sum(axis=0) == k).sum() >= 10
    np.testing.assert_array_equal(np.diag(w), 0.0)
    x = train.toarray().astype(np.float64)
    norms = np.linalg.norm(x, axis=0)
    cosine = (x.T @ x) / np.outer(norms, norms)
    np.fill_diagonal(cosine, -np.inf)
    for j in range(15):
        kept = set(np.flatnonzero(w[:, j]))
        best = set(np.argsort(-cosine[:, j], kind="stable")[:k])
        assert kept == best, f"item {j}"
        np.testing.assert_allclose(w[list(kept), j], cosine[list(kept), j], rtol=1e-5)
    # scores are Σ over the row's items of their similarity to the target
    rows = torch.from_numpy(train[:3].toarray())
    torch.testing.assert_close(model.scores(torch.arange(3), rows), rows @ torch.from_numpy(w))
    # k beyond the catalogue keeps every other item
    index, _ = cosine_topk(train, 100)
    assert index.shape == (15, 14)


# ----- MultiDAE++ and CDAE -------------------------------------------------------------------------------
def test_multidae_plus_plus_uses_diffrec_noise_in_training_only():
    schedule = LinearVarianceSchedule(steps=5, noise_scale=0.5, noise_min=0.1, noise_max=0.2)
    model = MultiDAEPlusPlus(3, 8, schedule=schedule, dims=[4], dropout=0.0)
    alpha_bar = np.cumprod(1 - schedule.betas())
    np.testing.assert_allclose(model.sqrt_alpha_bar.numpy() ** 2, alpha_bar, rtol=1e-5)
    x = torch.ones(4000, 8)
    torch.manual_seed(0)
    noisy = model.noisy(x)
    # mean and variance of x_t over t ~ U{1..T}: E[√ᾱ_t], E[1 − ᾱ_t] + Var[√ᾱ_t]
    assert float(noisy.mean()) == pytest.approx(np.sqrt(alpha_bar).mean(), abs=0.01)
    model.eval()
    torch.testing.assert_close(model.scores(torch.arange(2), x[:2]), model(x[:2]))


def test_cdae_adds_a_user_vector():
    model = CDAE(3, 5, hidden=4, dropout=0.0, activation="relu")
    x = torch.tensor([[1.0, 0, 1, 0, 0]] * 2)
    model.eval()
    with torch.no_grad():
        model.user_emb.weight[1] += 5.0
    s = model.scores(torch.tensor([0, 1]), x)
    assert not torch.allclose(s[0], s[1]), "same row, different users: the user vector must matter"
    h = torch.relu(model.encoder[0](x[:1]) + model.user_emb.weight[:1])
    torch.testing.assert_close(s[:1], model.decoder[0](h))


# ----- reweighting reaches every interaction-vector model ----------------------------------------------
class _Halves:
    """Older half of each user's history weighs 0.25, the newer half 1."""

    config: dict = {}

    def weights(self, position, length):
        return np.where(position < length / 2, 0.25, 1.0).astype(np.float32)


def _chrono_data() -> InteractionData:
    rng = np.random.default_rng(1)
    n_users, n_items = 24, 16
    tr_u, tr_i, va_u, va_i, te_u, te_i = [], [], [], [], [], []
    for u in range(n_users):
        items = rng.choice(n_items, 8, replace=False)
        tr_u += [u] * 6; tr_i += list(items[:6]); va_u.append(u); va_i.append(items[6]); te_u.append(u); te_i.append(items[7])
    shape = (n_users, n_items)
    # chronological position of each training entry = its index within the user's draw order
    pos = np.tile(np.arange(6), n_users) + 1
    train = csr_from_pairs(np.array(tr_u), np.array(tr_i), shape, pos.astype(np.float32))
    order = (train.data - 1).astype(np.int32)
    train.data[:] = 1.0
    return InteractionData("chrono", train, csr_from_pairs(np.array(va_u), np.array(va_i), shape),
                           csr_from_pairs(np.array(te_u), np.array(te_i), shape),
                           np.array([f"u{i}" for i in range(n_users)]), np.array([f"i{i}" for i in range(n_items)]),
                           train_order=order)


@pytest.mark.parametrize("cls,kwargs", [(EASE, {"reg": 5.0}), (ItemKNN, {"k": 3}), (MultiVAE, {"dims": [4, 8]}),
                                        (CDAE, {"hidden": 4}), (TopPop, {}), (RP3beta, {"k": 3}),
                                        (SLIM, {"k": 3, "alpha": 0.01}), (IALS, {"factors": 2})])
def test_reweighted_rows_reach_the_model(cls, kwargs):
    data = _chrono_data()
    model = cls(data.n_users, data.n_items, **kwargs)
    seen: list[np.ndarray] = []
    if model.closed_form:
        original = model.fit_closed_form
        model.fit_closed_form = lambda m: (seen.append(m.data.copy()), original(m))[1]
    else:
        original_loss = model.loss
        model.loss = lambda b: (seen.append(b.x[b.x != 0].numpy().copy()), original_loss(b))[1]
    scored: list[np.ndarray] = []
    original_scores = model.scores
    model.scores = lambda u, x: (scored.append(x[x != 0].numpy().copy()), original_scores(u, x))[1]
    config = resolve_settings({"epochs": 1, "eval_every": 1, "batch_size": 8, "device": "cpu"}, {}).train
    model.reweighting = _Halves()
    fit(model, data, config)
    for values in (np.concatenate(seen), np.concatenate(scored)):
        assert set(np.unique(values).tolist()) == {0.25, 1.0}, "training and scoring both read the weights"
    if cls is EASE:
        weighted = data.train.copy()
        weighted.data = _Halves().weights(data.train_order, np.repeat(np.diff(weighted.indptr), np.diff(weighted.indptr)))
        wd = weighted.toarray().astype(np.float64)
        np.testing.assert_allclose(model.weight.numpy(), ease_weights(wd.T @ wd, 5.0), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("weight_gram", [True, False])
def test_ease_weight_gram_chooses_where_the_time_weights_go(weight_gram):
    # 3 users x 4 items by hand; the chronological weights 0.25 (older) / 1.0 (newest) per user.
    pattern = np.array([[1, 1, 0, 0], [0, 1, 1, 1], [1, 0, 1, 0]], dtype=np.float64)
    weighted = np.array([[0.25, 1, 0, 0], [0, 0.25, 0.25, 1], [1, 0, 0.25, 0]], dtype=np.float64)
    reg = 2.0
    model = EASE(3, 4, reg=reg, weight_gram=weight_gram)
    given = sp.csr_matrix(weighted.astype(np.float32))
    model.fit_closed_form(given)
    np.testing.assert_array_equal(given.toarray(), weighted.astype(np.float32))  # the trainer's matrix is untouched
    x = weighted if weight_gram else pattern
    p = np.linalg.inv(x.T @ x + reg * np.eye(4))
    expected = np.eye(4) - p / np.diag(p)[None, :]  # B = I − P·diag(1/diag P): zero diagonal
    np.testing.assert_allclose(model.weight.numpy(), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.scores(torch.arange(3), torch.from_numpy(weighted).float()).numpy(),
                               weighted @ expected, rtol=1e-5, atol=1e-6)


def test_ease_weight_gram_settings_differ_only_with_reweighting():
    pattern = _random_matrix()
    weighted = pattern.copy()
    weighted.data = np.linspace(0.1, 1.0, weighted.nnz).astype(np.float32)
    fitted = {}
    for weight_gram in (True, False):
        for name, matrix in (("pattern", pattern), ("weighted", weighted)):
            model = EASE(*pattern.shape, reg=3.0, weight_gram=weight_gram)
            model.fit_closed_form(matrix)
            fitted[weight_gram, name] = model.weight.numpy()
    np.testing.assert_array_equal(fitted[True, "pattern"], fitted[False, "pattern"])
    np.testing.assert_array_equal(fitted[False, "weighted"], fitted[False, "pattern"])
    assert np.abs(fitted[True, "weighted"] - fitted[False, "weighted"]).max() > 1e-2


def test_itemknn_blocks_and_sparse_scoring_equal_the_dense_reference():
    train = _random_matrix(n_users=50, n_items=23, density=0.3, seed=5)
    train.data = np.random.default_rng(5).uniform(0.1, 1.0, train.nnz).astype(np.float32)  # no ties
    k, shrink = 4, 2.0
    x = train.toarray().astype(np.float64)
    norms = np.linalg.norm(x, axis=0)
    cosine = (x.T @ x) / (np.outer(norms, norms) + shrink)
    np.fill_diagonal(cosine, -np.inf)
    dense = np.zeros((23, 23))
    for j in range(23):
        best = np.argsort(-cosine[:, j])[:k]
        dense[best, j] = np.maximum(cosine[best, j], 0.0)
    index, value = cosine_topk(train, k, shrink, chunk_entries=23 * 5)  # five target columns per block
    model = ItemKNN(50, 23, k=k, shrink=shrink)
    model.neighbours.copy_(torch.from_numpy(index))
    model.similarity.data.copy_(torch.from_numpy(value))
    model.weight_matrix = None  # scoring must not build the dense W
    rows = torch.from_numpy(x[:7]).float()
    np.testing.assert_allclose(model.scores(torch.arange(7), rows).numpy(), x[:7] @ dense, rtol=1e-5, atol=1e-6)
    refit = ItemKNN(50, 23, k=k, shrink=0.0)  # the cached sparse Wᵀ follows the weights when they change
    refit.fit_closed_form(train)
    first = refit.scores(torch.arange(7), rows)
    refit.load_state_dict(model.state_dict())
    torch.testing.assert_close(refit.scores(torch.arange(7), rows), model.scores(torch.arange(7), rows))
    assert not torch.allclose(first, refit.scores(torch.arange(7), rows))


def test_itemknn_and_rp3beta_budget_no_square_matrix_at_amazon_book_size():
    with torch.device("meta"):  # sizes only
        for cls in (ItemKNN, RP3beta):
            assert cls(108_822, 94_949, k=100).fit_memory(3_146_256) < 2 * 2**30  # Amazon-book: < 2 GiB
        ease = EASE(108_822, 94_949)
    assert ease.fit_memory(3_146_256) + ease.weight.numel() * 4 > 24 * 2**30  # EASE cannot
