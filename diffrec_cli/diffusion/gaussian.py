"""Gaussian diffusion over interaction vectors: paper §3.1–3.3.

Step indices run 0..T−1 in code; index i is the paper's step t = i + 1.
"""

from __future__ import annotations

from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np
import torch
from torch import nn

from diffrec_cli.errors import DiffrecError
from diffrec_cli.mixed_precision import row_mse

Denoiser = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@runtime_checkable
class FusableDenoiser(Protocol):
    """A denoiser that can run x0-prediction inference with its item-wide layers folded between steps."""

    def supports_fusion(self) -> bool: ...

    def fused_denoise(self, x_start: torch.Tensor, coef_x0: list[float], coef_xt: list[float]) -> torch.Tensor: ...
UNIFORM_MIX = 0.001  # share of uniform probability kept in importance sampling, as the authors do


def own_losses(t: torch.Tensor, losses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The losses one process recorded, as they are: what ``GaussianDiffusion.gather_losses`` does alone."""
    return t, losses


class GaussianDiffusion(nn.Module):
    """Forward process, posterior, step sampling, training loss and Algorithm-2 inference.

    ``prediction`` is "x0" (the denoiser predicts x̂_0, Eq. 10–12) or "eps" (it predicts the noise ε).
    ``step_weighting`` turns on the SNR-difference weight of Eq. (11). ``sampling`` is "uniform" or
    "importance" (Eq. 14, with ``history`` loss values kept per step).
    """

    def __init__(self, betas: np.ndarray, *, prediction: str = "x0", step_weighting: bool = True,
                 sampling: str = "importance", history: int = 10) -> None:
        super().__init__()
        if prediction not in ("x0", "eps"):
            raise DiffrecError(f"prediction must be 'x0' or 'eps', got {prediction!r}")
        if sampling not in ("uniform", "importance"):
            raise DiffrecError(f"sampling must be 'uniform' or 'importance', got {sampling!r}")
        if history < 1:  # importance sampling averages the last `history` losses of each step
            raise DiffrecError(f"history must be at least 1, got {history}")
        betas = np.asarray(betas, dtype=np.float64)
        if betas.ndim != 1 or len(betas) == 0 or (betas < 0).any() or (betas > 1).any():
            raise DiffrecError("a noise schedule must give 1..T betas in [0, 1]")
        self.steps = len(betas)
        self.prediction = prediction
        self.step_weighting = step_weighting
        self.sampling = sampling
        self.history_size = history
        # With every β = 0 there is no noise: training sees x_0 itself and inference applies the denoiser T times.
        self.noiseless = bool((betas == 0).all())

        alphas = 1.0 - betas
        alpha_bar = np.cumprod(alphas)
        alpha_bar_prev = np.append(1.0, alpha_bar[:-1])
        with np.errstate(divide="ignore", invalid="ignore"):
            coefs = {
                "betas": betas,
                "alphas_cumprod": alpha_bar,
                "alphas_cumprod_prev": alpha_bar_prev,
                "sqrt_alphas_cumprod": np.sqrt(alpha_bar),
                "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - alpha_bar),
                "sqrt_recip_alphas_cumprod": np.sqrt(1.0 / alpha_bar),
                "sqrt_recipm1_alphas_cumprod": np.sqrt(1.0 / alpha_bar - 1.0),
                # Eq. (8): σ²(t) and the two mean coefficients of q(x_{t−1} | x_t, x_0).
                "posterior_variance": betas * (1.0 - alpha_bar_prev) / (1.0 - alpha_bar),
                "posterior_mean_coef_x0": betas * np.sqrt(alpha_bar_prev) / (1.0 - alpha_bar),
                "posterior_mean_coef_xt": (1.0 - alpha_bar_prev) * np.sqrt(alphas) / (1.0 - alpha_bar),
                "snr": alpha_bar / (1.0 - alpha_bar),
            }
        for name, value in coefs.items():
            # Kept in float64 and cast per use: ᾱ_t is within 1e-5 of 1 and float32 would lose the SNRs.
            self.register_buffer(name, torch.from_numpy(np.nan_to_num(value, nan=0.0, posinf=0.0)), persistent=False)
        # The importance-sampling history (Eq. 14) is training state worth keeping in the checkpoint.
        self.register_buffer("loss_history", torch.zeros(self.steps, history, dtype=torch.float64))
        self.register_buffer("loss_count", torch.zeros(self.steps, dtype=torch.int64))
        # Data-parallel training swaps in an all-gather (training/distributed.py), so every rank records the
        # whole batch's losses in rank order and samples its steps from the same history.
        self.gather_losses: Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = own_losses

    # ----- forward process ------------------------------------------------------------------
    def _at(self, name: str, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """Coefficient ``name`` at steps ``t``, shaped to broadcast over ``like``'s rows."""
        return getattr(self, name)[t].to(like.dtype).view(-1, *([1] * (like.dim() - 1)))

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor | None = None) -> torch.Tensor:
        """Draw x_t ~ q(x_t | x_0) = N(√ᾱ_t x_0, (1 − ᾱ_t) I), Eq. (3)."""
        if self.noiseless:
            return x0
        if noise is None:
            noise = torch.randn_like(x0)
        # one fused multiply-add pass over the (batch × n_items) tensor instead of three
        return torch.addcmul(self._at("sqrt_alphas_cumprod", t, x0) * x0, self._at("sqrt_one_minus_alphas_cumprod", t, x0), noise)

    def posterior_mean(self, x0: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        """μ̃(x_t, x_0, t) of Eq. (8); with x̂_0 in place of x_0 it is μ_θ of Eq. (10)."""
        return self._at("posterior_mean_coef_x0", t, xt) * x0 + self._at("posterior_mean_coef_xt", t, xt) * xt

    def predict_x0(self, model_output: torch.Tensor, xt: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.prediction == "x0":
            return model_output
        # ε-prediction: invert Eq. (3), x_0 = (x_t − √(1−ᾱ_t) ε) / √ᾱ_t.
        return self._at("sqrt_recip_alphas_cumprod", t, xt) * xt - self._at("sqrt_recipm1_alphas_cumprod", t, xt) * model_output

    # ----- step sampling (Eq. 13 / Eq. 14) ---------------------------------------------------
    def history_full(self) -> bool:
        return bool((self.loss_count == self.history_size).all())

    def importance_probabilities(self) -> torch.Tensor:
        """p_t ∝ √E[L_t²] over the kept history, mixed with a little uniform mass (Eq. 14)."""
        rms = torch.sqrt(torch.mean(self.loss_history**2, dim=-1))
        probs = rms / rms.sum()
        return probs * (1.0 - UNIFORM_MIX) + UNIFORM_MIX / self.steps

    def sample_steps(self, batch_size: int, device: torch.device,
                     given: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Return steps t (drawn, or the ``given`` ones) and their p_t·T (1 under uniform sampling) for
        dividing the loss."""
        if self.sampling == "importance" and self.history_full():
            probs = self.importance_probabilities().to(device)
            t = torch.multinomial(probs, batch_size, replacement=True) if given is None else given
            return t, probs[t] * self.steps
        t = torch.randint(0, self.steps, (batch_size,), device=device) if given is None else given
        return t, torch.ones(batch_size, dtype=torch.float64, device=device)

    def record_losses(self, t: torch.Tensor, losses: torch.Tensor) -> None:
        """Append per-sample losses to each step's history, keeping the latest ``history`` values.

        Vectorised equivalent of visiting the samples in batch order and pushing each onto its step's
        FIFO (the authors loop over samples in Python, which costs more than the network on a CPU).
        """
        t, losses = self.gather_losses(t, losses.detach())
        t = t.to(self.loss_history.device)
        losses = losses.to(self.loss_history.dtype).to(self.loss_history.device)
        size = self.history_size
        order = torch.argsort(t, stable=True)
        t_sorted, l_sorted = t[order], losses[order]
        new_counts = torch.bincount(t_sorted, minlength=self.steps)
        group_start = torch.cumsum(new_counts, 0) - new_counts
        rank = torch.arange(len(t_sorted), device=t.device) - group_start[t_sorted]
        old = self.loss_count
        total = old + new_counts
        shift = (total - size).clamp(min=0)  # how many of the oldest values fall out
        slots = torch.arange(size, device=t.device).expand(self.steps, size)
        src = slots + shift[:, None]
        keep_old = src < old[:, None]
        history = torch.where(keep_old, self.loss_history.gather(1, src.clamp(max=size - 1)), torch.zeros((), dtype=self.loss_history.dtype, device=t.device))
        dest = old[t_sorted] + rank - shift[t_sorted]
        kept = dest >= 0
        history[t_sorted[kept], dest[kept]] = l_sorted[kept]
        self.loss_history.copy_(history)
        self.loss_count.copy_(total.clamp(max=size))

    def mean_loss_per_step(self) -> list[float | None]:
        """Mean of the kept history per step (None where nothing is recorded yet), for progress panels."""
        out: list[float | None] = []
        for step in range(self.steps):
            n = int(self.loss_count[step])
            out.append(float(self.loss_history[step, :n].mean()) if n else None)
        return out

    # ----- training ---------------------------------------------------------------------------
    def step_weight(self, t: torch.Tensor) -> torch.Tensor:
        """Eq. (11)'s SNR difference ᾱ_{t−1}/(1−ᾱ_{t−1}) − ᾱ_t/(1−ᾱ_t); 1 at the first step (Eq. 12).

        The paper's factor ½ is dropped, as in the authors' code: a constant scale the optimiser absorbs.
        """
        if self.prediction == "x0":
            weight = self.snr[(t - 1).clamp(min=0)] - self.snr[t]
        else:
            weight = (1.0 - self.alphas_cumprod[t]) / ((1.0 - self.alphas_cumprod_prev[t]) ** 2 * (1.0 - self.betas[t]))
        return torch.where(t == 0, torch.ones_like(weight), weight)

    def training_losses(self, denoiser: Denoiser, x0: torch.Tensor, *, return_x0: bool = False,
                        steps: torch.Tensor | None = None,
                        noise: torch.Tensor | None = None) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Per-user loss L_t / p_t for one batch (Algorithm 1); also feeds the importance-sampling history.

        The squared error is averaged (not summed) over items, as the authors compute it. With
        ``return_x0`` also the denoiser's x̂_0 for each row (L-DiffRec decodes it). ``steps`` and ``noise``
        replace the drawn ones, to reproduce a given step.
        """
        t, pt = self.sample_steps(x0.shape[0], x0.device, steps)
        drawn = noise is None
        noise = torch.randn_like(x0) if drawn else noise
        if self.prediction == "x0" and not return_x0 and not self.noiseless:
            # q_sample's fused multiply-add (the same roundings), written over noise drawn here: nothing needs
            # the noise afterwards, so no second (batch × n_items) buffer stays alive through the forward pass
            # (autograd takes no out= argument: an x_0 that needs gradients gets a new tensor)
            over_noise = drawn and not x0.requires_grad
            xt = torch.addcmul(self._at("sqrt_alphas_cumprod", t, x0) * x0,
                               self._at("sqrt_one_minus_alphas_cumprod", t, x0), noise,
                               out=noise if over_noise else None)
            del noise
        else:
            xt = self.q_sample(x0, t, noise)
        output = denoiser(xt, t)
        target = x0 if self.prediction == "x0" else noise
        mse = row_mse(output, target)
        if self.step_weighting and not self.noiseless:
            weight = self.step_weight(t)
            loss = mse
            if self.prediction == "eps":
                # At t = 1 the ε-model is scored on its reconstruction of x_0 (Eq. 12).
                recon = ((x0 - self.predict_x0(output, xt, t)) ** 2 / 2.0).mean(dim=tuple(range(1, x0.dim())))
                loss = torch.where(t == 0, recon, mse)
            weighted = weight.to(loss.dtype) * loss
        else:
            weighted = mse
        self.record_losses(t, weighted)
        if return_x0:
            return weighted / pt.to(weighted.dtype), self.predict_x0(output, xt, t)
        return weighted / pt.to(weighted.dtype)

    # ----- inference (Algorithm 2) -----------------------------------------------------------
    def noised_start(self, x0: torch.Tensor, noising_steps: int) -> torch.Tensor:
        """x_{T'}: x_0 corrupted for T' forward steps (T' = 0 keeps x_0)."""
        if not 0 <= noising_steps <= self.steps:
            raise DiffrecError(f"noising steps T' must lie in 0..{self.steps}, got {noising_steps}")
        if noising_steps == 0:
            return x0
        t = torch.full((x0.shape[0],), noising_steps - 1, dtype=torch.long, device=x0.device)
        return self.q_sample(x0, t)

    @torch.no_grad()
    def denoise(self, denoiser: Denoiser, x0: torch.Tensor, noising_steps: int = 0) -> torch.Tensor:
        """Algorithm 2: noise x_0 for T' steps, then take T deterministic steps x̂_{t−1} = μ_θ(x̂_t, t)."""
        xt = self.noised_start(x0, noising_steps)
        for step in reversed(range(self.steps)):
            t = torch.full((xt.shape[0],), step, dtype=torch.long, device=xt.device)
            output = denoiser(xt, t)
            if self.noiseless:
                xt = output
                continue
            xt = self.posterior_mean(self.predict_x0(output, xt, t), xt, t)
        return xt

    def can_fuse(self, denoiser: Any) -> bool:
        """Whether ``denoiser.fused_denoise`` computes Algorithm 2 here: x0-prediction, an eval-mode denoiser
        that supports it, and a last step (t = 1) whose posterior mean ignores x_t, so scores are its x̂_0."""
        return (self.prediction == "x0" and not denoiser.training
                and isinstance(denoiser, FusableDenoiser) and denoiser.supports_fusion()
                and (self.noiseless or float(self.posterior_mean_coef_xt[0]) == 0.0))

    @torch.no_grad()
    def reverse(self, denoiser: Any, x0: torch.Tensor, noising_steps: int = 0, *,
                fused: bool | None = None) -> torch.Tensor:
        """``denoise``, through the denoiser's fused recursion where ``can_fuse`` (by default): the same result
        up to float rounding with the item-wide layers folded between steps (README, "Speed")."""
        if fused is None:
            fused = self.can_fuse(denoiser)
        if not fused:
            return self.denoise(denoiser, x0, noising_steps)
        start = self.noised_start(x0, noising_steps)
        if self.noiseless:
            coef_x0, coef_xt = [1.0] * self.steps, [0.0] * self.steps
        else:
            # coefficients for steps T−1..0, as Python floats so no per-step device ops are needed
            coef_x0 = self.posterior_mean_coef_x0.flip(0).tolist()
            coef_xt = self.posterior_mean_coef_xt.flip(0).tolist()
        return coef_x0[-1] * denoiser.fused_denoise(start, coef_x0, coef_xt)
