"""diffrec-example: a worked example of a diffrec plugin.

diffrec loads this module through the ``diffrec`` entry-point group (see pyproject.toml) and calls the
hook implementations below with a ``register`` callback. Each component is registered by name and import
path, so loading the plugin imports nothing more (no torch): diffrec imports a class when it first builds it.
"""

from diffrec_cli.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl
def register_noise_schedules(register):
    register("cosine", "diffrec_example.schedules:CosineSchedule")


@hookimpl
def register_reweightings(register):
    register("exp-decay", "diffrec_example.reweighting:ExpDecayReweighting")
