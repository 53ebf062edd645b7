"""The MLP denoiser x̂_θ(x_t, t) of paper §3.2: step embedding concatenated to the input, tanh layers."""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from diffrec_cli.errors import DiffrecError
from diffrec_cli.mixed_precision import (ItemsAndStepLinear, LowPrecisionLinear, WeightCopies, half_dropout,
                                         half_dropout_applies, linear_tanh, tanh)


def step_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal embedding of integer steps (Transformer-style), shape (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = torch.cat([emb, torch.zeros_like(emb[:, :1])], dim=-1)
    return emb


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument, CPU autocast has its own query
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()


class MLPDenoiser(nn.Module):
    """n_items (+ step embedding) → hidden dims → mirrored back → n_items, tanh between layers.

    ``hidden=(200, 600)`` gives the authors' [n_items+10 → 600 → 200 → 600 → n_items]: the listed dims are
    the decoder side and the encoder mirrors them. The last layer is linear (no activation), which is what
    lets :meth:`fused_denoise` skip the n_items-wide layers between steps.
    """

    def __init__(self, n_items: int, hidden: Sequence[int] = (200, 600), emb_size: int = 10,
                 dropout: float = 0.5, normalize_input: bool = False) -> None:
        super().__init__()
        if isinstance(emb_size, bool) or not isinstance(emb_size, int) or emb_size < 1:
            raise DiffrecError(f"emb_size must be a positive integer, got {emb_size!r}")
        decoder = list(hidden) + [n_items]
        encoder = decoder[::-1]
        self.emb_size = emb_size
        self.normalize_input = normalize_input
        self.emb_layer = nn.Linear(emb_size, emb_size)
        sizes = [n_items + emb_size] + encoder[1:] + decoder[1:]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.dropout = dropout
        self.training_copies: WeightCopies | None = None  # set_precision: bf16 training
        self.scoring_dtype = torch.float32
        self._folded_cache: tuple | None = None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # Xavier-normal weights and near-zero biases, as the authors initialise.
        for layer in [*self.layers, self.emb_layer]:
            fan_out, fan_in = layer.weight.shape
            nn.init.normal_(layer.weight, 0.0, math.sqrt(2.0 / (fan_in + fan_out)))
            nn.init.normal_(layer.bias, 0.0, 0.001)

    def embed(self, t: torch.Tensor) -> torch.Tensor:
        return self.emb_layer(step_embedding(t, self.emb_size).to(self.emb_layer.weight.dtype))  # float64 models too

    def train(self, mode: bool = True) -> "MLPDenoiser":
        # the folded matrices are rebuilt after any training (a fused optimiser step leaves the weights'
        # version counters alone, so the cache key below cannot see it)
        self._folded_cache = None
        return super().train(mode)

    def set_precision(self, training: torch.dtype, scoring: torch.dtype) -> None:
        """Matmul dtypes for training (bf16: weights copied once per optimiser step, fp32 master weights and
        loss) and for the fused scoring recursion's hidden-size steps (item-wide scores stay float32)."""
        self.training_copies = None if training == torch.float32 else WeightCopies(training)
        self.scoring_dtype = scoring

    def _input_dropout(self, x: torch.Tensor, room: int = 0) -> torch.Tensor:
        # Same distribution as nn.Dropout, but a uniform draw and a compare cost about half of the
        # bernoulli kernel on a CPU, and this runs on every (batch × n_items) input. The mask is built in
        # the uniform draw's own buffer; the scaled result goes into a buffer with ``room`` more columns,
        # where the first layer finds its input already concatenated (one (batch × n_items) copy fewer).
        if not self.training or self.dropout == 0.0:
            return x
        low = self.training_copies
        if low is not None and half_dropout_applies(x, self.dropout, low.dtype):
            return half_dropout(x, room, low.dtype)  # one random bit per entry (mixed_precision.py)
        keep = torch.rand_like(x).ge_(self.dropout)
        kept = keep.mul_(x) if not x.requires_grad else x * keep
        if kept.requires_grad:
            return kept.mul_(1.0 / (1.0 - self.dropout))
        wide = torch.empty((x.shape[0], x.shape[1] + room), dtype=kept.dtype if low is None else low.dtype,
                           device=x.device)
        torch.mul(kept, 1.0 / (1.0 - self.dropout), out=wide[:, :x.shape[1]])  # scaled (and cast) in one pass
        return wide

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        if self.normalize_input:
            x = F.normalize(x)
        first = self.layers[0]
        if _autocast_on(x.device.type):
            # a model without its own mixed-precision path trains this denoiser under autocast (L-DiffRec):
            # autocast casts inside the custom Functions' forward but not in their backward, so plain ops here
            h = first(torch.cat([self._input_dropout(x), self.embed(t).to(x.dtype)], dim=-1))
            for layer in self.layers[1:]:
                h = layer(tanh(h))
            return h
        x = self._input_dropout(x, room=self.emb_size)
        low = self.training_copies if self.training else None
        if low is None:
            h = ItemsAndStepLinear.apply(x, self.embed(t).to(x.dtype), first.weight, first.bias, None)
        else:
            h = ItemsAndStepLinear.apply(x.to(low.dtype), self.embed(t), first.weight, first.bias, low.of(first))
        for layer in self.layers[1:]:
            h = tanh(h)
            h = layer(h) if low is None else LowPrecisionLinear.apply(h, layer.weight, layer.bias, low.of(layer))
        return h

    # ----- exact fast inference ---------------------------------------------------------------
    def supports_fusion(self) -> bool:
        return not self.normalize_input and len(self.layers) >= 2

    def folded_shapes(self, batch_size: int) -> list[tuple[int, int, int]]:
        """(rows, in, out) of the GEMMs of one step of :meth:`fused_denoise` (the hidden-size ones)."""
        middle = [(batch_size, layer.in_features, layer.out_features) for layer in self.layers[1:-1]]
        return middle + [(batch_size, self.layers[-1].in_features, self.layers[0].out_features)]

    @torch.no_grad()
    def fused_denoise(self, x_start: torch.Tensor, coef_x0: list[float], coef_xt: list[float]) -> torch.Tensor:
        """x0-prediction inference of Algorithm 2 without the n_items-wide layers in between steps.

        With W the first layer's item block and V, c the last layer, the next step's input enters only as
        W·x_{t−1} = c1_t·W·(V h + c) + c2_t·W·x_t, so u_t = W·x_t follows a recursion through the small
        matrix W·V (hidden×hidden). Only the first W·x_T and the last x̂_0 = V h + c touch all items.
        Exact up to float reassociation; used in eval mode only (dropout off).
        ``coef_x0``/``coef_xt`` are the posterior mean coefficients for steps T−1..0, in that order.
        """
        # The recursion adds small c1-weighted increments to u with c2 close to 1: in bf16 they would round
        # away and the scores collapse, so u (and the item-wide first and last layers) stay in float32; with
        # ``scoring_dtype`` bf16 only the hidden-size GEMMs of each step run in bf16.
        with torch.autocast(device_type=x_start.device.type, enabled=False):
            return self._fused_denoise(x_start if x_start.dtype == torch.float64 else x_start.float(),
                                       coef_x0, coef_xt)

    def _folded(self, dtype: torch.dtype, low: torch.dtype, steps: int) -> tuple:
        """The folded matrices of :meth:`fused_denoise`, computed once per weight update (the W·V product alone
        costs as much as scoring a few hundred users), in the recursion's dtype ``dtype`` and, for the
        hidden-size GEMMs, ``low``."""
        key = (dtype, low, steps, tuple(p._version for p in self.parameters()), self.layers[0].weight.device)
        if self._folded_cache is not None and self._folded_cache[0] == key:
            return self._folded_cache[1]
        first, last = self.layers[0], self.layers[-1]
        n_items = last.weight.shape[0]
        w_items = first.weight[:, :n_items].to(dtype)
        fused_t = (w_items @ last.weight.to(dtype)).T.contiguous().to(low)  # (h_last, h1)
        fused_bias = w_items @ last.bias.to(dtype)
        # The step embedding's contribution to the first layer is the same row for every user.
        t = torch.arange(steps - 1, -1, -1, device=w_items.device)
        step_rows = (self.embed(t) @ first.weight[:, n_items:].T + first.bias).to(dtype)  # (steps, h1)
        # float recursion: (Wᵀ, b) for addmm; low-precision one: (W, b) as its fused linear + tanh takes them
        middle = [(layer.weight.T.contiguous().to(low) if low == dtype else layer.weight.to(low).contiguous(),
                   layer.bias.to(low)) for layer in self.layers[1:-1]]
        # the item block's transpose as a view: BLAS reads it in place, and a float32 copy of an
        # n_items-wide matrix would be held as long as the cache
        folded = (w_items.T, fused_t, fused_bias, step_rows, middle)
        self._folded_cache = (key, folded)
        return folded

    def _fused_denoise(self, x_start: torch.Tensor, coef_x0: list[float], coef_xt: list[float]) -> torch.Tensor:
        dtype = x_start.dtype
        low = dtype if dtype == torch.float64 else self.scoring_dtype
        if low != dtype:
            return self._low_precision_denoise(x_start, coef_x0, coef_xt, low)
        w_items_t, fused_t, fused_bias, step_rows, middle = self._folded(dtype, low, len(coef_x0))
        u = x_start @ w_items_t
        h = u
        for k in range(len(coef_x0)):
            h = (u + step_rows[k]).tanh_()
            for weight_t, bias in middle:
                h = torch.addmm(bias, h, weight_t).tanh_()
            if k < len(coef_x0) - 1:
                # u ← c2·u + c1·(h·(W V)ᵀ + W c), one GEMM with accumulation
                u = torch.addmm(u, h, fused_t, beta=coef_xt[k], alpha=coef_x0[k]).add_(fused_bias, alpha=coef_x0[k])
        last = self.layers[-1]
        return F.linear(h, last.weight.to(dtype), last.bias.to(dtype))  # float64 scores from a float32 model too

    def _low_precision_denoise(self, x_start: torch.Tensor, coef_x0: list[float], coef_xt: list[float],
                               low: torch.dtype) -> torch.Tensor:
        """:meth:`fused_denoise` with the hidden-size GEMMs in ``low``: u and its increments accumulate in
        float32. The c1·W·c part of u is the same for every user, so it is carried in the per-step rows
        (added with the step embedding's row) instead of being added to every user's u at every step."""
        dtype = x_start.dtype
        w_items_t, fused_t, fused_bias, step_rows, middle = self._folded(dtype, low, len(coef_x0))
        u = x_start @ w_items_t
        carried = torch.zeros_like(fused_bias)  # the user-independent part of u, c1·W·c summed over steps
        h = u
        for k in range(len(coef_x0)):
            h = torch.add(u, step_rows[k] + carried).tanh_().to(low)
            for weight, bias in middle:
                h = linear_tanh(h, weight, bias)
            if k < len(coef_x0) - 1:
                u = u.mul_(coef_xt[k]).add_(h @ fused_t, alpha=coef_x0[k])
                carried = carried * coef_xt[k] + coef_x0[k] * fused_bias
        return self.layers[-1](h.to(dtype))
