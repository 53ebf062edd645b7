"""The bf16 training step's cheaper passes: p = ½ dropout from random bits, the loss's cache-sized squaring,
the float32 loss of a bf16 output, and the bias gradient as a product."""

from __future__ import annotations

import pytest
import torch

import diffrec_cli.models.denoiser as denoiser_module
from diffrec_cli.mixed_precision import (column_sums, half_dropout, half_dropout_applies,
                                         low_precision_weight_gradient, row_mse, row_square_sums)
from diffrec_cli.models.denoiser import MLPDenoiser


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_half_dropout_keeps_twice_the_rounded_input_or_zero(dtype):  # float16 works, though training uses bf16
    torch.manual_seed(3)
    x = torch.rand(37, 53) + 0.25  # no zeros: a kept entry is told apart from a dropped one
    wide = half_dropout(x, room=4, dtype=dtype)
    assert wide.shape == (37, 57) and wide.dtype == dtype
    dropped = wide[:, :53]
    kept = dropped != 0
    assert torch.equal(dropped[kept], (x.to(dtype) * 2)[kept])  # exactly 2·round(x), not round(2·x) by luck
    assert 0 < int(kept.sum()) < x.numel()


def test_half_dropout_keeps_each_entry_with_probability_one_half_independently():
    torch.manual_seed(11)
    x = torch.ones(500, 2003)  # 1,001,500 entries: not a multiple of 64 bits
    kept = (half_dropout(x, 0, torch.bfloat16) != 0).float()
    n = kept.numel()
    sd = 0.5 / n ** 0.5
    assert abs(kept.mean().item() - 0.5) < 5 * sd
    # every one of the 16 bit positions a lane contributes, and every row, is fair
    flat = kept.view(-1)
    lanes = -(-n // 64) * 4
    for bit in range(16):
        part = flat[bit * lanes:min(n, (bit + 1) * lanes)]
        assert abs(part.mean().item() - 0.5) < 5 * 0.5 / part.numel() ** 0.5
    assert (kept.mean(dim=1) - 0.5).abs().max().item() < 5 * 0.5 / 2003 ** 0.5
    # neighbours (along a row, across rows, 16 apart) are uncorrelated
    for lag in (1, 16, 2003, lanes):
        corr = torch.corrcoef(torch.stack([flat[:-lag], flat[lag:]]))[0, 1].item()
        assert abs(corr) < 5 / n ** 0.5


def test_half_dropout_follows_the_seed_and_differs_between_calls():
    x = torch.rand(7, 9) + 0.5
    torch.manual_seed(5)
    first, second = half_dropout(x, 0, torch.bfloat16), half_dropout(x, 0, torch.bfloat16)
    torch.manual_seed(5)
    assert torch.equal(half_dropout(x, 0, torch.bfloat16), first)
    assert not torch.equal(first, second)


def test_half_dropout_applies_only_to_plain_16_bit_rounded_inputs():
    x = torch.rand(3, 4)
    assert half_dropout_applies(x, 0.5, torch.bfloat16)
    assert not half_dropout_applies(x, 0.3, torch.bfloat16)  # one fair bit is dropout ½ only
    assert not half_dropout_applies(x, 0.5, torch.float16)  # 70,000 would round to inf, and a dropped inf is NaN
    assert not half_dropout_applies(x, 0.5, torch.float32)
    assert not half_dropout_applies(x.requires_grad_(), 0.5, torch.bfloat16)
    assert not half_dropout_applies(torch.rand(2, 3, 4), 0.5, torch.bfloat16)
    assert not half_dropout_applies(torch.rand(3, 4, device="meta"), 0.5, torch.bfloat16)  # not a CPU tensor


@pytest.mark.parametrize("p, uses_bits", [(0.5, True), (0.3, False)])
def test_bf16_training_draws_bits_only_for_dropout_one_half(monkeypatch, p, uses_bits):
    calls = []
    real = denoiser_module.half_dropout
    monkeypatch.setattr(denoiser_module, "half_dropout", lambda *a: calls.append(a) or real(*a))
    torch.manual_seed(0)
    net = MLPDenoiser(40, hidden=(8,), emb_size=4, dropout=p).train()
    net.set_precision(torch.bfloat16, torch.float32)
    net(torch.rand(6, 40), torch.tensor([0, 1, 2, 3, 4, 5])).float().sum().backward()
    assert len(calls) == (1 if uses_bits else 0)
    net.set_precision(torch.float32, torch.float32)  # fp32 training keeps nn.Dropout's stream
    net(torch.rand(6, 40), torch.tensor([0, 1, 2, 3, 4, 5]))
    assert len(calls) == (1 if uses_bits else 0)


@pytest.mark.parametrize("rows, width, block_bytes", [(400, 2810, 1 << 20), (37, 101, 3 * 101 * 4), (5, 101, 1),
                                                     (2, 101, 1 << 20), (403, 40_000, 1 << 20), (7, 40_000, 1)])
def test_row_square_sums_are_bit_for_bit_the_whole_tensor_ones(rows, width, block_bytes):
    # 40,000 columns: torch splits one such row's sum across threads (another order), so no block may hold a
    # single row (403 = 67 blocks of 6 and one row left over)
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        torch.manual_seed(rows)
        values = torch.randn(rows, width) * 0.3
        assert torch.equal(row_square_sums(values, block_bytes), values.square().sum(dim=1))
        strided = values.t().contiguous().t()
        assert torch.equal(row_square_sums(strided, block_bytes), strided.square().sum(dim=1))
    finally:
        torch.set_num_threads(threads)


def test_loss_of_a_bf16_output_is_bit_for_bit_the_promoting_expression():
    torch.manual_seed(2)
    output = torch.randn(9, 300).bfloat16().requires_grad_()
    target = (torch.rand(9, 300) < 0.2).float()
    weights = torch.rand(9)
    loss = row_mse(output, target)
    (grad,) = torch.autograd.grad((loss * weights).sum(), output)
    # what the loss computed before: a promoting subtraction, and the scaled difference rounded on the way out
    diff = torch.sub(output.detach(), target)
    assert torch.equal(loss.detach(), diff.square().sum(dim=1).div_(300))
    scale = (weights / 300 * 2.0)[:, None]
    assert grad.dtype == torch.bfloat16
    assert torch.equal(grad, torch.mul(diff, scale, out=torch.empty(9, 300, dtype=torch.bfloat16)))


def test_column_sums_of_a_bf16_gradient_round_once_and_fp32_sums_stay_exact():
    torch.manual_seed(4)
    grad = torch.randn(400, 57)
    assert torch.equal(column_sums(grad), grad.sum(0))
    low = grad.bfloat16()
    sums = column_sums(low)
    assert sums.dtype == torch.float32 and sums.shape == (57,)
    exact = low.double().sum(0)
    assert torch.equal(sums, sums.bfloat16().float())  # one rounding to bf16, then widened
    assert ((sums.double() - exact).abs() <= exact.abs() * 2 ** -8 + 1e-6).all()


def test_loss_of_a_float64_output_stays_float64():
    output = torch.tensor([[0.1, 0.7]], dtype=torch.float64, requires_grad=True)
    target = torch.tensor([[0.0, 1.0]])
    loss = row_mse(output, target)
    assert loss.dtype == torch.float64
    assert loss.item() == ((0.1 - 0.0) ** 2 + (0.7 - 1.0) ** 2) / 2
    (grad,) = torch.autograd.grad(loss.sum(), output)
    assert grad.dtype == torch.float64
    torch.testing.assert_close(grad, torch.tensor([[0.1, 0.7 - 1.0]], dtype=torch.float64), rtol=1e-15, atol=0)


def test_low_precision_weight_gradient_is_grad_transposed_times_input_in_float32():
    torch.manual_seed(6)
    grad, x = torch.randn(40, 30).bfloat16(), torch.randn(40, 70).bfloat16()
    result = low_precision_weight_gradient(grad, x)
    assert result.shape == (30, 70) and result.dtype == torch.float32 and result.is_contiguous()
    exact = grad.double().t() @ x.double()
    assert ((result.double() - exact).abs() <= exact.abs() * 2 ** -7 + 1e-2).all()
    torch.testing.assert_close(result, torch.mm(grad.t(), x).float(), rtol=2 ** -7, atol=1e-2)


def test_loss_follows_torch_promotion_and_broadcasting():
    output = torch.rand(1, 8).bfloat16()
    target = torch.rand(3, 8)
    assert row_mse(output, target).shape == (3,)  # a broadcast target, as the plain expression allows
    scalar = torch.tensor(0.5, dtype=torch.float64)  # a 0-dim target does not widen the output's dtype
    assert row_mse(torch.rand(2, 4), scalar).dtype == torch.float32


def test_column_sums_of_float16_and_float64_gradients_keep_a_float32_accumulator():
    grad = torch.full((400, 3), 300.0, dtype=torch.float16)
    assert torch.equal(column_sums(grad), torch.full((3,), 120_000.0))  # 120,000 overflows float16
    wide = torch.rand(5, 3, dtype=torch.float64)
    assert torch.equal(column_sums(wide), wide.sum(0, dtype=torch.float32))


def test_first_layer_weight_gradient_of_a_float64_model_stays_float64():
    torch.manual_seed(8)
    net = MLPDenoiser(30, hidden=(6,), emb_size=4, dropout=0.0).double().train()
    x, t = torch.rand(5, 30, dtype=torch.float64), torch.tensor([0, 1, 2, 3, 4])
    net(x, t).square().sum().backward()
    first = net.layers[0]
    h = torch.cat([x, net.embed(t)], dim=1).detach()
    reference = torch.autograd.grad(net.layers[1](torch.tanh(first(h))).square().sum(), first.weight)[0]
    torch.testing.assert_close(first.weight.grad, reference, rtol=1e-12, atol=1e-12)
