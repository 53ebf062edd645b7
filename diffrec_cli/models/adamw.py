"""AdamW on torch's fused kernel, without going through ``torch.optim``.

``torch.optim.Optimizer`` wraps ``step`` and ``add_param_group`` so that the compiler skips them, and those
wrappers import ``torch._dynamo`` on first use: about 70 MB of resident memory (and half a second) in a
process that never compiles anything, a seventh of a whole ML-1M training run. ``FusedAdamW`` calls the
same kernel ``torch.optim.AdamW(fused=True)`` calls, with the same state (``step`` a float32 scalar on the
parameter's device, ``exp_avg``, ``exp_avg_sq``), so its updates are bit-identical and the two load each
other's ``state_dict`` (resume points written before this class existed included).
"""

from __future__ import annotations

from typing import Any

import torch

DEFAULTS = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 1e-2}
# what torch.optim.AdamW records in each param group beside ours: kept so the state_dicts match
TORCH_GROUP_FLAGS = {"amsgrad": False, "maximize": False, "foreach": None, "capturable": False,
                     "differentiable": False, "fused": True, "decoupled_weight_decay": True}
# torch's fused Adam kernels run on CUDA since 2.0 and on CPUs since 2.4
FUSED_DEVICES = ("cpu", "cuda") if tuple(int(v) for v in torch.__version__.split(".")[:2]) >= (2, 4) else ("cuda",)


class FusedAdamW:
    """Decoupled-weight-decay Adam over parameter groups (dicts with ``params`` and optional overrides)."""

    def __init__(self, params: Any, lr: float = 1e-3, **overrides: Any) -> None:
        groups = list(params)
        if groups and not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        self.param_groups = [{**DEFAULTS, "lr": lr, **overrides, **group, **TORCH_GROUP_FLAGS,
                              "params": list(group["params"])} for group in groups]
        self.state: dict[torch.Tensor, dict[str, torch.Tensor]] = {}

    @staticmethod
    def supports(params: list[torch.Tensor]) -> bool:
        """Whether every parameter can go through the fused kernel (floating point on a CPU or CUDA device)."""
        return hasattr(torch, "_fused_adamw_") and all(
            p.is_floating_point() and p.device.type in FUSED_DEVICES for p in params)

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    def _slots(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        if p not in self.state:
            self.state[p] = {"step": torch.zeros((), dtype=torch.float32, device=p.device),
                             "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                             "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
        return self.state[p]

    @torch.no_grad()
    def step(self) -> None:
        for group in self.param_groups:
            # torch groups the tensors by device and dtype before calling the kernel; so do we
            buckets: dict[tuple[torch.device, torch.dtype], list[torch.Tensor]] = {}
            for p in group["params"]:
                if p.grad is not None:
                    buckets.setdefault((p.device, p.dtype), []).append(p)
            for params in buckets.values():
                slots = [self._slots(p) for p in params]
                steps = [s["step"] for s in slots]
                torch._foreach_add_(steps, 1)
                beta1, beta2 = group["betas"]
                torch._fused_adamw_(params, [p.grad for p in params], [s["exp_avg"] for s in slots],
                                    [s["exp_avg_sq"] for s in slots], [], steps, amsgrad=False, lr=group["lr"],
                                    beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                                    eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)

    def _indexed(self) -> list[torch.Tensor]:
        return [p for group in self.param_groups for p in group["params"]]

    def state_dict(self) -> dict[str, Any]:
        """torch.optim's layout: state keyed by the parameter's position over all groups."""
        index = {id(p): i for i, p in enumerate(self._indexed())}
        state = {index[id(p)]: dict(slots) for p, slots in self.state.items()}
        groups, start = [], 0
        for group in self.param_groups:
            count = len(group["params"])
            groups.append({**{k: v for k, v in group.items() if k != "params"},
                           "params": list(range(start, start + count))})
            start += count
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, saved: dict[str, Any]) -> None:
        if len(saved["param_groups"]) != len(self.param_groups):
            raise ValueError("the saved optimizer state has a different number of parameter groups")
        params = self._indexed()
        for group, saved_group in zip(self.param_groups, saved["param_groups"]):
            if len(saved_group["params"]) != len(group["params"]):
                raise ValueError("the saved optimizer state has groups of different sizes")
            group.update({k: v for k, v in saved_group.items() if k != "params"})
            group["betas"] = tuple(group["betas"])
        self.state = {}
        for i, slots in saved["state"].items():
            p = params[int(i)]
            self.state[p] = {"step": torch.as_tensor(slots["step"], dtype=torch.float32).to(p.device).clone(),
                             "exp_avg": slots["exp_avg"].to(p.device, p.dtype).clone(),
                             "exp_avg_sq": slots["exp_avg_sq"].to(p.device, p.dtype).clone()}
