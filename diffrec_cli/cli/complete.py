"""Shell completion (``diffrec --install-completion``): dataset names, run ids, registered component names
and ``--set`` keys and values, read from the data home and the registry without importing torch.

Each callback takes the click context (for ``--home``, ``--model`` and the ``--set`` pairs typed so far) and
the word being completed; any failure completes nothing rather than printing a traceback into the shell.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

CHOICES = {"device": ["auto", "cpu", "cuda"], "precision": ["auto", "fp32", "bf16"]}


def _quiet(callback: Callable[..., list[Any]]) -> Callable[..., list[Any]]:
    @functools.wraps(callback)
    def wrapper(ctx: Any, incomplete: str) -> list[Any]:
        try:
            return callback(ctx, incomplete or "")
        except Exception:  # completion must never break the shell line
            return []

    return wrapper


def _home(ctx: Any):
    from diffrec_cli.home import HomeFolders

    return HomeFolders(_param(ctx, "home"))


def _param(ctx: Any, name: str) -> Any:
    """A parameter already parsed on the command line (this command's, else its group's)."""
    while ctx is not None:
        if ctx.params.get(name) is not None:
            return ctx.params[name]
        ctx = ctx.parent
    return None


def _registry():
    from diffrec_cli.plugins import get_registry

    return get_registry()


@_quiet
def datasets(ctx: Any, incomplete: str) -> list[str]:
    return [n for n in _home(ctx).names() if n.startswith(incomplete)]


@_quiet
def datasets_and_logs(ctx: Any, incomplete: str) -> list[str]:
    home = _home(ctx)
    return [n for n in sorted({*home.names(), *home.log_names()}) if n.startswith(incomplete)]


@_quiet
def logs(ctx: Any, incomplete: str) -> list[str]:
    return [n for n in _home(ctx).log_names() if n.startswith(incomplete)]


@_quiet
def runs(ctx: Any, incomplete: str) -> list[str]:
    """Run ids, and the short ids the dashboard and ``runs list`` show, that begin with what was typed (the
    shell keeps only completions that extend the word; the CLI accepts both forms)."""
    from diffrec_cli.runs import run_folders, short_id

    ids = [p.name for p in run_folders(_home(ctx).runs_dir)]
    shorts = [s for s in (short_id(i, ids) for i in ids) if s not in ids]
    return [i for i in [*ids, *shorts] if i.startswith(incomplete)]


def _names(kind: str, incomplete: str) -> list[tuple[str, str]]:
    table = _registry().entries[kind]
    return [(name, f"plugin {entry.plugin}") for name, entry in sorted(table.items()) if name.startswith(incomplete)]


@_quiet
def models(ctx: Any, incomplete: str) -> list[tuple[str, str]]:
    return _names("model", incomplete)


@_quiet
def settings(ctx: Any, incomplete: str) -> list[str]:
    """``key=`` for the keys the chosen model takes, then ``key=value`` for keys with known values."""
    from diffrec_cli.config import parse_sets
    from diffrec_cli.introspect import setting_keys

    typed = parse_sets([pair for pair in (_param(ctx, "sets") or []) if "=" in pair])
    model = _param(ctx, "model") or typed.get("model") or "diffrec"
    key, equals, value = incomplete.partition("=")
    if not equals:
        return [f"{k}=" for k in setting_keys(_registry(), model, typed) if k.startswith(key)]
    return [f"{key}={v}" for v in _values(ctx, key.replace("-", "_"), model) if v.startswith(value)]


def _values(ctx: Any, key: str, model: str) -> list[str]:
    from diffrec_cli.introspect import class_facts
    from diffrec_cli.metrics import DEFAULT_KS, METRICS

    registry = _registry()
    if key == "model":
        return registry.names("model")
    if key == "dataset":
        return _home(ctx).names()
    if key == "metric":
        return [f"{m}@{k}" for m in METRICS for k in DEFAULT_KS]
    if key in ("reweighting", "callbacks"):
        return registry.names("reweighting" if key == "reweighting" else "callback")
    entry = registry.entries["model"].get(model)
    components = class_facts(entry.target).attributes.get("components", {}) if entry else {}
    if key in components:
        return registry.names(components[key][0])
    return CHOICES.get(key, [])
