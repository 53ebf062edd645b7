"""precision = auto: the probe's figures decide (injected here), forced bf16 warns, the decision is recorded;
and the mixed-precision pieces compute what the plain expressions compute."""

from __future__ import annotations

import json

import pytest
import torch

import diffrec_cli.training.precision as precision
from diffrec_cli.config import resolve_settings
from diffrec_cli.diffusion.schedules import LinearVarianceSchedule
from diffrec_cli.mixed_precision import ItemsAndStepLinear, row_mse
from diffrec_cli.models.build import build_model
from diffrec_cli.models.diffrec import DiffRec
from diffrec_cli.plugins import load_plugins
from diffrec_cli.training.loop import fit
from diffrec_cli.training.precision import PrecisionChoice, choose_precision, topk_agreement

from conftest import FAST_MODEL, FAST_TRAIN

CPU = torch.device("cpu")
ML1M = [(400, 3716, 600), (400, 600, 200), (400, 200, 600), (400, 600, 3706)]  # 11 GFLOP per step
SCORING = [(565, 600, 200), (565, 200, 600), (565, 600, 600)]


def probe_saying(fp32: float, bf16: float):
    calls = []

    def probe(shapes, device, backward):
        calls.append((tuple(shapes), backward))
        return fp32, bf16

    probe.calls = calls
    return probe


def never_called(shapes, device, backward):
    raise AssertionError("the probe must not run")


def test_auto_picks_fp32_when_the_probe_finds_bf16_slower():
    choice = choose_precision("auto", CPU, ML1M, SCORING, probe_saying(70.0, 60.0), supported=True)
    assert (choice.training, choice.scoring, choice.warning) == ("fp32", "fp32", None)
    assert choice.training_gflops == (70.0, 60.0) and choice.scoring_gflops == (70.0, 60.0)


def test_auto_picks_bf16_when_the_probe_finds_it_faster_and_needs_the_full_factor():
    assert choose_precision("auto", CPU, ML1M, SCORING, probe_saying(70.0, 200.0), supported=True).training == "bf16"
    assert choose_precision("auto", CPU, ML1M, SCORING, probe_saying(100.0, 130.0), supported=True).training == "bf16"
    assert choose_precision("auto", CPU, ML1M, SCORING, probe_saying(100.0, 129.0), supported=True).training == "fp32"
    probe = probe_saying(70.0, 200.0)
    choice = choose_precision("auto", CPU, ML1M, SCORING, probe, supported=True)
    assert choice.scoring == "bf16"
    assert probe.calls == [(tuple(ML1M), True), (tuple(SCORING), False)]  # training shapes with backward
    assert choice.describe() == "bf16 (auto 2.9x)"
    assert choice.to_json()["training_probe"] == {"fp32_gflops": 70.0, "bf16_gflops": 200.0}


def test_forced_bf16_runs_but_warns_when_slower_and_fp32_never_probes():
    choice = choose_precision("bf16", CPU, ML1M, SCORING, probe_saying(80.0, 40.0), supported=True)
    assert (choice.training, choice.scoring) == ("bf16", "bf16")
    assert choice.warning == "bf16 was asked for but is slower here (40 against 80 GFLOP/s in fp32)"
    assert choose_precision("bf16", CPU, ML1M, SCORING, probe_saying(80.0, 160.0), supported=True).warning is None
    assert choose_precision("fp32", CPU, ML1M, SCORING, never_called, supported=True) == PrecisionChoice("fp32")
    # no bf16 on the device: no probe, fp32, and a forced bf16 says so
    assert choose_precision("auto", CPU, ML1M, SCORING, never_called, supported=False).training == "fp32"
    assert "not supported" in choose_precision("bf16", CPU, ML1M, SCORING, never_called, supported=False).warning


def test_tiny_models_stay_fp32_without_a_probe():
    tiny_shapes = [(64, 40, 32), (64, 32, 36)]
    assert choose_precision("auto", CPU, tiny_shapes, tiny_shapes, never_called, supported=True) == \
        PrecisionChoice("auto")


def test_scoring_falls_back_to_fp32_when_its_top_k_disagrees():
    choice = PrecisionChoice("auto", "bf16", "bf16", (70.0, 200.0), (70.0, 200.0))
    assert choice.scoring_checked(0.94).scoring == "fp32"
    assert choice.scoring_checked(0.95).scoring == "bf16"
    assert choice.scoring_checked(0.94).scoring_agreement == 0.94
    a = torch.tensor([[5.0, 4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    b = torch.tensor([[5.0, 4.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0, 5.0]])
    assert topk_agreement(a, b, k=2) == 1.0
    assert topk_agreement(a, b, k=3) == pytest.approx((2 / 3 + 1) / 2)


def test_fit_with_an_injected_probe_trains_in_bf16_and_records_it(tiny, monkeypatch):
    monkeypatch.setattr(precision, "MIN_PROBE_GFLOP", 0.0)
    monkeypatch.setattr(precision, "bf16_supported", lambda device: True)
    registry = load_plugins(entry_points=False).registry
    results = {}
    for fp32, bf16 in ((70.0, 60.0), (70.0, 200.0)):
        torch.manual_seed(0)
        model, _ = build_model(registry, "diffrec", dict(FAST_MODEL), n_users=tiny.n_users, n_items=tiny.n_items)
        config = resolve_settings(dict(FAST_TRAIN), {}, dataset=tiny.name, device="cpu").train
        assert config.precision == "auto"
        result = fit(model, tiny, config, probe=probe_saying(fp32, bf16))
        results[bf16] = (result, model)
    slower, faster = results[60.0], results[200.0]
    assert slower[0].precision["training"] == "fp32" and slower[1].denoiser.training_copies is None
    assert faster[0].precision["training"] == "bf16" and faster[1].denoiser.training_copies.dtype == torch.bfloat16
    assert faster[0].precision["training_probe"] == {"fp32_gflops": 70.0, "bf16_gflops": 200.0}
    assert faster[0].precision["scoring_top20_agreement"] is not None  # checked at the first evaluation


@pytest.mark.parametrize("name", ["diffrec", "tdiffrec", "ldiffrec", "ltdiffrec"])
def test_every_built_in_model_trains_and_scores_when_the_probe_picks_bf16(tiny, monkeypatch, name):
    # L-DiffRec has no mixed-precision path of its own and trains under autocast: its denoiser's custom
    # autograd Functions once met bf16 gradients against float32 saved inputs (a RuntimeError in backward)
    monkeypatch.setattr(precision, "MIN_PROBE_GFLOP", 0.0)
    monkeypatch.setattr(precision, "bf16_supported", lambda device: True)
    registry = load_plugins(entry_points=False).registry
    torch.manual_seed(0)
    settings = {**registry.get("model", name).cls.test_settings}
    model, _ = build_model(registry, name, settings, n_users=tiny.n_users, n_items=tiny.n_items, data=tiny)
    config = resolve_settings(dict(FAST_TRAIN), {}, dataset=tiny.name, device="cpu").train
    result = fit(model, tiny, config, probe=probe_saying(70.0, 200.0))
    assert result.precision["training"] == "bf16" and result.epochs_run == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert 0.0 <= result.test["recall@20"] <= 1.0


def test_the_run_records_the_decision(tiny_home, monkeypatch):
    from diffrec_cli.training.job import train

    monkeypatch.setattr(precision, "MIN_PROBE_GFLOP", 0.0)
    monkeypatch.setattr(precision, "bf16_supported", lambda device: True)
    import diffrec_cli.training.loop as loop

    monkeypatch.setattr(loop, "probe_gemms", probe_saying(50.0, 40.0))
    settings = resolve_settings(dict(FAST_TRAIN), dict(FAST_MODEL), dataset="tiny", device="cpu")
    outcome = train(settings, load_plugins(entry_points=False).registry, home=tiny_home)
    config = json.loads((outcome.run.path / "config.json").read_text())
    final = json.loads((outcome.run.path / "final.json").read_text())
    assert config["precision"]["training"] == "fp32"
    assert config["precision"]["training_probe"] == {"fp32_gflops": 50.0, "bf16_gflops": 40.0}
    assert final["precision"]["requested"] == "auto"


def test_first_layer_without_concatenation_matches_the_concatenated_layer():
    torch.manual_seed(0)
    layer = torch.nn.Linear(13, 7)
    x, emb = torch.rand(5, 10), torch.randn(5, 3, requires_grad=True)
    plain = layer(torch.cat([x, emb], dim=1))
    split = ItemsAndStepLinear.apply(x, emb, layer.weight, layer.bias, None)
    torch.testing.assert_close(split, plain, rtol=0, atol=1e-6)
    grads_plain = torch.autograd.grad((plain ** 2).sum(), [layer.weight, layer.bias, emb])
    grads_split = torch.autograd.grad((split ** 2).sum(), [layer.weight, layer.bias, emb])
    for a, b in zip(grads_split, grads_plain):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_dropout_into_the_wide_buffer_trains_bit_for_bit_like_the_concatenation(dtype):
    """The dropout's result written beside free embedding columns gives the same loss and gradients, to
    the bit, as the concatenated input it replaces."""
    from diffrec_cli.models.denoiser import MLPDenoiser

    results = []
    for room in (True, False):
        torch.manual_seed(5)
        denoiser = MLPDenoiser(50, (8, 12), 4, 0.5, False).train()
        denoiser.set_precision(dtype, torch.float32)
        if not room:
            wide = denoiser._input_dropout
            denoiser._input_dropout = lambda x, room=0: wide(x, 0)
        x, t = (torch.rand(6, 50) < 0.2).float(), torch.tensor([0, 3, 1, 2, 5, 4])
        out = denoiser(x, t)
        loss = (out.float() ** 2).sum()
        results.append((out, torch.autograd.grad(loss, list(denoiser.parameters()))))
    assert torch.equal(results[0][0], results[1][0])
    for a, b in zip(results[0][1], results[1][1]):
        assert torch.equal(a, b)


def test_row_mse_and_its_gradient_match_the_plain_expression():
    torch.manual_seed(1)
    output, target = torch.randn(4, 9, requires_grad=True), torch.rand(4, 9)
    weights = torch.tensor([1.0, 2.0, 0.5, 3.0])
    fused, plain = row_mse(output, target), ((target - output) ** 2).mean(dim=1)
    torch.testing.assert_close(fused, plain, rtol=0, atol=1e-6)
    torch.testing.assert_close(torch.autograd.grad((fused * weights).sum(), output)[0],
                               torch.autograd.grad((plain * weights).sum(), output)[0], rtol=0, atol=1e-6)


def test_bf16_scoring_keeps_scores_float32_and_close_to_fp32():
    torch.manual_seed(0)
    schedule = LinearVarianceSchedule(steps=40, noise_scale=0.005, noise_min=0.005, noise_max=0.01)
    model = DiffRec(20, 300, schedule=schedule, dims=[64], emb_size=6).eval()
    x = (torch.rand(16, 300) < 0.1).float()
    users = torch.arange(16)
    full = model.scores(users, x)
    model.set_precision(torch.float32, torch.bfloat16)
    low = model.scores(users, x)
    assert low.dtype == torch.float32
    assert 0 < (low - full).abs().max() < 0.05  # the hidden steps did run in bf16, without collapsing
    assert topk_agreement(full, low, k=20) >= 0.9


def test_bf16_tanh_through_float32_matches_torch_tanh_and_its_gradient():
    from diffrec_cli.mixed_precision import tanh

    torch.manual_seed(2)
    h = torch.randn(6, 5).to(torch.bfloat16).requires_grad_()
    out = tanh(h)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, torch.tanh(h.float()).to(torch.bfloat16), rtol=0, atol=0)
    grad = torch.randn(6, 5).to(torch.bfloat16)
    (mine,) = torch.autograd.grad(out, h, grad)
    (plain,) = torch.autograd.grad(torch.tanh(h), h, grad)
    torch.testing.assert_close(mine.float(), plain.float(), rtol=0.02, atol=0.02)


def test_a_resumed_run_replays_the_recorded_probe():
    from diffrec_cli.training.precision import replayed_probe

    for rates in ((70.0, 200.0), (70.0, 60.0)):
        first = choose_precision("auto", CPU, ML1M, SCORING, probe_saying(*rates), supported=True)
        again = choose_precision("auto", CPU, ML1M, SCORING, replayed_probe(first.to_json()), supported=True)
        assert (again.training, again.scoring, again.training_gflops) == (first.training, first.scoring, rates)
    assert replayed_probe(PrecisionChoice("fp32").to_json()) is None
    assert replayed_probe(None) is None


def test_fused_linear_tanh_rounds_once_from_the_float32_accumulator(monkeypatch):
    """oneDNN applies tanh to the float32 accumulator and rounds once: within one bf16 rounding of the
    float32 result, and never further from it than the unfused GEMM → round → tanh → round chain."""
    from diffrec_cli import mixed_precision

    if mixed_precision._fused_linear_tanh() is None:
        pytest.skip("this torch build has no oneDNN linear (the unfused path is tested below)")
    torch.manual_seed(3)
    h = torch.randn(37, 60).to(torch.bfloat16)
    weight = (torch.randn(24, 60) * 0.2).to(torch.bfloat16)
    bias = torch.randn(24).to(torch.bfloat16)
    exact = torch.tanh(h.float() @ weight.float().T + bias.float())
    fused = mixed_precision.linear_tanh(h, weight, bias)
    assert fused.dtype == torch.bfloat16
    fused_error = (fused.float() - exact).abs().max()
    assert fused_error <= 2 ** -8  # tanh's values lie in (-1, 1): one bf16 rounding is at most 2⁻⁸ there
    monkeypatch.setattr(mixed_precision, "_fused_linear_tanh", lambda: None)
    unfused = mixed_precision.linear_tanh(h, weight, bias)
    assert unfused.dtype == torch.bfloat16
    assert fused_error <= (unfused.float() - exact).abs().max()
    assert torch.equal(mixed_precision.linear_tanh(h.float(), weight.float(), bias.float()),
                       torch.tanh(torch.addmm(bias.float(), h.float(), weight.float().T)))


def test_bf16_scoring_with_middle_layers_stays_close_to_fp32():
    torch.manual_seed(4)
    schedule = LinearVarianceSchedule(steps=20, noise_scale=0.005, noise_min=0.005, noise_max=0.01)
    model = DiffRec(20, 300, schedule=schedule, dims=[32, 48], emb_size=6).eval()  # two fused middle layers
    x = (torch.rand(16, 300) < 0.1).float()
    full = model.scores(torch.arange(16), x)
    model.set_precision(torch.float32, torch.bfloat16)
    low = model.scores(torch.arange(16), x)
    assert low.dtype == torch.float32
    assert 0 < (low - full).abs().max() < 0.05
    assert topk_agreement(full, low, k=20) >= 0.9
