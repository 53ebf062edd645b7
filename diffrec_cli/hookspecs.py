"""The hooks a diffrec plugin can implement. Each receives a ``register`` callback (or the Typer app)."""

from pluggy import HookimplMarker, HookspecMarker

hookspec = HookspecMarker("diffrec")
hookimpl = HookimplMarker("diffrec")


@hookspec
def register_models(register):
    """Register recommender model classes: ``register(ModelClass, name="...")``."""


@hookspec
def register_noise_schedules(register):
    """Register noise schedule classes (β₁..β_T producers): ``register(ScheduleClass, name="...")``."""


@hookspec
def register_reweightings(register):
    """Register per-interaction reweighting strategies (e.g. time-aware weights): ``register(Cls, name=...)``."""


@hookspec
def register_callbacks(register):
    """Register training-event listeners (loggers, exporters): ``register(CallbackClass, name="...")``."""


@hookspec
def register_commands(app):
    """Add sub-commands to the ``diffrec`` Typer app."""
