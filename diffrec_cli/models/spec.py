"""What a built model is made of, as recorded in run folders and checkpoints: names, providers, settings.

A spec is enough to rebuild the same model (``models.build.rebuild_model``) without the settings or the
data it was first built from. The JSON layout is the checkpoint format's (``diffrec-checkpoint/1``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diffrec_cli.errors import DiffrecError


def _object(raw: Any, what: str) -> dict[str, Any]:
    if not isinstance(raw, dict):
        raise DiffrecError(f"{what} should be an object, found {type(raw).__name__}")
    return raw


def _text(raw: dict[str, Any], key: str, what: str, default: str | None = None) -> str:
    value = raw.get(key, default)
    if not isinstance(value, str) or not value:
        raise DiffrecError(f"{what}.{key} should be a non-empty string, found {value!r}")
    return value


@dataclass(frozen=True)
class ComponentSpec:
    """One registered component: its name, the plugin (and version) providing it, its constructor arguments."""

    name: str
    plugin: str
    version: str
    config: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "plugin": self.plugin, "version": self.version, "config": self.config}

    @classmethod
    def from_json(cls, raw: Any, what: str) -> "ComponentSpec":
        raw = _object(raw, what)
        return cls(_text(raw, "name", what), _text(raw, "plugin", what, "diffrec"),
                   str(raw.get("version", "unknown")), dict(_object(raw.get("config", {}), f"{what}.config")))


NO_REWEIGHTING = ComponentSpec("none", "diffrec", "unknown", {})


@dataclass(frozen=True)
class ModelSpec(ComponentSpec):
    """A model: its own settings, its component-valued arguments, and the reweighting of its input."""

    components: dict[str, ComponentSpec] = field(default_factory=dict)
    reweighting: ComponentSpec = NO_REWEIGHTING

    def to_json(self) -> dict[str, Any]:
        """The checkpoint's ``model`` object (the reweighting is recorded beside it, see CheckpointMeta)."""
        return {**super().to_json(), "components": {k: c.to_json() for k, c in self.components.items()}}

    @classmethod
    def from_json(cls, raw: Any, what: str = "model", reweighting: Any = None) -> "ModelSpec":
        base = ComponentSpec.from_json(raw, what)
        components = _object(raw.get("components", {}), f"{what}.components")
        return cls(base.name, base.plugin, base.version, base.config,
                   {k: ComponentSpec.from_json(v, f"{what}.components.{k}") for k, v in components.items()},
                   NO_REWEIGHTING if reweighting is None else ComponentSpec.from_json(reweighting, "reweighting"))
