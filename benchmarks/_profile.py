"""Where one training epoch's time goes: torch.profiler self times grouped into the steps of Algorithm 1."""

from __future__ import annotations

from torch.profiler import ProfilerActivity, profile

# op-name prefixes per step; the first match wins, the rest is "other elementwise"
GROUPS = (
    ("GEMMs (forward + backward)", ("aten::addmm", "aten::mm", "aten::bmm", "aten::_addmm_activation",
                                    "aten::linear_backward")),
    ("noise generation", ("aten::normal_", "aten::randn")),
    ("input dropout draw", ("aten::uniform_", "aten::rand_like", "aten::rand", "aten::bernoulli")),
    ("q_sample", ("aten::addcmul", "diffrec::q_sample")),
    ("tanh forward + backward", ("aten::tanh",)),
    ("loss (mse, weights, history)", ("aten::mse_loss", "aten::sub", "aten::pow", "aten::mean", "aten::sum",
                                      "aten::multinomial", "aten::argsort", "aten::sort", "aten::bincount",
                                      "aten::gather", "aten::scatter")),
    ("optimizer", ("aten::_fused_adam", "aten::_foreach", "aten::addcdiv", "aten::lerp", "aten::sqrt")),
    ("densification", ("aten::index_put", "aten::_index_put", "aten::zeros", "aten::zero_", "aten::fill_")),
    ("dtype casts", ("aten::to", "aten::_to_copy", "aten::copy_")),
)


def epoch_breakdown(model, setup) -> list[tuple[str, float]]:
    """(group, seconds) for one profiled training epoch of ``model`` with ``setup`` (from prepare_fit)."""
    from diffrec_cli.training.loop import train_epoch

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_epoch(model, setup, 1000, lambda event: None, lambda: False)
    totals: dict[str, float] = {}
    for event in prof.key_averages():
        name = event.key
        group = next((g for g, prefixes in GROUPS if name.startswith(prefixes)), "other elementwise")
        if name.startswith(("aten::", "diffrec::")) or group != "other elementwise":
            totals[group] = totals.get(group, 0.0) + event.self_cpu_time_total / 1e6
    return sorted(totals.items(), key=lambda kv: -kv[1])


def print_breakdown(title: str, rows: list[tuple[str, float]]) -> None:
    total = sum(s for _, s in rows) or 1.0
    print(f"\n{title} (self time, profiler on; {total:.2f} s in ops)")
    for group, seconds in rows:
        print(f"  {group:34}{seconds:>8.3f} s{100 * seconds / total:>6.1f} %")

