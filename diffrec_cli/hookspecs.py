"""The hooks a diffrec plugin can implement. Each receives a ``register`` callback (or the Typer app).

``register`` takes a component's name and import path, ``register("cosine", "my_plugin.schedules:Cosine")``:
the class is imported only when a command first builds or inspects it, so listing plugins, ``--help`` and
shell completion stay fast (no torch). ``register(Class, name="...")`` registers a class already imported
(without ``name``: the class's ``name`` attribute, else its lower-cased class name).
"""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("diffrec")
hookimpl = HookimplMarker("diffrec")


@hookspec
def register_models(register):
    """Register recommender models: ``register("name", "package.module:ModelClass")``."""


@hookspec
def register_noise_schedules(register):
    """Register noise schedules (β₁..β_T producers): ``register("name", "package.module:ScheduleClass")``."""


@hookspec
def register_reweightings(register):
    """Register per-interaction reweighting strategies (e.g. time-aware weights): ``register("name", "pkg.mod:Cls")``."""


@hookspec
def register_callbacks(register):
    """Register training-event listeners (loggers, exporters): ``register("name", "package.module:Callback")``."""


@hookspec
def register_commands(app):
    """Add sub-commands to the ``diffrec`` Typer app (import heavy libraries inside the command, not here)."""
