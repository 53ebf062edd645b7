"""Components looked up by name. Every model, noise schedule, reweighting and callback lives here.

A component is a class whose constructor keyword arguments are its configuration. Entries remember the
plugin that registered them, so checkpoints can record (and later demand) the provider.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from diffrec_cli.errors import DiffrecError, PluginMissingError

KINDS = ("model", "noise_schedule", "reweighting", "callback")


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    cls: type
    plugin: str
    version: str


class NameConflictError(DiffrecError):
    """Two plugins registered the same component name."""


@dataclass
class Registry:
    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    # plugin name -> version, for plugins that loaded (even if they registered nothing)
    plugins: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, name: str, cls: type, plugin: str, version: str) -> None:
        table = self.entries[kind]
        if name in table:
            other = table[name]
            raise NameConflictError(
                f"{kind.replace('_', ' ')} {name!r} is registered by both plugin {other.plugin!r} and plugin {plugin!r}"
            )
        table[name] = Entry(kind, name, cls, plugin, version)

    def remove_plugin(self, plugin: str) -> None:
        for table in self.entries.values():
            for name in [n for n, e in table.items() if e.plugin == plugin]:
                del table[name]
        self.plugins.pop(plugin, None)

    def names(self, kind: str) -> list[str]:
        return sorted(self.entries[kind])

    def get(self, kind: str, name: str, *, wanted_plugin: str | None = None) -> Entry:
        label = kind.replace("_", " ")
        entry = self.entries[kind].get(name)
        if entry is not None:
            if wanted_plugin and entry.plugin != wanted_plugin:
                # Same name, another provider (e.g. it won a name conflict): never swap classes silently.
                raise PluginMissingError(
                    f"{label} {name!r} comes from plugin {wanted_plugin!r}, but here plugin {entry.plugin!r} "
                    f"provides it (restrict with DIFFREC_LOAD_PLUGINS)"
                )
            return entry
        if wanted_plugin and wanted_plugin not in self.plugins:
            raise PluginMissingError(
                f"{label} {name!r} comes from plugin {wanted_plugin!r}, which is not installed or not loaded "
                f"(check DIFFREC_LOAD_PLUGINS)"
            )
        known = ", ".join(self.names(kind)) or "none"
        raise DiffrecError(f"unknown {label} {name!r} (known: {known})")

    def registrar(self, kind: str, plugin: str, version: str) -> Callable[..., None]:
        """The ``register`` callback handed to one plugin's hook."""

        def register(cls: type, name: str | None = None) -> None:
            self.add(kind, name or _declared_name(cls), cls, plugin, version)

        return register


def _declared_name(cls: type) -> str:
    """The ``name`` a component class declares (models/base.py, protocols.py), else its lower-cased class name."""
    try:
        declared = cls.name  # type: ignore[attr-defined]
    except AttributeError:
        declared = ""
    return declared if isinstance(declared, str) and declared else cls.__name__.lower()


def constructor_params(cls: type, data_args: tuple[str, ...] = ()) -> dict[str, inspect.Parameter]:
    """Parameters of ``cls.__init__`` that configure it: its settings (a model's ``data_args`` excluded)."""
    sig = inspect.signature(cls.__init__)
    return {
        name: p
        for name, p in sig.parameters.items()
        if name != "self" and p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and name not in data_args
    }


def coerce(value: Any, default: Any) -> Any:
    """Bring a --set string to the type of the parameter's default (ints stay ints, lists stay lists)."""
    if isinstance(value, str) and default is not None and not isinstance(default, str):
        import json

        try:
            parsed = json.loads(value)
        except json.JSONDecodeError:
            low = value.lower()
            if isinstance(default, bool) and low in ("true", "false", "on", "off", "yes", "no"):
                return low in ("true", "on", "yes")
            raise DiffrecError(f"cannot read {value!r} as {type(default).__name__}") from None
        value = parsed
    if isinstance(default, bool) and not isinstance(value, bool):
        if isinstance(value, (int, float)) and value in (0, 1):
            return bool(value)
        raise DiffrecError(f"expected true/false, got {value!r}")
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, (tuple, list)) and isinstance(value, list):
        return tuple(value) if isinstance(default, tuple) else value
    return value
