"""The plugin manager: third-party entry points first, then the built-ins, all through the same hooks.

Nothing here runs at import time; the CLI calls :func:`get_registry` when a command needs components.
``DIFFREC_LOAD_PLUGINS`` (comma-separated distribution entry-point names, '' for none) restricts which
third-party plugins load; the built-ins always load because every command needs them.
"""

from __future__ import annotations

import importlib.metadata
import os
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from diffrec_cli import __version__, hookspecs
from diffrec_cli.registry import NameConflictError, Registry

ENTRY_POINT_GROUP = "diffrec"
BUILTIN_PLUGIN = "diffrec"
HOOK_KINDS = {
    "register_models": "model",
    "register_noise_schedules": "noise_schedule",
    "register_reweightings": "reweighting",
    "register_callbacks": "callback",
}


@dataclass
class PluginSet:
    """What loading produced: the registry, the pluggy manager, and one-line problems to show the user."""

    registry: Registry
    manager: pluggy.PluginManager
    problems: list[str] = field(default_factory=list)

    def register_plugin(self, module: Any, name: str, version: str) -> None:
        """Register one plugin object (module or instance) and run its hooks, isolating its failures."""
        try:
            self.manager.register(module, name=name)
        except Exception as exc:  # a malformed plugin must not take the CLI down
            self.problems.append(f"warning: plugin {name!r} could not be registered: {exc}")
            return
        self.registry.plugins[name] = version
        for hook_name, kind in HOOK_KINDS.items():
            for impl in getattr(self.manager.hook, hook_name).get_hookimpls():
                if impl.plugin_name != name:
                    continue
                register = self.registry.registrar(kind, name, version)
                try:
                    impl.function(register=register)
                except NameConflictError as exc:
                    self.problems.append(f"error: {exc}; keeping the first")
                except Exception as exc:
                    self.problems.append(f"warning: plugin {name!r} failed in {hook_name}: {exc}")

    def unregister_plugin(self, name: str) -> None:
        plugin = self.manager.get_plugin(name)
        if plugin is not None:
            self.manager.unregister(plugin)
        self.registry.remove_plugin(name)

    def add_commands(self, app: Any) -> None:
        for impl in self.manager.hook.register_commands.get_hookimpls():
            try:
                impl.function(app=app)
            except Exception as exc:
                self.problems.append(f"warning: plugin {impl.plugin_name!r} failed in register_commands: {exc}")

    def listing(self) -> list[dict[str, Any]]:
        """One row per loaded plugin: name, version, and the component names it registered per kind."""
        rows = []
        for name, version in self.registry.plugins.items():
            registers: dict[str, list[str]] = {}
            for kind, table in self.registry.entries.items():
                names = sorted(n for n, e in table.items() if e.plugin == name)
                if names:
                    registers[kind] = names
            rows.append({"name": name, "version": version, "registers": registers})
        return rows


def _allowed_plugins() -> set[str] | None:
    raw = os.environ.get("DIFFREC_LOAD_PLUGINS")
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def load_plugins(*, entry_points: bool = True) -> PluginSet:
    manager = pluggy.PluginManager("diffrec")
    manager.add_hookspecs(hookspecs)
    plugins = PluginSet(Registry(), manager)
    if entry_points:
        allowed = _allowed_plugins()
        installed = importlib.metadata.entry_points(group=ENTRY_POINT_GROUP)
        for missing in sorted((allowed or set()) - {ep.name for ep in installed} - {BUILTIN_PLUGIN}):
            plugins.problems.append(f"warning: DIFFREC_LOAD_PLUGINS names {missing!r}, which is not installed")
        for ep in installed:
            if allowed is not None and ep.name not in allowed:
                continue
            if ep.name == BUILTIN_PLUGIN:
                continue
            version = ep.dist.version if ep.dist is not None else "unknown"
            try:
                module = ep.load()
            except Exception as exc:
                plugins.problems.append(f"warning: plugin {ep.name!r} failed to load: {type(exc).__name__}: {exc}")
                continue
            plugins.register_plugin(module, ep.name, version)
    plugins.register_plugin(_builtin_module(), BUILTIN_PLUGIN, __version__)
    return plugins


def _builtin_module() -> ModuleType:
    from diffrec_cli import builtin

    return builtin


_loaded: PluginSet | None = None


def get_plugins() -> PluginSet:
    """The process-wide plugin set, loaded on first use."""
    global _loaded
    if _loaded is None:
        _loaded = load_plugins()
    return _loaded


def get_registry() -> Registry:
    return get_plugins().registry


def reset_plugins() -> None:
    """Forget the loaded plugins (tests and long-lived processes that change the environment)."""
    global _loaded
    _loaded = None
