"""Build a model (and its components) by name from settings, and rebuild it from a checkpoint's spec."""

from __future__ import annotations

from typing import Any

from diffrec_cli.atomic import jsonable as _jsonable
from diffrec_cli.convert import coerce
from diffrec_cli.errors import DiffrecError
from diffrec_cli.registry import Registry, constructor_params


def build_component(registry: Registry, kind: str, name: str, settings: dict[str, Any], used: set[str],
                    *, wanted_plugin: str | None = None) -> tuple[Any, dict[str, Any]]:
    entry = registry.get(kind, name, wanted_plugin=wanted_plugin)
    kwargs: dict[str, Any] = {}
    for pname, param in constructor_params(entry.cls).items():
        if pname in settings:
            default = None if param.default is param.empty else param.default
            try:
                kwargs[pname] = coerce(settings[pname], default)
            except DiffrecError as exc:
                raise DiffrecError(f"setting {pname}: {exc}") from None
            used.add(pname)
    try:
        obj = entry.cls(**kwargs)
    except TypeError as exc:
        raise DiffrecError(f"{kind.replace('_', ' ')} {name!r}: {exc}") from None
    config = dict(getattr(obj, "config", kwargs))
    spec = {"name": name, "plugin": entry.plugin, "version": entry.version, "config": _jsonable(config)}
    return obj, spec


def build_model(registry: Registry, name: str, settings: dict[str, Any], *, n_users: int, n_items: int,
                spec: dict[str, Any] | None = None, data: Any = None) -> tuple[Any, dict[str, Any]]:
    """Instantiate model ``name``. Unknown settings are an error that lists the known ones.

    With ``spec`` (from a checkpoint), each component is rebuilt from its recorded name and config and a
    missing providing plugin is named in the error.

    ``data`` (an ``InteractionData``) feeds models whose ``data_args`` name more than the sizes, e.g.
    ``item_emb`` or ``train``: each is passed as ``getattr(data, arg)``, or None without data (a
    checkpoint rebuild, whose state dict then restores what the model derived from the data).
    A model's ``component_defaults`` set its own defaults for its components' settings, and the config
    values it lists in ``derived_settings`` (computed from the data) are recorded in the spec.
    """
    entry = registry.get("model", name, wanted_plugin=(spec or {}).get("plugin"))
    params = constructor_params(entry.cls)
    used: set[str] = set()
    kwargs: dict[str, Any] = {}
    component_specs: dict[str, Any] = {}
    for pname, (kind, default_name) in getattr(entry.cls, "components", {}).items():
        if spec is not None:
            recorded = spec["components"][pname]
            obj, cspec = build_component(registry, kind, recorded["name"], recorded["config"], set(),
                                         wanted_plugin=recorded.get("plugin"))
        else:
            comp_name = str(settings.get(pname, default_name))
            used.add(pname)
            comp_settings = {**getattr(entry.cls, "component_defaults", {}), **settings}
            obj, cspec = build_component(registry, kind, comp_name, comp_settings, used)
        kwargs[pname] = obj
        component_specs[pname] = cspec
    source = spec["config"] if spec is not None else settings
    config: dict[str, Any] = {}
    for pname, param in params.items():
        if pname in kwargs:
            continue
        default = None if param.default is param.empty else param.default
        if pname in source:
            try:
                kwargs[pname] = coerce(source[pname], default)
            except DiffrecError as exc:
                raise DiffrecError(f"setting {pname}: {exc}") from None
            used.add(pname)
        elif param.default is param.empty:
            raise DiffrecError(f"model {name!r} needs setting {pname!r}")
        else:
            kwargs[pname] = default
        config[pname] = _jsonable(kwargs[pname])
    if spec is None:
        unknown = sorted(set(settings) - used)
        if unknown:
            known = sorted(set(params) | {k for c in component_specs.values() for k in c["config"]})
            raise DiffrecError(f"unknown setting {unknown[0]!r} for model {name!r} (known: {', '.join(known)})")
    extra = {arg: getattr(data, arg, None) for arg in getattr(entry.cls, "data_args", ())
             if arg not in ("n_users", "n_items")}
    try:
        model = entry.cls(n_users, n_items, **extra, **kwargs)
    except TypeError as exc:
        raise DiffrecError(f"model {name!r}: {exc}") from None
    for key in getattr(entry.cls, "derived_settings", ()):
        config[key] = _jsonable(model.config[key])
    model_spec = {"name": name, "plugin": entry.plugin, "version": entry.version, "config": config,
                  "components": component_specs}
    return model, model_spec
