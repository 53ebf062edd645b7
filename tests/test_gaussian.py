"""GaussianDiffusion (paper §3.1–3.3) and the DiffRec model's inference paths."""

from __future__ import annotations

from collections import deque

import numpy as np
import pytest
import torch

from diffrec_cli.diffusion.gaussian import UNIFORM_MIX, GaussianDiffusion
from diffrec_cli.diffusion.schedules import LinearVarianceSchedule, linear_variance_betas
from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.diffrec import DiffRec

# A schedule with enough noise that moments and coefficients are far from trivial.
BETAS = linear_variance_betas(6, 1.0, 0.1, 0.9)


def closed_forms(betas: np.ndarray) -> dict[str, np.ndarray]:
    """Eq. (3) and Eq. (8) quantities, per paper step t = 1..T (index t−1), computed independently."""
    T = len(betas)
    alphas = 1.0 - betas
    alpha_bar = np.array([np.prod(alphas[: i + 1]) for i in range(T)])
    alpha_bar_prev = np.array([1.0] + alpha_bar[:-1].tolist())
    return {
        "alphas": alphas,
        "alpha_bar": alpha_bar,
        "alpha_bar_prev": alpha_bar_prev,
        "coef_x0": np.sqrt(alpha_bar_prev) * betas / (1.0 - alpha_bar),
        "coef_xt": np.sqrt(alphas) * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar),
        "variance": (1.0 - alpha_bar_prev) / (1.0 - alpha_bar) * betas,
        "snr": alpha_bar / (1.0 - alpha_bar),
    }


# ----- forward process ---------------------------------------------------------------------------
def test_q_sample_with_given_noise_is_eq3_reparameterisation():
    d = GaussianDiffusion(BETAS)
    cf = closed_forms(BETAS)
    x0 = torch.rand(6, 5, dtype=torch.float64)
    noise = torch.randn(6, 5, dtype=torch.float64)
    t = torch.arange(6)
    got = d.q_sample(x0, t, noise)
    ab = torch.from_numpy(cf["alpha_bar"])[:, None]
    torch.testing.assert_close(got, ab.sqrt() * x0 + (1 - ab).sqrt() * noise, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("step", [0, 2, 5])
def test_q_sample_moments(step):
    d = GaussianDiffusion(BETAS)
    ab = closed_forms(BETAS)["alpha_bar"][step]
    n = 40_000
    torch.manual_seed(123)
    pattern = torch.tensor([0.0, 1.0, 1.0, 0.0, 1.0, 0.5])
    x0 = pattern.repeat(n, 1)
    xt = d.q_sample(x0, torch.full((n,), step, dtype=torch.long))
    mean, var = xt.mean(0).double(), xt.var(0).double()
    expected_mean = np.sqrt(ab) * pattern.double()
    # standard errors: sqrt(var/n) for the mean, var*sqrt(2/n) for the variance; allow 5 of them
    torch.testing.assert_close(mean, expected_mean, rtol=0, atol=5 * np.sqrt((1 - ab) / n))
    torch.testing.assert_close(var, torch.full((6,), 1 - ab, dtype=torch.float64), rtol=0,
                               atol=5 * (1 - ab) * np.sqrt(2 / n))


def test_q_sample_is_identity_without_noise():
    d = GaussianDiffusion(np.zeros(4))
    assert d.noiseless
    x0 = torch.rand(3, 7)
    assert d.q_sample(x0, torch.tensor([0, 1, 3])) is x0


# ----- posterior (Eq. 8) ---------------------------------------------------------------------------
def test_posterior_coefficients_equal_eq8_closed_forms():
    d = GaussianDiffusion(BETAS)
    cf = closed_forms(BETAS)
    np.testing.assert_allclose(d.posterior_mean_coef_x0.numpy(), cf["coef_x0"], rtol=1e-10)
    np.testing.assert_allclose(d.posterior_mean_coef_xt.numpy(), cf["coef_xt"], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(d.posterior_variance.numpy(), cf["variance"], rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(d.alphas_cumprod.numpy(), cf["alpha_bar"], rtol=1e-12)


def test_posterior_is_the_gaussian_conditional_from_bayes():
    # q(x_{t−1}|x_t,x_0) ∝ N(x_t; √α_t x_{t−1}, β_t) · N(x_{t−1}; √ᾱ_{t−1} x_0, 1−ᾱ_{t−1}):
    # precision = α_t/β_t + 1/(1−ᾱ_{t−1}), mean = var · (√α_t x_t/β_t + √ᾱ_{t−1} x_0/(1−ᾱ_{t−1})).
    d = GaussianDiffusion(BETAS)
    cf = closed_forms(BETAS)
    x0 = torch.rand(4, 3, dtype=torch.float64)
    xt = torch.randn(4, 3, dtype=torch.float64)
    for i in range(1, len(BETAS)):
        a, b, abp = cf["alphas"][i], BETAS[i], cf["alpha_bar_prev"][i]
        var = 1.0 / (a / b + 1.0 / (1.0 - abp))
        mean = var * (np.sqrt(a) * xt / b + np.sqrt(abp) * x0 / (1.0 - abp))
        t = torch.full((4,), i, dtype=torch.long)
        torch.testing.assert_close(d.posterior_mean(x0, xt, t), mean, rtol=1e-9, atol=1e-12)
        assert float(d.posterior_variance[i]) == pytest.approx(var, rel=1e-9)


def test_posterior_mean_at_first_step_returns_x0():
    for betas in (BETAS, LinearVarianceSchedule().betas()):
        d = GaussianDiffusion(betas)
        x0 = torch.rand(5, 8)
        xt = torch.randn(5, 8) * 10
        t = torch.zeros(5, dtype=torch.long)
        torch.testing.assert_close(d.posterior_mean(x0, xt, t), x0, rtol=1e-6, atol=1e-6)
        assert float(d.posterior_mean_coef_xt[0]) == 0.0
        assert float(d.posterior_variance[0]) == 0.0


# ----- step weight (Eq. 11/12) --------------------------------------------------------------------
def test_step_weight_is_snr_difference_and_one_at_first_step():
    for betas in (BETAS, LinearVarianceSchedule(steps=10).betas()):
        d = GaussianDiffusion(betas)
        snr = closed_forms(betas)["snr"]
        t = torch.arange(len(betas))
        w = d.step_weight(t).numpy()
        assert w[0] == 1.0
        np.testing.assert_allclose(w[1:], snr[:-1] - snr[1:], rtol=1e-8)
        assert (w[1:] > 0).all()


# ----- importance sampling (Eq. 14) -------------------------------------------------------------
def test_uniform_until_every_step_has_ten_losses():
    d = GaussianDiffusion(BETAS[:4], sampling="importance", history=10)
    assert d.history_size == 10
    d.loss_history[:] = 5.0
    d.loss_history[0] = 1000.0  # would dominate if importance sampling were on
    d.loss_count[:] = torch.tensor([10, 10, 10, 9])
    assert not d.history_full()
    torch.manual_seed(0)
    t, pt = d.sample_steps(4000, torch.device("cpu"))
    assert (pt == 1).all()
    counts = torch.bincount(t, minlength=4)
    assert (counts > 850).all() and (counts < 1150).all()  # ~1000 each


def test_importance_probabilities_from_hand_set_history():
    d = GaussianDiffusion(BETAS[:4], sampling="importance", history=10)
    d.loss_history[0] = 1.0                                   # rms 1
    d.loss_history[1] = 2.0                                   # rms 2
    d.loss_history[2] = torch.tensor([1.0, 3.0] * 5)          # rms sqrt((1+9)/2) = sqrt(5)
    d.loss_history[3] = torch.tensor([0.0] * 9 + [np.sqrt(10.0)])  # rms 1
    d.loss_count[:] = 10
    assert d.history_full()
    rms = np.array([1.0, 2.0, np.sqrt(5.0), 1.0])
    expected = rms / rms.sum() * (1 - 0.001) + 0.001 / 4
    assert UNIFORM_MIX == 0.001
    np.testing.assert_allclose(d.importance_probabilities().numpy(), expected, rtol=1e-12)
    assert float(d.importance_probabilities().sum()) == pytest.approx(1.0, abs=1e-12)

    torch.manual_seed(1)
    n = 20_000
    t, pt = d.sample_steps(n, torch.device("cpu"))
    np.testing.assert_allclose(pt.numpy(), expected[t.numpy()] * 4, rtol=1e-12)
    freq = torch.bincount(t, minlength=4).double().numpy() / n
    np.testing.assert_allclose(freq, expected, atol=0.015)


def test_importance_probabilities_keep_uniform_floor():
    d = GaussianDiffusion(BETAS[:4], sampling="importance")
    d.loss_history[0] = 3.0
    d.loss_count[:] = 10
    probs = d.importance_probabilities().numpy()
    np.testing.assert_allclose(probs, [0.999 + 0.00025, 0.00025, 0.00025, 0.00025], rtol=1e-12)


def test_uniform_sampling_ignores_a_full_history():
    d = GaussianDiffusion(BETAS[:4], sampling="uniform")
    d.loss_history[0] = 1000.0
    d.loss_count[:] = 10
    torch.manual_seed(0)
    t, pt = d.sample_steps(4000, torch.device("cpu"))
    assert (pt == 1).all()
    counts = torch.bincount(t, minlength=4)
    assert (counts > 850).all() and (counts < 1150).all()


def test_record_losses_equals_naive_fifo_loop():
    steps, size = 5, 10
    d = GaussianDiffusion(BETAS[:steps], history=size)
    fifo = [deque(maxlen=size) for _ in range(steps)]
    gen = torch.Generator().manual_seed(7)
    for batch in (3, 7, 1, 30, 0, 12, 64, 2, 9):
        t = torch.randint(0, steps, (batch,), generator=gen)
        if batch == 30:
            t[:] = 2  # one step receives more than ``size`` values in a single batch
        losses = torch.rand(batch, generator=gen, dtype=torch.float32)
        d.record_losses(t, losses)
        for ti, li in zip(t.tolist(), losses.double().tolist()):  # the authors' per-sample loop
            fifo[ti].append(li)
        for s in range(steps):
            expected = np.zeros(size)
            expected[: len(fifo[s])] = list(fifo[s])
            np.testing.assert_array_equal(d.loss_history[s].numpy(), expected, err_msg=f"step {s} after batch {batch}")
            assert int(d.loss_count[s]) == len(fifo[s])
    assert d.history_full()


def test_training_losses_records_weighted_loss_before_dividing_by_pt():
    d = GaussianDiffusion(BETAS[:4], sampling="importance", history=2)
    d.loss_history[:] = torch.tensor([[1.0, 1.0], [4.0, 4.0], [1.0, 1.0], [2.0, 2.0]], dtype=torch.float64)
    d.loss_count[:] = 2
    probs = d.importance_probabilities()
    x0 = torch.rand(1, 6)
    torch.manual_seed(3)
    out = d.training_losses(lambda xt, t: torch.zeros_like(xt), x0)
    # the newest history entry of the sampled step holds L_t (weight · mse); the return is L_t / (p_t·T)
    mse = float((x0 ** 2).mean())
    changed = [s for s in range(4) if float(d.loss_history[s, -1]) not in (1.0, 4.0, 2.0)]
    assert len(changed) == 1
    s = changed[0]
    recorded = float(d.loss_history[s, -1])
    assert recorded == pytest.approx(float(d.step_weight(torch.tensor([s]))[0]) * mse, rel=1e-5)
    assert float(out[0]) == pytest.approx(recorded / (float(probs[s]) * 4), rel=1e-5)


def test_training_losses_leave_given_noise_untouched_and_match_drawn_noise():
    # drawn noise is overwritten by x_t (a buffer fewer); noise handed in by a caller must stay as it was
    d = GaussianDiffusion(BETAS, sampling="uniform")
    x0 = (torch.rand(5, 8) < 0.5).float()
    t = torch.tensor([0, 1, 2, 4, 5])
    seen = []

    def denoiser(xt, steps):
        seen.append(xt.clone())
        return torch.tanh(xt)

    torch.manual_seed(11)
    drawn = d.training_losses(denoiser, x0, steps=t)
    torch.manual_seed(11)
    noise = torch.randn_like(x0)
    kept = noise.clone()
    given = d.training_losses(denoiser, x0, steps=t, noise=noise)
    assert torch.equal(noise, kept)
    assert torch.equal(seen[0], seen[1]) and torch.equal(drawn, given)
    torch.testing.assert_close(seen[1], d.q_sample(x0, t, kept), rtol=0, atol=0)


def test_training_losses_keep_the_gradient_of_an_x0_that_needs_one():
    # a model may diffuse a learned latent: x_t then cannot be written over the noise (no out= in autograd)
    d = GaussianDiffusion(BETAS, sampling="uniform")
    x0 = torch.rand(4, 6, requires_grad=True)
    t = torch.tensor([0, 2, 3, 5])
    d.training_losses(lambda xt, steps: xt * 0.5, x0, steps=t).sum().backward()
    assert x0.grad is not None and bool(x0.grad.abs().sum() > 0)


# ----- inference (Algorithm 2) --------------------------------------------------------------------
def _toy_denoiser(xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return torch.sigmoid(0.8 * xt + 0.05 * t[:, None].to(xt.dtype) - 0.3)


def test_denoise_without_noising_is_deterministic_and_follows_algorithm_2():
    d = GaussianDiffusion(BETAS)
    cf = closed_forms(BETAS)
    x0 = (torch.rand(4, 9) < 0.4).float()
    a = d.denoise(_toy_denoiser, x0, 0)
    b = d.denoise(_toy_denoiser, x0, 0)
    assert torch.equal(a, b)
    # By hand: x̂_{t−1} = coef_x0(t)·x̂_θ(x̂_t, t) + coef_xt(t)·x̂_t, t = T..1, starting at x_T' = x_0.
    x = x0.double()
    for i in reversed(range(len(BETAS))):
        t = torch.full((4,), i)
        x = cf["coef_x0"][i] * _toy_denoiser(x, t) + cf["coef_xt"][i] * x
    torch.testing.assert_close(a.double(), x, rtol=1e-5, atol=1e-6)


def test_denoise_with_noising_starts_from_q_sample_at_t_prime():
    d = GaussianDiffusion(BETAS)
    ab = closed_forms(BETAS)["alpha_bar"]
    x0 = (torch.rand(4, 9) < 0.4).float()
    seen = []

    def recording(xt, t):
        seen.append((xt.clone(), t.clone()))
        return _toy_denoiser(xt, t)

    t_prime = 3
    torch.manual_seed(11)
    out1 = d.denoise(recording, x0, t_prime)
    torch.manual_seed(11)
    eps = torch.randn_like(x0)
    first_x, first_t = seen[0]
    assert (first_t == len(BETAS) - 1).all()  # all T reverse steps still run, from t = T
    assert len(seen) == len(BETAS)
    expected = np.sqrt(ab[t_prime - 1]) * x0 + np.sqrt(1 - ab[t_prime - 1]) * eps
    torch.testing.assert_close(first_x, expected, rtol=1e-5, atol=1e-6)
    torch.manual_seed(11)
    assert torch.equal(d.denoise(_toy_denoiser, x0, t_prime), out1)  # same seed, same result
    torch.manual_seed(12)
    assert not torch.allclose(d.denoise(_toy_denoiser, x0, t_prime), out1)  # noise matters when T' > 0


def test_noising_steps_out_of_range():
    d = GaussianDiffusion(BETAS)
    x0 = torch.rand(2, 3)
    for bad in (-1, len(BETAS) + 1):
        with pytest.raises(DiffrecError, match="noising steps"):
            d.noised_start(x0, bad)
        with pytest.raises(DiffrecError):
            d.denoise(_toy_denoiser, x0, bad)
    d.denoise(_toy_denoiser, x0, len(BETAS))  # T' = T is allowed
    with pytest.raises(DiffrecError, match="noising_steps"):
        DiffRec(3, 10, schedule=LinearVarianceSchedule(steps=5), dims=[8], noising_steps=6)
    with pytest.raises(DiffrecError, match="noising_steps"):
        DiffRec(3, 10, schedule=LinearVarianceSchedule(steps=5), dims=[8], noising_steps=-1)


def test_bad_constructor_arguments():
    with pytest.raises(DiffrecError):
        GaussianDiffusion(BETAS, prediction="v")
    with pytest.raises(DiffrecError):
        GaussianDiffusion(BETAS, sampling="stratified")
    with pytest.raises(DiffrecError):
        GaussianDiffusion(np.array([0.1, 1.5]))
    with pytest.raises(DiffrecError):
        GaussianDiffusion(np.array([]))


# ----- DiffRec: fused inference and size ----------------------------------------------------------
@pytest.mark.parametrize("dims", [[32], [16, 48]])
@pytest.mark.parametrize("noising_steps", [0, 2])
@pytest.mark.parametrize("noise_scale", [0.1, 0.005, 0.0])
def test_fused_scores_equal_unfused(dims, noising_steps, noise_scale):
    torch.manual_seed(0)
    n_items = 50
    schedule = LinearVarianceSchedule(steps=5, noise_scale=noise_scale, noise_min=0.1, noise_max=0.5)
    model = DiffRec(20, n_items, schedule=schedule, dims=dims, emb_size=6, noising_steps=noising_steps)
    model.eval()
    assert model.can_fuse()
    x = (torch.rand(16, n_items) < 0.2).float()
    users = torch.arange(16)
    torch.manual_seed(5)
    fused = model.scores(users, x, fused=True)
    torch.manual_seed(5)
    plain = model.scores(users, x, fused=False)
    assert fused.shape == (16, n_items)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-5)
    if noising_steps == 0:
        torch.testing.assert_close(model.scores(users, x), plain, rtol=0, atol=1e-5)  # the default path
    assert not torch.allclose(plain[0], plain[1])  # scores depend on the input row


def test_fused_scores_of_float64_rows_stay_float64_and_match_a_float64_model():
    torch.manual_seed(0)
    schedule = LinearVarianceSchedule(steps=5, noise_scale=0.1, noise_min=0.1, noise_max=0.5)
    model = DiffRec(20, 40, schedule=schedule, dims=[16, 24], emb_size=6).eval()
    x = (torch.rand(8, 40) < 0.3).double()
    users = torch.arange(8)
    fused = model.scores(users, x, fused=True)
    assert fused.dtype == torch.float64
    wide = DiffRec(20, 40, schedule=schedule, dims=[16, 24], emb_size=6).eval()
    wide.load_state_dict(model.state_dict())
    wide.double()
    # (the step rows are folded in float32: float64 up to ~1e-8)
    torch.testing.assert_close(fused, wide.scores(users, x, fused=False), rtol=0, atol=1e-7)
    torch.testing.assert_close(fused.float(), model.scores(users, x.float(), fused=True), rtol=0, atol=1e-5)


def test_fused_scores_ignore_bf16_autocast():
    """Under ``--precision bf16`` training, scoring may run inside an autocast region; the fused recursion adds
    c1-sized increments to a c2≈1 state, which bf16 rounds away, so it must keep computing in float32."""
    torch.manual_seed(0)
    n_items = 300
    schedule = LinearVarianceSchedule(steps=40, noise_scale=0.005, noise_min=0.005, noise_max=0.01)
    model = DiffRec(20, n_items, schedule=schedule, dims=[64], emb_size=6).eval()
    x = (torch.rand(16, n_items) < 0.1).float()
    users = torch.arange(16)
    plain = model.scores(users, x, fused=False)
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        fused = model.scores(users, x, fused=True)
    assert fused.dtype == torch.float32
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-5)


def test_fusion_is_off_in_training_mode_and_for_eps_prediction():
    schedule = LinearVarianceSchedule(steps=5)
    model = DiffRec(2, 10, schedule=schedule, dims=[8])
    model.train()
    assert not model.can_fuse()
    model.eval()
    assert model.can_fuse()
    eps = DiffRec(2, 10, schedule=schedule, dims=[8], prediction="eps").eval()
    assert not eps.can_fuse()


def test_parameter_count_matches_authors_figure():
    model = DiffRec(1, 2810, schedule=LinearVarianceSchedule(), dims=[200, 600])
    # [2810+10 → 600 → 200 → 600 → 2810] plus the 10×10 step-embedding layer
    assert model.parameter_count() == 3_622_320
    shapes = [tuple(layer.weight.shape) for layer in model.denoiser.layers]
    assert shapes == [(600, 2820), (200, 600), (600, 200), (2810, 600)]
