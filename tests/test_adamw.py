"""FusedAdamW: the same updates and state as torch.optim.AdamW(fused=True), without importing torch._dynamo."""

import subprocess
import sys

import torch

from diffrec_cli.models.adamw import FusedAdamW


def _params(seed: int) -> list[torch.nn.Parameter]:
    gen = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(7, 5, generator=gen)), torch.nn.Parameter(torch.randn(5, generator=gen)),
            torch.nn.Parameter(torch.randn(3, generator=gen))]


def _groups(params):
    return [{"params": params[:2], "lr": 3e-3}, {"params": params[2:], "lr": 1e-2}]


def _run(optimizer, params, steps: int, seed: int = 5) -> None:
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        optimizer.zero_grad(set_to_none=True)
        loss = sum((p * torch.randn(p.shape, generator=gen)).sum() ** 2 for p in params[: 2 + step % 2])
        loss.backward()
        optimizer.step()


def test_updates_are_bit_identical_to_torch_fused_adamw_over_groups_and_skipped_grads():
    ours, theirs = _params(1), _params(1)
    _run(FusedAdamW(_groups(ours), lr=1e-3, weight_decay=0.1), ours, 6)
    _run(torch.optim.AdamW(_groups(theirs), lr=1e-3, weight_decay=0.1, fused=True), theirs, 6)
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


def test_state_dicts_load_in_either_class_and_continue_identically():
    reference = _params(2)
    torch_opt = torch.optim.AdamW(_groups(reference), lr=1e-3, weight_decay=0.0, fused=True)
    _run(torch_opt, reference, 3)
    saved = torch_opt.state_dict()
    ours = [torch.nn.Parameter(p.detach().clone()) for p in reference]
    mine = FusedAdamW(_groups(ours), lr=1e-3, weight_decay=0.0)
    mine.load_state_dict(saved)
    mine_saved = mine.state_dict()
    assert mine_saved["param_groups"] == saved["param_groups"]
    assert sorted(mine_saved["state"]) == sorted(saved["state"]) == [0, 1, 2]
    assert all(torch.equal(mine_saved["state"][i][k], saved["state"][i][k])
               for i in saved["state"] for k in ("step", "exp_avg", "exp_avg_sq"))
    _run(torch_opt, reference, 4, seed=9)
    _run(mine, ours, 4, seed=9)
    for a, b in zip(ours, reference):
        assert torch.equal(a, b)
    back = torch.optim.AdamW(_groups([torch.nn.Parameter(p.detach().clone()) for p in ours]), lr=1e-3,
                             weight_decay=0.0, fused=True)
    back.load_state_dict(mine.state_dict())
    assert back.state_dict()["param_groups"] == mine.state_dict()["param_groups"]


def test_a_training_step_does_not_import_the_compiler():
    code = ("import sys, torch\n"
            "from diffrec_cli.models.base import adamw\n"
            "p = torch.nn.Parameter(torch.ones(4)); opt = adamw([p], lr=1e-3, weight_decay=0.0)\n"
            "(p * p).sum().backward(); opt.step(); opt.zero_grad()\n"
            "print(type(opt).__name__, 'torch._dynamo' in sys.modules, float(p[0]))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[:2] == ["FusedAdamW", "False"]
    assert abs(float(out[2]) - (1 - 1e-3)) < 1e-6  # Adam's first step moves each weight by lr


def test_training_drops_the_gradients_right_after_each_optimiser_step(tiny):
    # the next batch's forward pass then runs without last step's gradients in memory
    from diffrec_cli.config import resolve_settings
    from diffrec_cli.models.build import build_model
    from diffrec_cli.plugins import load_plugins
    from diffrec_cli.training.events import StepFinished
    from diffrec_cli.training.loop import fit

    from conftest import FAST_MODEL, FAST_TRAIN

    registry = load_plugins(entry_points=False).registry
    model, _ = build_model(registry, "diffrec", dict(FAST_MODEL), n_users=tiny.n_users, n_items=tiny.n_items)
    config = resolve_settings(dict(FAST_TRAIN), {}, dataset=tiny.name, device="cpu", precision="fp32").train
    seen = []

    def reporter(event):
        if isinstance(event, StepFinished):
            seen.append([p.grad is None for p in model.parameters()])

    fit(model, tiny, config, reporter)
    assert len(seen) >= 2 and all(all(step) for step in seen)
