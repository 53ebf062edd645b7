"""Components looked up by name. Every model, noise schedule, reweighting and callback lives here.

A component is a class whose constructor keyword arguments are its configuration. Entries remember the
plugin that registered them, so checkpoints can record (and later demand) the provider.

A plugin registers a class, or a name and the class's import path (``"package.module:Class"``): the path
is imported only when the entry's ``cls`` is first read, so listing, completing and ``--help`` never load
the models' libraries (torch).
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from typing import Any, Callable

from diffrec_cli.errors import DiffrecError, PluginMissingError

KINDS = ("model", "noise_schedule", "reweighting", "callback")


@dataclass(frozen=True)
class Entry:
    """One registered component. ``target`` is the class or its import path; ``cls`` is always the class."""

    kind: str
    name: str
    target: type | str
    plugin: str
    version: str

    @property
    def cls(self) -> type:
        """The component class, imported on first access when it was registered by path."""
        if isinstance(self.target, str):
            object.__setattr__(self, "target", _import_class(self))  # resolve once; the entry stays frozen
        return self.target  # type: ignore[return-value]


class ComponentImportError(DiffrecError):
    """A component registered by import path could not be imported."""


def _import_class(entry: Entry) -> type:
    module_name, _, attribute = str(entry.target).partition(":")
    try:
        found: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            found = getattr(found, part)
    except Exception as exc:  # whatever a broken plugin raises, the user sees one line naming it
        raise ComponentImportError(
            f"{entry.kind.replace('_', ' ')} {entry.name!r} of plugin {entry.plugin!r} cannot be loaded from "
            f"{entry.target}: {type(exc).__name__}: {exc}") from None
    if not isinstance(found, type):
        raise ComponentImportError(f"{entry.kind.replace('_', ' ')} {entry.name!r} of plugin {entry.plugin!r}: "
                                   f"{entry.target} is not a class")
    return found


def check_import_path(path: str) -> str:
    """``path`` when it looks like ``package.module:Class`` (checked without importing anything)."""
    module_name, colon, attribute = path.partition(":")
    names = [*module_name.split("."), *attribute.split(".")]
    if not colon or not all(part.isidentifier() for part in names):
        raise ValueError(f"an import path looks like 'package.module:Class', got {path!r}")
    return path


class NameConflictError(DiffrecError):
    """Two plugins registered the same component name."""


@dataclass
class Registry:
    entries: dict[str, dict[str, Entry]] = field(default_factory=lambda: {k: {} for k in KINDS})
    # plugin name -> version, for plugins that loaded (even if they registered nothing)
    plugins: dict[str, str] = field(default_factory=dict)

    def add(self, kind: str, name: str, cls: type | str, plugin: str, version: str) -> None:
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
        """The ``register`` callback handed to one plugin's hook.

        ``register("name", "package.module:Class")`` registers by import path (imported on first use);
        ``register(Class)`` or ``register(Class, name="name")`` registers a class already imported.
        """

        def register(component: type | str, path_or_name: str | None = None, *, name: str | None = None) -> None:
            if isinstance(component, str):
                if path_or_name is None:
                    raise TypeError(f"register({component!r}) needs the class or its import path "
                                    f"('package.module:Class')")
                self.add(kind, component, check_import_path(path_or_name), plugin, version)
            else:
                self.add(kind, name or path_or_name or _declared_name(component), component, plugin, version)

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
