"""EASE at scale: in-place float32 solves, a λ grid from one shared eigendecomposition, memory refused early."""

import re
import tracemalloc

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import load_file

from diffrec_baselines import ease
from diffrec_baselines.ease import EASE, ease_weights
from diffrec_cli import memory
from diffrec_cli.cli.app import app
from diffrec_cli.config import resolve_settings
from diffrec_cli.data.demo import build_demo
from diffrec_cli.data.sparse import InteractionData, csr_from_pairs
from diffrec_cli.errors import DiffrecError
from diffrec_cli.training.budget import check_training_fits
from typer.testing import CliRunner
from diffrec_cli.data.reweighting import TimeLinearReweighting, reweighted_matrix
from diffrec_cli.data.store import DataHome
from diffrec_cli.models.build import build_model
from diffrec_cli.training.shared_fit import SharedFits
from diffrec_cli.plugins import get_registry, reset_plugins
from diffrec_cli.tuning import SearchSpace, tune


def _matrix(n_users=300, n_items=400, density=0.05, seed=0) -> sp.csr_matrix:
    rng = np.random.default_rng(seed)
    dense = (rng.random((n_users, n_items)) < density).astype(np.float32)
    dense[rng.integers(0, n_users, n_items), np.arange(n_items)] = 1.0  # every item seen
    return sp.csr_matrix(dense)


def _reference(x: sp.csr_matrix, reg: float) -> np.ndarray:
    d = x.toarray().astype(np.float64)
    return ease_weights(d.T @ d, reg)


def _peak_bytes(call) -> int:
    tracemalloc.start()
    try:
        call()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("in_place", [True, False], ids=["scipy-in-place", "torch-copies"])
def test_float32_fit_works_in_the_weight_itself(monkeypatch, in_place):
    monkeypatch.setattr(ease, "CHUNK", 40)
    monkeypatch.setattr(ease, "DUAL_MAX_USERS_PER_ITEM", 0.0)  # the items' side, whatever the shape
    if not in_place:  # as if the catalogue were past the size scipy's LAPACK handles
        monkeypatch.setattr(ease, "IN_PLACE_MAX_BYTES", 0)
    x = _matrix(n_users=200, n_items=1000, density=0.01)
    model = EASE(*x.shape, reg=20.0)
    storage = model.weight.data.data_ptr()
    peak = _peak_bytes(lambda: model.fit_closed_form(x))  # numpy's temporaries (torch's copies are not traced)
    n2 = x.shape[1] ** 2 * 4
    assert peak < 0.15 * n2, f"a fit allocated {peak / n2:.2f} n² float32 matrices beside the weight"
    if in_place:
        assert model.fit_memory(x.nnz) < 0.5 * n2  # blocks and sparse copies only
    else:
        assert model.fit_memory(x.nnz) >= 2 * n2  # torch LAPACK's two working copies are in the estimate
    assert model.weight.data.data_ptr() == storage and model.weight.dtype == torch.float32
    np.testing.assert_allclose(model.weight.numpy(), _reference(x, 20.0), atol=1e-5)
    np.testing.assert_array_equal(np.diag(model.weight.numpy()), 0.0)


def test_in_place_limit_keeps_paper_sized_catalogues_off_scipys_lapack():
    assert ease.solves_in_place(18_000, 4) and ease.solves_in_place(14_000, 8)
    assert not ease.solves_in_place(24_000, 4) and not ease.solves_in_place(20_000, 8)


@pytest.mark.parametrize("users", [300, 600], ids=["users-side", "items-side"])
def test_float64_setting_solves_in_double_and_keeps_float32(users):
    x = _matrix(n_users=users, seed=1)
    assert ease.solves_dual(*x.shape) == (users == 300)
    model = EASE(*x.shape, reg=5.0, float64=True)
    model.fit_closed_form(x)
    assert model.weight.dtype == torch.float32
    np.testing.assert_allclose(model.weight.numpy(), _reference(x, 5.0).astype(np.float32), rtol=0, atol=1e-7)


def test_a_singular_gram_matrix_is_refused_not_returned_as_nan(monkeypatch):
    monkeypatch.setattr(ease, "DUAL_MAX_USERS_PER_ITEM", 0.0)  # the items' side: G (rank 5) + 1e-30·I
    x = _matrix(n_users=5, n_items=30)
    model = EASE(*x.shape, reg=1e-30)
    with pytest.raises(Exception, match="positive definite|invert"):
        model.fit_closed_form(x)


def test_from_the_users_side_a_vanishing_lambda_gives_eases_limit():
    """With fewer users than items XXᵀ is positive definite: as λ → 0, Q = XᵀWX tends to the projection
    onto X's row space, X⁺X, and B_ij = Q_ij / (1 − Q_jj) stays finite (the items' side cannot tell)."""
    x = _matrix(n_users=5, n_items=30)
    model = EASE(*x.shape, reg=1e-30)
    model.fit_closed_form(x)
    dense = x.toarray().astype(np.float64)
    q = np.linalg.pinv(dense) @ dense
    expected = q / (1.0 - np.diag(q))[None, :]
    np.fill_diagonal(expected, 0.0)
    np.testing.assert_allclose(model.weight.numpy(), expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("float64", [False, True])
def test_the_grid_from_one_spectrum_equals_each_separate_fit(monkeypatch, float64):
    monkeypatch.setattr(ease, "CHUNK", 24)
    monkeypatch.setattr(ease, "DUAL_MAX_USERS_PER_ITEM", 0.0)  # the spectrum is the items' side's
    x = _matrix(n_users=200, n_items=300 if float64 else 600, density=0.02, seed=2)
    shared = EASE(*x.shape, float64=float64).factorise(x)
    for reg in (5.0, 50.0, 500.0):
        from_factors, alone = EASE(*x.shape, reg=reg, float64=float64), EASE(*x.shape, reg=reg, float64=float64)
        peak = _peak_bytes(lambda: from_factors.fit_from(shared))
        alone.fit_closed_form(x)
        np.testing.assert_allclose(from_factors.weight.numpy(), alone.weight.numpy(), rtol=0, atol=1e-5)
        np.testing.assert_allclose(from_factors.weight.numpy(), _reference(x, reg), rtol=0, atol=1e-5)
        if not float64:  # P(λ) is built in the weight by eigenvector blocks, not as a second n² matrix
            assert peak < 3 * x.shape[1] * 24 * 4 < 0.15 * x.shape[1] ** 2 * 4


def test_float32_keeps_the_float64_top20_over_the_default_grid():
    """float32 and float64 solves rank the same top 20 for every demo user at every λ of the default
    grid, except where float64 itself scores the 20th and 21st items within 1e-5 of each other (a tie)."""
    data = build_demo()
    x = reweighted_matrix(data.train, data.train_order, TimeLinearReweighting(0.1, 1.0))
    rows = torch.from_numpy(x.toarray())
    seen = torch.from_numpy(data.train.toarray() > 0)
    for reg in EASE.search_space["reg"]:
        scores = {}
        for float64 in (False, True):
            model = EASE(*x.shape, reg=reg, float64=float64)
            model.fit_closed_form(x)
            scores[float64] = (rows.double() @ model.weight.double()).masked_fill(seen, -np.inf)
        top32, top64 = (torch.topk(scores[f], 21, dim=1) for f in (False, True))
        sets = [[set(row.tolist()) for row in top.indices[:, :20]] for top in (top32, top64)]
        differ = [u for u in range(len(rows)) if sets[0][u] != sets[1][u]]
        gaps = (top64.values[differ, 19] - top64.values[differ, 20]).abs()
        assert len(differ) <= 2 and bool((gaps < 1e-5).all()), (reg, differ, gaps)


@pytest.fixture
def demo_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DIFFREC_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("DIFFREC_LOAD_PLUGINS", raising=False)
    reset_plugins()
    home = DataHome(tmp_path / "home")
    home.save(build_demo())
    yield home
    reset_plugins()


@pytest.mark.parametrize("break_even,factorisations", [(3, 1), (4, 0)])
def test_a_grid_too_short_to_pay_for_the_spectrum_solves_each_reg_alone(demo_home, monkeypatch, break_even,
                                                                       factorisations):
    calls = []
    original = EASE.factorise
    monkeypatch.setattr(EASE, "factorise", lambda self, train: (calls.append(1), original(self, train))[1])
    monkeypatch.setattr(EASE, "refit_break_even", break_even)
    result = tune("ease", "demo", get_registry(), home=demo_home, space=SearchSpace({"reg": [20.0, 200.0, 2000.0]}))
    assert len(calls) == factorisations and [t.status for t in result.trials] == ["finished"] * 3


def test_tune_over_reg_factorises_once_and_matches_separate_fits(demo_home, monkeypatch):
    monkeypatch.setattr(EASE, "refit_break_even", 2)
    calls = []
    original = EASE.factorise
    monkeypatch.setattr(EASE, "factorise", lambda self, train: (calls.append(1), original(self, train))[1])
    grid = [20.0, 200.0, 2000.0]
    result = tune("ease", "demo", get_registry(), home=demo_home, space=SearchSpace({"reg": grid}),
                  fixed={"weight_gram": False, "reweighting": "time-linear"})
    assert len(calls) == 1 and [t.status for t in result.trials] == ["finished"] * 3
    data = demo_home.load("demo")
    inputs = reweighted_matrix(data.train, data.train_order, TimeLinearReweighting())
    for trial in result.trials:
        tuned = load_file(f"{trial.run_path}/checkpoint/model.safetensors")["weight"].numpy()
        alone = EASE(data.n_users, data.n_items, reg=trial.params["reg"], weight_gram=False)
        alone.fit_closed_form(inputs)
        np.testing.assert_allclose(tuned, alone.weight.numpy(), rtol=0, atol=1e-5)
    assert len({round(t.valid["recall@20"], 6) for t in result.trials}) == 3  # each trial used its own λ


def test_fits_share_factors_only_when_they_differ_in_refit_settings_alone():
    data = build_demo()
    x = data.train[:, :120].tocsr()
    shared, calls = SharedFits(), []
    for reg, weight_gram in [(50.0, True), (500.0, True), (50.0, False), (500.0, False), (5.0, True)]:
        model, spec = build_model(get_registry(), "ease", {"reg": reg, "weight_gram": weight_gram},
                                  n_users=x.shape[0], n_items=x.shape[1])
        original = model.factorise
        model.factorise = lambda train, original=original: (calls.append(1), original(train))[1]
        shared.fitter(model, spec, "demo", "f1")(x)
        np.testing.assert_allclose(model.weight.numpy(), _reference(x, reg), atol=1e-4)
    assert len(calls) == shared.factorisations == 3  # weight_gram changes G; coming back to it refactorises


def _catalogue(n_users: int, n_items: int, name: str) -> InteractionData:
    rng = np.random.default_rng(0)
    users, items = np.repeat(np.arange(n_users), 3), rng.integers(0, n_items, 3 * n_users)
    train = csr_from_pairs(users, items, (n_users, n_items))
    held = csr_from_pairs(np.arange(n_users), rng.integers(0, n_items, n_users), (n_users, n_items))
    return InteractionData(name, train, held, held.copy(), np.array([f"u{i}" for i in range(n_users)]),
                           np.array([f"i{i}" for i in range(n_items)]))


def test_an_amazon_book_sized_ease_is_refused_before_it_allocates(demo_home, monkeypatch):
    demo_home.save(_catalogue(200, 94_949, "book"))
    monkeypatch.setattr(ease, "DUAL_MAX_USERS_PER_ITEM", 0.0)  # Amazon-book has more users than items
    monkeypatch.setattr(memory, "available_bytes", lambda: 24 * 2**30)
    result = CliRunner().invoke(app, ["train", "--model", "ease", "--dataset", "book", "--quiet", "--no-live"])
    assert result.exit_code == 2
    # the weight: 94,949² float32 = 36.06e9 bytes = 33.58 GiB; 1,024-column blocks 4 x 1,024 x (200 + 2 x 94,949)
    # = 0.73 GiB; evaluation: 64 users x 4 bytes x 94,949 items x 6 = 0.14 GiB
    assert re.fullmatch(r"error: fitting ease on book \(94,949 items: weights, fit, evaluation\) would need about "
                        r"101\.6 GiB of memory, but only 24\.0 GiB is free", result.output.strip()), result.output
    assert not demo_home.runs_dir.exists() or not any(demo_home.runs_dir.iterdir())


def test_the_estimate_counts_what_each_fit_holds(monkeypatch):
    monkeypatch.setattr(ease, "DUAL_MAX_USERS_PER_ITEM", 0.0)  # the items' side (the users' side: below)
    registry = get_registry()
    data = _catalogue(50, 3000, "mid")
    base = resolve_settings({}, {}, model="ease", dataset="mid").train
    alone = check_training_fits(registry, base, {}, data, torch.device("cpu"))
    doubled = check_training_fits(registry, base, {"float64": True}, data, torch.device("cpu"))
    assert alone.closed_form and alone.batch == 0
    # in place: the weight alone; blocks of X's columns (50 users), of G's and a transposed one; three
    # sparse copies of X
    assert alone.model == 3000**2 * 4 + 4 * ease.CHUNK * (50 + 2 * 3000) + 3 * 12 * data.train.nnz
    # float64: a float64 buffer beside the float32 weight, and float64 blocks
    assert doubled.model - alone.model == 3000**2 * 8 + 4 * ease.CHUNK * (50 + 2 * 3000)
    monkeypatch.setattr(ease, "IN_PLACE_MAX_BYTES", 0)  # past scipy's limit: torch's LAPACK and its copies
    copied = check_training_fits(registry, base, {}, data, torch.device("cpu"))
    assert copied.model == 3 * 3000**2 * 4 + 4 * ease.CHUNK * (50 + 2 * 3000) + 3 * 12 * data.train.nnz
    doubled = check_training_fits(registry, base, {"float64": True}, data, torch.device("cpu"))
    assert doubled.model - copied.model == 3000**2 * (24 - 8) + 4 * ease.CHUNK * (50 + 2 * 3000)
    alone = copied
    monkeypatch.setattr(memory, "available_bytes", lambda: int(alone.total / memory.USABLE_SHARE) + 1)
    check_training_fits(registry, base, {}, data, torch.device("cpu"))  # float32 fits exactly
    with pytest.raises(DiffrecError, match=r"^fitting ease on mid \(3,000 items: weights, fit, evaluation\)"):
        check_training_fits(registry, base, {"float64": True}, data, torch.device("cpu"))


@pytest.mark.parametrize("weight_gram", [True, False])
def test_the_users_side_gives_the_items_sides_b_in_the_weight_itself(monkeypatch, weight_gram):
    """Woodbury: B from W = (λI + XXᵀ)⁻¹ equals B from (XᵀX + λI)⁻¹, reweighted values included, written
    block by block into the weight; numpy's temporaries are the n_users² inverse and blocks."""
    monkeypatch.setattr(ease, "CHUNK", 48)
    x = _matrix(n_users=120, n_items=900, density=0.02, seed=3)
    x.data = np.random.default_rng(3).uniform(0.1, 1.0, x.nnz).astype(np.float32)  # as a reweighting gives
    assert ease.solves_dual(*x.shape)
    pattern = x.copy()
    pattern.data[:] = 1.0
    for reg in (2.0, 50.0, 2000.0):
        model = EASE(*x.shape, reg=reg, weight_gram=weight_gram)
        storage = model.weight.data.data_ptr()
        peak = _peak_bytes(lambda model=model: model.fit_closed_form(x))
        assert model.weight.data.data_ptr() == storage
        assert peak < 120**2 * 8 + 0.1 * 900**2 * 4
        np.testing.assert_allclose(model.weight.numpy(), _reference(x if weight_gram else pattern, reg),
                                   rtol=0, atol=1e-6)
        np.testing.assert_array_equal(np.diag(model.weight.numpy()), 0.0)
        items_side = EASE(*x.shape, reg=reg, weight_gram=weight_gram)
        monkeypatch.setattr(ease, "DUAL_MAX_USERS_PER_ITEM", 0.0)
        items_side.fit_closed_form(x)
        monkeypatch.setattr(ease, "DUAL_MAX_USERS_PER_ITEM", 0.75)
        np.testing.assert_allclose(model.weight.numpy(), items_side.weight.numpy(), rtol=0, atol=1e-5)


def test_the_users_side_hands_a_lambda_too_small_for_its_digits_to_the_items_side(monkeypatch):
    """A user holding one item alone puts that item in X's row space: 1 − Q_jj = λ·P_jj then vanishes with
    λ, and below ``DUAL_MIN_KEEP`` the items' side takes over (here it refuses: G has rank 41 < 200)."""
    x = sp.vstack([_matrix(n_users=40, n_items=200, density=0.05, seed=4),
                   sp.csr_matrix(([1.0], ([0], [7])), shape=(1, 200))]).tocsr()
    sides = []
    original = ease.solve_in_place
    monkeypatch.setattr(ease, "solve_in_place", lambda *a: (sides.append("items"), original(*a))[1])
    model = EASE(*x.shape, reg=1e-3)
    model.fit_closed_form(x)
    assert sides == []  # λ = 1e-3 keeps 1 − Q_jj above the limit
    np.testing.assert_allclose(model.weight.numpy(), _reference(x, 1e-3), rtol=0, atol=1e-4)
    with pytest.raises(DiffrecError, match="positive definite|invert"):
        EASE(*x.shape, reg=1e-13).fit_closed_form(x)
    assert sides == ["items"]


def test_the_users_side_estimate_counts_its_inverse_and_blocks():
    model = EASE(50, 3000)
    nnz = 150
    assert model.fit_memory(nnz) == 50**2 * 8 + 8 * ease.CHUNK * (2 * 50 + 3000) + 3 * 12 * nnz + 2 * 16 * nnz
    assert EASE(50, 3000, float64=True).fit_memory(nnz) == model.fit_memory(nnz)  # float64 inside already
    wide = EASE(30_000, 60_000)  # a 7.2 GB inverse: torch's LAPACK and its two copies
    assert wide.fit_memory(nnz) >= 3 * 30_000**2 * 8


def test_a_search_on_the_users_side_shares_no_spectrum(monkeypatch):
    """From the users' side every λ's fit costs less than one n_items² eigendecomposition: ``factorise``
    hands the matrix on and ``fit_from`` fits from it, to ``fit_closed_form``'s B."""
    x = _matrix(n_users=60, n_items=300, density=0.04, seed=5)
    monkeypatch.setattr(ease, "spectrum_in_place", lambda buffer: pytest.fail("an n_items² spectrum"))
    model = EASE(*x.shape)
    shared = model.factorise(x)
    assert sp.issparse(shared) and (shared != x).nnz == 0
    assert model.fit_memory(x.nnz, factorised=True) == model.fit_memory(x.nnz) + 12 * x.nnz
    for reg in (5.0, 500.0):
        from_factors, alone = EASE(*x.shape, reg=reg), EASE(*x.shape, reg=reg)
        from_factors.fit_from(shared)
        alone.fit_closed_form(x)
        assert torch.equal(from_factors.weight, alone.weight)
