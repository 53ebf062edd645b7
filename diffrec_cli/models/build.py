"""Build a model (and its components) by name from settings, and rebuild it from a recorded spec.

The path of a setting such as ``noise_scale``: ``--set noise_scale=0.01`` → ``config.resolve_settings`` (not a
trainer field, so a model setting) → ``build_model`` → ``build_component`` for the model's ``schedule``
component, which takes the settings its class's constructor names → ``LinearVarianceSchedule(noise_scale=…)``.
Whatever each constructor received is recorded in the returned spec, so a checkpoint rebuilds the same model.
"""

from __future__ import annotations

import inspect
from typing import Any

from diffrec_cli.atomic import jsonable
from diffrec_cli.convert import coerce
from diffrec_cli.errors import DiffrecError
from diffrec_cli.models.base import Recommender
from diffrec_cli.models.spec import ComponentSpec, ModelSpec
from diffrec_cli.registry import Entry, Registry, constructor_params


def _params(cls: type) -> dict[str, inspect.Parameter]:
    """A component's settings: every constructor argument, or for a model those after its data arguments."""
    return constructor_params(cls, cls.data_args if issubclass(cls, Recommender) else ())


def _take_settings(cls: type, settings: dict[str, Any], used: set[str], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """The constructor keyword arguments of ``cls`` present in ``settings``, brought to their defaults' types."""
    kwargs: dict[str, Any] = {}
    for pname, param in _params(cls).items():
        if pname in settings and pname not in skip:
            default = None if param.default is param.empty else param.default
            try:
                kwargs[pname] = coerce(settings[pname], default)
            except DiffrecError as exc:
                raise DiffrecError(f"setting {pname}: {exc}") from None
            used.add(pname)
    return kwargs


def captured_config(cls: type, kwargs: dict[str, Any], skip: tuple[str, ...] = ()) -> dict[str, Any]:
    """Every configuring constructor argument as the constructor received it (given or default)."""
    config = {}
    for pname, param in _params(cls).items():
        if pname in skip:
            continue
        if pname in kwargs:
            config[pname] = jsonable(kwargs[pname])
        elif param.default is not param.empty:
            config[pname] = jsonable(param.default)
    return config


def _require(entry: Entry, given: dict[str, Any], what: str) -> None:
    """Fail with the setting's name, not a TypeError, when a constructor argument without default is missing."""
    for pname, param in _params(entry.cls).items():
        if param.default is inspect.Parameter.empty and pname not in given:
            raise DiffrecError(f"{what} {entry.name!r} needs setting {pname!r}")


def _construct(entry: Entry, *args: Any, **kwargs: Any) -> Any:
    try:
        return entry.cls(*args, **kwargs)
    except TypeError as exc:
        raise DiffrecError(f"{entry.kind.replace('_', ' ')} {entry.name!r}: {exc}") from None


def build_component(registry: Registry, kind: str, name: str, settings: dict[str, Any], used: set[str],
                    *, wanted_plugin: str | None = None) -> tuple[Any, ComponentSpec]:
    """Component ``name`` of ``kind``, configured from the ``settings`` its constructor names (added to ``used``)."""
    entry = registry.get(kind, name, wanted_plugin=wanted_plugin)
    kwargs = _take_settings(entry.cls, settings, used)
    obj = _construct(entry, **kwargs)
    return obj, ComponentSpec(name, entry.plugin, entry.version, captured_config(entry.cls, kwargs))


def _rebuild_component(registry: Registry, kind: str, spec: ComponentSpec) -> Any:
    return build_component(registry, kind, spec.name, spec.config, set(), wanted_plugin=spec.plugin)[0]


def build_model(registry: Registry, name: str, settings: dict[str, Any], *, n_users: int, n_items: int,
                spec: ModelSpec | None = None, data: Any = None) -> tuple[Any, ModelSpec]:
    """Instantiate model ``name`` from ``settings``; unknown settings are an error that lists the known ones.

    The reweighting (``reweighting=NAME``, else the model's ``default_reweighting``) takes its own keys first;
    then each of the model's ``components`` is built from the settings (over the model's
    ``component_defaults``), then the model from the rest. ``data`` (an ``InteractionData``) feeds the
    ``data_args`` beyond the sizes (``item_emb``, ``train``, ...). With ``spec`` the model is rebuilt from a
    checkpoint instead (see :func:`rebuild_model`).
    """
    if spec is not None:
        return rebuild_model(registry, spec, n_users=n_users, n_items=n_items), spec
    entry = registry.get("model", name)
    cls = entry.cls
    used: set[str] = {"reweighting"}
    reweighting, reweighting_spec = build_component(
        registry, "reweighting", str(settings.get("reweighting", cls.default_reweighting)), settings, used)
    rest = {k: v for k, v in settings.items() if k not in used}
    components, component_specs = {}, {}
    for pname, (kind, default_name) in cls.components.items():
        used.add(pname)
        components[pname], component_specs[pname] = build_component(
            registry, kind, str(rest.get(pname, default_name)), {**cls.component_defaults, **rest}, used)
    kwargs = _take_settings(cls, rest, used, skip=tuple(components))
    unknown = sorted(set(settings) - used)
    if unknown:
        known = sorted(set(_params(cls)) | {k for c in component_specs.values() for k in c.config}
                       | set(reweighting_spec.config))
        raise DiffrecError(f"unknown setting {unknown[0]!r} for model {name!r} (known: {', '.join(known)})")
    _require(entry, {**components, **kwargs}, "model")
    extra = [getattr(data, arg, None) for arg in cls.data_args[2:]]
    model = _construct(entry, n_users, n_items, *extra, **components, **kwargs)
    model.reweighting = reweighting
    config = {**captured_config(cls, kwargs, skip=tuple(components)), **jsonable(model.derived_config())}
    return model, ModelSpec(name, entry.plugin, entry.version, config, component_specs, reweighting_spec)


def rebuild_model(registry: Registry, spec: ModelSpec, *, n_users: int, n_items: int) -> Any:
    """The model a spec describes, with fresh weights (load the checkpoint's state dict into it). Each
    component must come from the plugin that provided it; a missing plugin is named in the error."""
    entry = registry.get("model", spec.name, wanted_plugin=spec.plugin)
    components = {}
    for pname in entry.cls.components:
        if pname not in spec.components:
            raise DiffrecError(f"the recorded model {spec.name!r} has no component {pname!r}")
        components[pname] = _rebuild_component(registry, entry.cls.components[pname][0], spec.components[pname])
    kwargs = _take_settings(entry.cls, spec.config, set(), skip=tuple(components))
    _require(entry, {**components, **kwargs}, "the recorded model")
    extra = [None] * len(entry.cls.data_args[2:])  # data-derived state comes back with the state dict
    model = _construct(entry, n_users, n_items, *extra, **components, **kwargs)
    model.reweighting = _rebuild_component(registry, "reweighting", spec.reweighting)
    return model
