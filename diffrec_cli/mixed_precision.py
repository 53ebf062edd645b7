"""Mixed-precision pieces of the MLP denoiser: bf16 matmuls over fp32 master weights, and a one-pass loss.

Autocast casts weights and activations around each op, and its backward casts gradients back one op at a
time; here each weight is cast once per step, activations stay in the compute dtype between layers, the
loss is computed in float32, and the gradients reach the fp32 master weights directly.
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn


class LowPrecisionLinear(torch.autograd.Function):
    """``x @ weight_low.T + bias`` in the compute dtype; gradients for the fp32 ``weight`` and ``bias``."""

    @staticmethod
    def forward(ctx, x, weight, bias, weight_low):  # type: ignore[override]
        ctx.save_for_backward(x, weight_low)
        return torch.addmm(bias.to(x.dtype), x, weight_low.t())

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        x, weight_low = ctx.saved_tensors
        grad_x = grad @ weight_low if ctx.needs_input_grad[0] else None
        grad_w = low_precision_weight_gradient(grad, x) if ctx.needs_input_grad[1] else None
        grad_b = column_sums(grad) if ctx.needs_input_grad[2] else None
        return grad_x, grad_w, grad_b, None


def low_precision_weight_gradient(grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """gradᵀ·x in float32 from low-precision operands, with gradᵀ copied to rows first: oneDNN's bf16 GEMM
    reads a transposed left operand far slower (a [600, 400] · [400, 2,820] product: 3.6 ms against 2.0,
    the copy included; [2,810, 400] · [400, 600]: 3.2 against 2.7); the same products, and on the CPUs
    measured the same result bit for bit."""
    return torch.mm(grad.t().contiguous(), x).float()


def column_sums(grad: torch.Tensor) -> torch.Tensor:
    """Float32 column sums of a low-precision gradient (the bias gradient), as a (1 × rows) · grad product:
    half the time of a summation with a float32 accumulator, which first copies the whole gradient to
    float32. Rounded to bf16 once, like the weight gradient beside it (other dtypes: a float32 summation; a
    float16 sum could overflow)."""
    if grad.dtype != torch.bfloat16:
        return grad.sum(0, dtype=torch.float32)
    return torch.mm(grad.new_ones((1, grad.shape[0])), grad)[0].float()


class ItemsAndStepLinear(torch.autograd.Function):
    """The denoiser's first layer on [x, step embedding] without the gradient nobody needs.

    Forward is the plain layer on the concatenation (the same products, bit for bit, as before); an ``x``
    as wide as the layer's input already has the embedding's columns free at its end and is filled in place
    (the input dropout writes into such a buffer) instead of being concatenated. Backward
    computes the weight gradient and the embedding's input gradient only: with autograd, the embedding in
    the concatenated input makes it compute the whole (batch × n_items) input gradient, a GEMM as large as
    the layer itself, of which all but the embedding's columns is discarded (``x`` needs none).
    ``weight_low``: the weight in the compute dtype (bf16), or None to compute in ``x``'s dtype.
    """

    @staticmethod
    def forward(ctx, x, emb, weight, bias, weight_low):  # type: ignore[override]
        compute = weight if weight_low is None else weight_low
        n_items = weight.shape[1] - emb.shape[1]
        if x.shape[1] == weight.shape[1]:
            h = x
            h[:, n_items:] = emb.detach()
        else:
            h = torch.cat([x, emb.to(x.dtype)], dim=-1)
        ctx.save_for_backward(h, compute)
        ctx.n_items = n_items
        return torch.addmm(bias.to(x.dtype), h, compute.t())

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        h, compute = ctx.saved_tensors
        if grad.element_size() >= 4:
            # in the weight's own layout, as autograd's addmm backward computes it for a transposed weight
            # (the same roundings; a transposed result would cost a strided copy when accumulated)
            grad_w = torch.mm(grad.t(), h)
        else:
            grad_w = low_precision_weight_gradient(grad, h)
        grad_b = grad.sum(0) if grad.dtype == torch.float32 else grad.sum(0, dtype=torch.float32)
        grad_emb = None
        if ctx.needs_input_grad[1]:
            grad_emb = torch.mm(grad, compute[:, ctx.n_items:]).float()
        grad_x = torch.mm(grad, compute[:, :ctx.n_items]) if ctx.needs_input_grad[0] else None
        return grad_x, grad_emb, grad_w, grad_b, None


class LowPrecisionTanh(torch.autograd.Function):
    """tanh of a bf16 tensor computed in float32 and rounded back: on CPUs torch's bf16 tanh kernel is
    several times slower than the two casts and a float32 tanh together. The backward (1 − y²)·g stays in
    bf16, where it is fast."""

    @staticmethod
    def forward(ctx, h):  # type: ignore[override]
        out = h.float().tanh_().to(h.dtype)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (out,) = ctx.saved_tensors
        return torch.ops.aten.tanh_backward(grad, out)


@functools.lru_cache(maxsize=1)
def _fused_linear_tanh() -> Any:
    """oneDNN's linear with a fused tanh (torch's CPU builds with mkldnn), or None."""
    if not torch.backends.mkldnn.is_available():
        return None
    try:
        op = torch.ops.mkldnn._linear_pointwise
        probe = torch.ones(2, 3, dtype=torch.bfloat16)
        op(probe, torch.ones(4, 3, dtype=torch.bfloat16), torch.zeros(4, dtype=torch.bfloat16), "tanh", [], "")
    except (AttributeError, RuntimeError, NotImplementedError):
        return None
    return op


def linear_tanh(h: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """tanh(h·weightᵀ + bias) without autograd. For bf16 on a CPU one oneDNN primitive applies the tanh to
    the float32 accumulator before rounding to bf16: 30 % less time than the GEMM, the casts and a float32
    tanh one after another (a [373, 600] × [600, 600] layer), and one rounding instead of two."""
    fused = _fused_linear_tanh() if h.dtype == torch.bfloat16 and h.device.type == "cpu" else None
    if fused is not None:
        return fused(h, weight, bias, "tanh", [], "")
    return tanh(torch.addmm(bias, h, weight.t()))


def tanh(h: torch.Tensor) -> torch.Tensor:
    """torch.tanh, through float32 for bf16 tensors on a CPU (see ``LowPrecisionTanh``)."""
    if h.dtype == torch.bfloat16 and h.device.type == "cpu":
        return LowPrecisionTanh.apply(h)
    return torch.tanh(h)


class RowMSE(torch.autograd.Function):
    """Mean over columns of (output − target)², per row, in float32.

    The unfused form (sub, pow, mean and their backward: sub, mul, mul, neg) walks the (batch × n_items)
    tensor seven times and allocates as many; this walks it four times (five for a bf16 output, widened
    first and its gradient rounded back) and squares it a block of rows at a time into a buffer that stays
    in the core's cache. The backward reuses the saved difference: one backward per graph.
    """

    @staticmethod
    def forward(ctx, output, target):  # type: ignore[override]
        wide = torch.result_type(output, target)
        if output.dtype == wide or output.shape != target.shape:
            diff = torch.sub(output, target)
        else:
            # a bf16 output widened exactly, then the same float32 subtraction as a promoting sub (which
            # would first copy the output to float32 anyway, into one more buffer)
            diff = output.to(wide)
            diff.sub_(target)
        ctx.save_for_backward(diff)
        ctx.out_dtype = output.dtype
        # square, sum, divide: the same roundings as ((target − output) ** 2).mean(1)
        return row_square_sums(diff).div_(diff.shape[1])

    @staticmethod
    def backward(ctx, grad):  # type: ignore[override]
        (diff,) = ctx.saved_tensors
        scale = (grad / diff.shape[1] * 2.0)[:, None]  # (g / n)·2, as mean's and pow's backward round it
        # the saved difference is not needed again; a bf16 output gets the float32 product rounded once
        return diff.mul_(scale).to(ctx.out_dtype), None


def row_square_sums(rows: torch.Tensor, block_bytes: int = 1 << 20) -> torch.Tensor:
    """``rows.square().sum(1)`` of a 2-D tensor, bit for bit, squaring a block of rows at a time into one
    buffer small enough to stay in cache (each row's sum does not depend on the rows beside it).

    Blocks hold at least two rows: torch sums a single wide row split across threads, in another order
    than the same row among others; and a strided tensor is summed whole, in its own order."""
    n_rows, width = rows.shape
    block = block_bytes // max(1, width * rows.element_size())
    if block < 2 or block >= n_rows or not rows.is_contiguous():
        return rows.square().sum(dim=1)
    bounds = list(range(0, n_rows, block)) + [n_rows]
    if bounds[-1] - bounds[-2] == 1:
        del bounds[-2]  # the last row joins the block before it
    squares = torch.empty((block + 1, width), dtype=rows.dtype, device=rows.device)
    sums = torch.empty(n_rows, dtype=rows.dtype, device=rows.device)
    for start, end in zip(bounds[:-1], bounds[1:]):
        torch.square(rows[start:end], out=squares[:end - start])
        torch.sum(squares[:end - start], dim=1, out=sums[start:end])
    return sums


def row_mse(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-row mean squared error for a 2-D ``output``; the plain expression elsewhere (and for gradients
    the target needs)."""
    if output.dim() != 2 or target.requires_grad:
        return ((target - output) ** 2).mean(dim=tuple(range(1, output.dim())))
    return RowMSE.apply(output, target)


class WeightCopies:
    """Low-precision copies of the weights for one training forward pass, each cast once per step.

    (Not cached across steps: the fused optimiser updates weights without bumping their version counters,
    and every step changes them anyway.)
    """

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype

    def of(self, layer: nn.Linear) -> torch.Tensor:
        return layer.weight.detach().to(self.dtype)


# A 16-bit float 2.0 (bf16 and float16 alike) is the bit pattern 0x4000: a random bit moved to bit 14 is
# then the scaled keep-mask of dropout with p = ½ (0.0 or 2.0), with no float conversion.
_TWO_AS_BITS = 0x4000
_LANE_BITS = 16


def half_dropout_applies(x: torch.Tensor, p: float, dtype: torch.dtype) -> bool:
    """Whether :func:`half_dropout` is dropout ``p`` of ``x`` into ``dtype``: p = ½, a 2-D CPU input needing no
    gradient, bf16."""
    # a CPU, where torch draws each float uniform from mt19937 one at a time; bf16, whose range is float32's
    # (float16 would round large entries to inf, and a dropped inf times 0 is NaN)
    return (p == 0.5 and x.dim() == 2 and not x.requires_grad and dtype == torch.bfloat16
            and x.device.type == "cpu")


def half_dropout(x: torch.Tensor, room: int, dtype: torch.dtype) -> torch.Tensor:
    """Dropout with p = ½ of a 2-D float32 ``x``, scaled by 2 and rounded to the 16-bit float ``dtype``, into
    a buffer with ``room`` more columns (left unset): ``2·x`` where a random bit is set, 0 elsewhere.

    Each entry needs one fair random bit, so it takes them 64 at a time from 64-bit draws instead of one
    float32 uniform per entry and a compare (0.2 ms against 3.3 for a 400 × 2,810 batch on one core; the
    whole dropout 3 ms against 6), and the mask is applied to the already-rounded copy in one 16-bit
    multiply (exact: ×2 and ×0). The entries are still independent and kept with probability exactly ½,
    but not the same entries as the float32 path draws for one seed.
    """
    rows, cols = x.shape
    count = rows * cols
    words = torch.empty(-(-count // 64), dtype=torch.int64, device=x.device).random_(-2 ** 63, None)
    lanes = words.view(torch.int16)
    mask = torch.empty((_LANE_BITS, lanes.numel()), dtype=torch.int16, device=x.device)
    for bit in range(_LANE_BITS):
        # bit `bit` of every lane to bit 14 (an arithmetic right shift for the sign bit)
        if bit <= 14:
            torch.bitwise_left_shift(lanes, 14 - bit, out=mask[bit])
        else:
            torch.bitwise_right_shift(lanes, bit - 14, out=mask[bit])
    mask.bitwise_and_(_TWO_AS_BITS)
    wide = torch.empty((rows, cols + room), dtype=dtype, device=x.device)
    dropped = wide[:, :cols]
    dropped.copy_(x)
    dropped.mul_(mask.view(-1)[:count].view(rows, cols).view(dtype))
    return wide
