"""Mixed-precision pieces of the MLP denoiser: bf16 matmuls over fp32 master weights, and a one-pass loss.

Autocast re-casts every weight and activation around each op and keeps float32 copies of what it casts;
here the low-precision weight copies are made once per optimiser step (when a weight's version changes),
activations stay in the compute dtype between layers, and gradients reach the fp32 master weights.
"""

from __future__ import annotations

import torch
from torch import nn


class LowPrecisionLinear(torch.autograd.Function):
    """``x @ weight_low.T + bias`` in the compute dtype; gradients for the fp32 ``weight`` and ``bias``.

    ``bias`` may be (out,) or one row per sample (B, out) (the first layer's step-embedding part).
    """

    @staticmethod
    def forward(ctx, x, weight, bias, weight_low):  # type: ignore[override]
        ctx.save_for_backward(x, weight_low)
        ctx.per_row_bias = bias.dim() == 2
        return torch.addmm(bias.to(x.dtype), x, weight_low.t())

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight_low = ctx.saved_tensors
        grad_x = grad @ weight_low if ctx.needs_input_grad[0] else None
        grad_w = (grad.t() @ x).float() if ctx.needs_input_grad[1] else None
        grad_b = None
        if ctx.needs_input_grad[2]:
            grad_b = grad.float() if ctx.per_row_bias else grad.sum(0, dtype=torch.float32)
        return grad_x, grad_w, grad_b, None


class ItemsAndStepLinear(torch.autograd.Function):
    """The denoiser's first layer on [x, step embedding] without concatenating them: ``x @ W_items.T +
    emb @ W_step.T + b``. Its weight gradient is written straight into one (out, n_items + emb) tensor, and
    no gradient is computed for ``x`` unless it needs one (a concatenated input carrying the embedding
    would make autograd compute a (batch × n_items) input gradient nobody uses).
    ``weight_low``: the weight in the compute dtype (bf16), or None to compute in ``x``'s dtype.
    """

    @staticmethod
    def forward(ctx, x, emb, weight, bias, weight_low):  # type: ignore[override]
        n_in = x.shape[1]
        items = (weight if weight_low is None else weight_low)[:, :n_in]
        step = torch.addmm(bias, emb, weight[:, n_in:].t())
        ctx.save_for_backward(x, emb, weight, items)
        return torch.addmm(step.to(x.dtype), x, items.t())

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, emb, weight, items = ctx.saved_tensors
        n_in = x.shape[1]
        grad_x = grad @ items if ctx.needs_input_grad[0] else None
        grad_w = torch.empty(weight.shape, dtype=weight.dtype, device=weight.device)
        if grad.dtype == weight.dtype:
            torch.mm(grad.t(), x, out=grad_w[:, :n_in])
        else:
            grad_w[:, :n_in].copy_(grad.t() @ x)
        grad32 = grad.to(weight.dtype)
        torch.mm(grad32.t(), emb, out=grad_w[:, n_in:])
        grad_emb = grad32 @ weight[:, n_in:] if ctx.needs_input_grad[1] else None
        return grad_x, grad_emb, grad_w, grad32.sum(0), None


class RowMSE(torch.autograd.Function):
    """Mean over columns of (output − target)², per row, in float32: one pass forward, one backward.

    The unfused form (sub, pow, mean and their backward) walks the (batch × n_items) tensor six times.
    """

    @staticmethod
    def forward(ctx, output, target):  # type: ignore[override]
        diff = torch.sub(output, target, alpha=1) if output.dtype == target.dtype else output.float() - target
        ctx.save_for_backward(diff)
        ctx.out_dtype = output.dtype
        return torch.linalg.vector_norm(diff, dim=1).square_().div_(diff.shape[1])

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (diff,) = ctx.saved_tensors
        scale = (grad * (2.0 / diff.shape[1]))[:, None]
        if ctx.out_dtype == diff.dtype:
            return diff.mul_(scale), None  # the saved difference is not needed again
        return torch.mul(diff, scale, out=torch.empty(diff.shape, dtype=ctx.out_dtype, device=diff.device)), None


def row_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row mean squared error for a 2-D ``output``; the plain expression elsewhere (and for gradients
    the target needs)."""
    if output.dim() != 2 or target.requires_grad:
        return ((target - output) ** 2).mean(dim=tuple(range(1, output.dim())))
    return RowMSE.apply(output, target)


class WeightCopies:
    """Low-precision copies of some linear layers' weights, refreshed only when a weight has changed."""

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self._copies: dict[int, tuple[int, torch.Tensor]] = {}

    def of(self, layer: nn.Linear) -> torch.Tensor:
        weight = layer.weight
        version = weight._version  # bumped by every in-place update: optimiser steps, load_state_dict
        cached = self._copies.get(id(weight))
        if cached is None or cached[0] != version or cached[1].device != weight.device:
            cached = (version, weight.detach().to(self.dtype))
            self._copies[id(weight)] = cached
        return cached[1]
